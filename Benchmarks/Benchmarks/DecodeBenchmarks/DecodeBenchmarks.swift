import Benchmark
import BenchmarkSupport
import Foundation
import MediaCore

// Decode throughput of MediaCore beside the reference, `ffmpeg -f null`, on the same files in
// the same run. Each iteration decodes a whole 5-minute stereo 44.1 kHz file (13,230,000
// samples per channel). The ffmpeg figure includes its process start-up (about 40 ms here:
// mapping libavcodec and its dependencies), which MediaCore pays once per process instead.

/// Makes the benchmark inputs once, with the real ffmpeg, under the system temp directory.
enum Inputs {
    static let seconds = 300
    static func file(_ name: String, _ encode: [String]) -> String {
        let path = "\(benchmarkInputDirectory)/\(name)"
        if FileManager.default.fileExists(atPath: path) { return path }
        let source = "aevalsrc=0.4*sin(2*PI*440*t)+0.05*(random(0)-0.5)|0.3*sin(2*PI*663*t)+0.05*(random(1)-0.5):s=44100:d=\(seconds):c=stereo"
        ffmpeg(["-v", "error", "-y", "-f", "lavfi", "-i", source] + encode + [path + ".part." + (name as NSString).pathExtension])
        try? FileManager.default.moveItem(atPath: path + ".part." + (name as NSString).pathExtension, toPath: path)
        return path
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .peakMemoryResident],
        warmupIterations: 1,
        maxDuration: .seconds(15),
        maxIterations: 10
    )
    let files: [(String, String)] = [
        ("MP3", Inputs.file("bench.mp3", ["-c:a", "libmp3lame", "-b:a", "192k"])),
        ("FLAC", Inputs.file("bench.flac", ["-c:a", "flac", "-sample_fmt", "s16"])),
        ("AAC", Inputs.file("bench.m4a", ["-c:a", "aac", "-b:a", "192k"])),
    ]
    // ffmpeg's fixed cost per run (start-up, probing, teardown) on an input of one frame, so
    // that the reference's decode time can also be read without it.
    let tiny = Inputs.file("tiny.flac", ["-c:a", "flac", "-sample_fmt", "s16", "-t", "0.01"])
    Benchmark("ffmpeg process start-up (10 ms file)") { benchmark in
        for _ in benchmark.scaledIterations {
            precondition(ffmpeg(["-v", "error", "-threads", "1", "-i", tiny, "-f", "null", "-"]) == 0)
        }
    }
    for (name, path) in files {
        Benchmark("Decode \(name) 5 min: MediaCore") { benchmark in
            for _ in benchmark.scaledIterations {
                do {
                    let decoder = try AudioDecoder(path: path, options: .init(channelMode: .preserve))
                    var frames = 0
                    while let block = try decoder.read() { frames += block.frameCount }
                    blackHole(frames)
                } catch {
                    fatalError("decode failed: \(error)")
                }
            }
        }
        Benchmark("Decode \(name) 5 min: ffmpeg -f null (reference)") { benchmark in
            for _ in benchmark.scaledIterations {
                let status = ffmpeg(["-v", "error", "-threads", "1", "-i", path, "-f", "null", "-"])
                precondition(status == 0, "ffmpeg failed")
            }
        }
    }
}
