// A manifest-only edge service with StreamKit alone: it links no FFmpeg (make test checks the
// binary with ldd). Given a segment index (here a made-up 3-minute track with AAC and Opus),
// it renders one HLS multivariant playlist per switching set, a media playlist and a DASH MPD,
// signs a session for one track, and verifies a request path the way an edge would.
import StreamKit

func rendition(_ id: String, _ codec: AudioCodec, bytesPerSecond: Int64) -> Rendition {
    // 6.016 s segments (282 AAC frames at 48 kHz), a 3-minute track.
    let duration: Int64 = 288_768
    let segments = (0..<30).map { k in
        SegmentInfo(number: Int64(k + 1), start: Int64(k) * duration, duration: duration, byteSize: bytesPerSecond * 6)
    }
    return Rendition(id: id, codec: codec, sampleRate: 48_000, channelCount: 2, timescale: 48_000,
                     addressing: .template(initialization: "cmaf/$RepresentationID$/init.mp4", media: "cmaf/$RepresentationID$/seg-$Number$.m4s"),
                     segments: segments)
}

let ladder = [rendition("aac-256", .aacLC, bytesPerSecond: 32_000), rendition("aac-128", .aacLC, bytesPerSecond: 16_000),
              rendition("opus-96", .opus, bytesPerSecond: 12_000)]
do {
    let signer = try URLSigner(keys: ["k1": Array("an example key of at least 32 bytes!".utf8)], activeKeyID: "k1")
    let now = Timestamp(secondsSince1970: 1_800_000_000)
    let token = try signer.sign(pathPrefixes: ["/hls/t1/", "/media/t1/"], expires: Timestamp(secondsSince1970: 1_800_003_600))
    for set in SwitchingSet.partition(ladder) {
        let master = try MasterPlaylist.make(renditions: set.renditions) { "\($0.id).m3u8" }
        print("== /hls/t1/master-\(set.id).m3u8\n" + master.addingQueryItem(name: "token", value: token).render())
    }
    print("== /hls/t1/aac-128.m3u8 (first lines)")
    print(try MediaPlaylist.vod(ladder[1]).render().split(separator: "\n").prefix(8).joined(separator: "\n"))
    print("== /dash/t1/manifest.mpd: \(try MPD.vod(renditions: ladder).render().utf8.count) bytes")
    print("== verify /media/t1/v1/cmaf/aac-128/seg-3.m4s: \(signer.verify(path: "/media/t1/v1/cmaf/aac-128/seg-3.m4s", token: token, now: now))")
    print("== verify /media/t2/v1/cmaf/aac-128/seg-3.m4s: \(signer.verify(path: "/media/t2/v1/cmaf/aac-128/seg-3.m4s", token: token, now: now))")
} catch {
    print("error: \(error)")
}
