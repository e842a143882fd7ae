// A benchmark of your own against Veza Stream's public API, with package-benchmark (the tool the
// project's own benchmarks use): the work an edge does per listener session, measured with
// allocation counts and a threshold a CI step can check (`swift package benchmark
// thresholds check`).
//
//   swift package benchmark --target OwnBenchmark
import Benchmark
import StreamKit

let benchmarks: @Sendable () -> Void = {
    let segments = (0..<600).map { k in SegmentInfo(number: Int64(k + 1), start: Int64(k) * 288_768, duration: 288_768, byteSize: 97_000) }
    let rendition = Rendition(id: "aac-128", codec: .aacLC, sampleRate: 48_000, channelCount: 2, timescale: 48_000,
                              addressing: .template(initialization: "cmaf/$RepresentationID$/init.mp4", media: "cmaf/$RepresentationID$/seg-$Number$.m4s"),
                              segments: segments)
    let signer = try! URLSigner(keys: ["k1": Array("an example key of at least 32 bytes!".utf8)], activeKeyID: "k1")
    let token = try! signer.sign(pathPrefix: "/hls/t1/", expires: Timestamp(secondsSince1970: 4_000_000_000))

    Benchmark("One-hour media playlist, rendered and signed",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(2))) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try MediaPlaylist.vod(rendition).addingQueryItem(name: "token", value: token, scope: .relativeAndHTTP).render())
        }
    }
    Benchmark("Signed URL verified", configuration: .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(1))) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(signer.verify(path: "/hls/t1/aac-128.m3u8", token: token, now: Timestamp(secondsSince1970: 1_900_000_000)))
        }
    }
}
