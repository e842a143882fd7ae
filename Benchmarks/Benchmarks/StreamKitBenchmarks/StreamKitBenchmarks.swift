import Benchmark
import Crypto
import StreamKit

/// One hour of 48 kHz AAC in CMAF segments of 282 or 281 frames (6.016 s / 5.995 s, alternating so the
/// SegmentTimeline cannot collapse into one `S` element): 600 segments.
func hourLongRendition(id: String, bytesPerSecond: Int64) -> Rendition {
    var segments: [SegmentInfo] = []
    var start: Int64 = 0
    for number in 0..<600 {
        let duration: Int64 = (number % 2 == 0 ? 282 : 281) * 1024
        let size = bytesPerSecond * duration / 48_000 + Int64(number % 13) * 37
        segments.append(SegmentInfo(number: Int64(number), start: start, duration: duration, byteSize: size))
        start += duration
    }
    return Rendition(id: id, codec: .aacLC, sampleRate: 48_000, channelCount: 2, timescale: 48_000,
                     addressing: .template(initialization: "$RepresentationID$/init.mp4", media: "$RepresentationID$/seg-$Number$.m4s"),
                     segments: segments)
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .microseconds,
        maxDuration: .seconds(3),
        maxIterations: 100_000,
        // The CI gate (make bench-check): allocations per operation are exact for pure values,
        // so a change that allocates more fails (Benchmarks/Thresholds/).
        thresholds: [.mallocCountTotal: .init(relative: [.p90: 2], absolute: [.p90: 2])])

    let renditions = [
        hourLongRendition(id: "aac-256", bytesPerSecond: 32_000),
        hourLongRendition(id: "aac-128", bytesPerSecond: 16_000),
        hourLongRendition(id: "aac-64", bytesPerSecond: 8_000),
    ]
    let mediaPlaylist = try! MediaPlaylist.vod(renditions[1])
    let mediaText = mediaPlaylist.render()
    let secret = Array("benchmark-secret-0123456789abcdef".utf8)
    let signer = try! URLSigner(keys: ["k1": secret, "k2": Array("another-secret-0123456789abcdef".utf8)], activeKeyID: "k2")
    let token = try! signer.sign(pathPrefixes: ["/hls/track-1/", "/media/track-1/"], expires: Timestamp(secondsSince1970: 2_000_000_000))
    let now = Timestamp(secondsSince1970: 1_764_072_000)

    Benchmark("HLS: build + render 1-hour VOD media playlist (600 segments)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! MediaPlaylist.vod(renditions[1]).render())
        }
    }

    Benchmark("HLS: render 1-hour VOD media playlist (prebuilt value)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(mediaPlaylist.render())
        }
    }

    Benchmark("HLS: parse 1-hour VOD media playlist (strict)") { benchmark in
        let parser = HLSParser()
        for _ in benchmark.scaledIterations {
            blackHole(try! parser.parseMedia(mediaText))
        }
    }

    Benchmark("HLS: master playlist for 3 renditions (BANDWIDTH from 1 800 segments)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! MasterPlaylist.make(renditions: renditions) { "\($0.id).m3u8" }.render())
        }
    }

    Benchmark("DASH: build + render 1-hour static MPD (3 representations)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! MPD.vod(renditions: renditions).render())
        }
    }

    Benchmark("DASH: build + render 1-hour static MPD (1 representation)") { benchmark in
        let one = [renditions[1]]
        for _ in benchmark.scaledIterations {
            blackHole(try! MPD.vod(renditions: one).render())
        }
    }

    Benchmark("Signing: verify a token", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(signer.verify(path: "/media/track-1/cmaf/aac-128/seg-42.m4s", token: token, now: now))
        }
    }

    // Reference in the same run: the HMAC-SHA256 that verification cannot avoid.
    Benchmark("Signing: reference HMAC-SHA256 over the token body", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let key = SymmetricKey(data: secret)
        let body = Array(token.utf8.prefix(token.utf8.count - 44))
        for _ in benchmark.scaledIterations {
            blackHole(HMAC<SHA256>.authenticationCode(for: body, using: key))
        }
    }

    Benchmark("Signing: sign a token", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try! signer.sign(pathPrefix: "/hls/track-1/", expires: now))
        }
    }

    Benchmark("Signing: add the token to every URI of a 1-hour playlist + render") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(mediaPlaylist.addingQueryItem(name: "token", value: token).render())
        }
    }

    Benchmark("Ranges: parse + resolve a 3-range header", configuration: .init(scalingFactor: .kilo)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(RangeHeader(parsing: "bytes=0-499, 1000-1499, -500")!.resolve(length: 1_000_000))
        }
    }
}
