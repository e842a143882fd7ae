import Benchmark
import BenchmarkSupport
import Foundation

// The default ladder (aac-256/128/64, opus-160/96/48, mp3-320, flac) from a 5-minute stereo
// 44.1 kHz FLAC, by `streamhost package` (release build, a child process) beside one `ffmpeg`
// command producing the same renditions with the same encoders, bitrates and encoder settings
// (Opus complexity 10, FLAC level 5, LAME quality 2), in the same run. FFmpeg's command: the
// gain as a `volume` filter (it cannot measure and apply loudness in one pass; we do),
// `aresample` to 48 kHz for the lossy renditions, and per rendition a `tee` of its own HLS fMP4
// muxer and a progressive file, so each rendition is encoded once, as ours is. Our run does
// more: loudness and true-peak analysis, the limiter, waveforms and the DASH MPD.
//
// Both sides run as child processes, measured alike: wall time, and the child's peak RSS and
// CPU time (user + system) from wait4(2). (An in-process run is skewed here: the harness blocks
// a thread of Swift's two-thread cooperative pool while an async benchmark runs, which halves
// our parallelism on a 2-core machine.) `make bench` builds `streamhost` in release first.

enum Inputs {
    static let source: String = {
        let path = "\(benchmarkInputDirectory)/package-5min.flac"
        if FileManager.default.fileExists(atPath: path) { return path }
        // Tones plus noise, so that no encoder gets an unrealistically easy signal.
        let signal = "aevalsrc=0.3*sin(2*PI*440*t)+0.2*sin(2*PI*3000*t*(1+0.1*sin(t)))+0.08*(random(0)-0.5)|0.3*sin(2*PI*663*t)+0.1*sin(2*PI*5100*t)+0.08*(random(1)-0.5):s=44100:d=300:c=stereo"
        precondition(ffmpeg(["-v", "error", "-y", "-f", "lavfi", "-i", signal, "-c:a", "flac", "-sample_fmt", "s16", path + ".part.flac"]) == 0)
        try? FileManager.default.moveItem(atPath: path + ".part.flac", toPath: path)
        return path
    }()

    /// The release `streamhost` of the package this benchmark measures.
    static let streamhost: String = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../.build/release/streamhost").standardized.path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            fatalError("build it first: swift build -c release --product streamhost (make bench does)")
        }
        return path
    }()

    /// The reference command for the default ladder, writing under `out`.
    static func ffmpegLadder(out: String, gainDB: Double) -> [String] {
        var arguments = ["-v", "error", "-y", "-i", source]
        func rendition(_ id: String, _ codec: [String], lossy: Bool, progressive: String, hls: Bool = true) {
            var filters = ["volume=\(gainDB)dB"]
            if lossy { filters.append("aresample=48000:resampler=soxr:precision=28") }
            try? FileManager.default.createDirectory(atPath: "\(out)/\(id)", withIntermediateDirectories: true)
            arguments += ["-map", "0:a", "-af", lossy ? filters.joined(separator: ",") : "anull"] + codec
            if hls {
                arguments += ["-f", "tee", "[f=hls:hls_time=6:hls_playlist_type=vod:hls_segment_type=fmp4:hls_fmp4_init_filename=init.mp4:hls_segment_filename=\(out)/\(id)/seg-%d.m4s]\(out)/\(id)/index.m3u8|[f=\(progressive)]\(out)/\(id)/progressive"]
            } else {
                arguments += ["-f", progressive, "\(out)/\(id)/progressive"]
            }
        }
        for kbps in [256, 128, 64] { rendition("aac-\(kbps)", ["-c:a", "aac", "-b:a", "\(kbps)k"], lossy: true, progressive: "ipod") }
        for kbps in [160, 96, 48] { rendition("opus-\(kbps)", ["-c:a", "libopus", "-b:a", "\(kbps)k"], lossy: true, progressive: "ogg") }
        // LAME at the quality ours uses (`lame_set_quality(2)`, LAME's recommended `-h`); FFmpeg
        // leaves LAME's default 3, which costs about 5 s less CPU here for a 5-minute track.
        rendition("mp3-320", ["-c:a", "libmp3lame", "-b:a", "320k", "-compression_level", "2"], lossy: true, progressive: "mp3", hls: false)
        rendition("flac", ["-c:a", "flac", "-strict", "experimental"], lossy: false, progressive: "flac")
        return arguments
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .peakMemoryResident],
        warmupIterations: 0,
        maxDuration: .seconds(120),
        maxIterations: 3
    )
    let source = Inputs.source
    let out = benchmarkInputDirectory + "/package-out"

    let peak = BenchmarkMetric.custom("Child peak RSS (MiB)", polarity: .prefersSmaller, useScalingFactor: false)
    let cpu = BenchmarkMetric.custom("Child CPU user+sys (ms)", polarity: .prefersSmaller, useScalingFactor: false)
    let metrics: [BenchmarkMetric] = [.wallClock, peak, cpu]

    Benchmark("Package 5 min into the default ladder: streamhost package", configuration: .init(metrics: metrics)) { benchmark in
        for _ in benchmark.scaledIterations {
            try? FileManager.default.removeItem(atPath: out)
            let result = spawn(Inputs.streamhost, ["package", source, "--out", out])
            precondition(result.status == 0, "streamhost package failed")
            benchmark.measurement(peak, result.peakKiB / 1024)
            benchmark.measurement(cpu, result.cpuMilliseconds)
        }
    }

    // Forensic watermarking (issue 23): the AAC and Opus renditions of the default ladder, CMAF
    // only, in 1.92-s segments, without and with A/B variants (every lossy rendition encoded
    // twice, from PCM watermarked twice); the ratio is on / off, same run. The stored bytes of
    // each run are a metric too (their ratio is the storage cost).
    let bytes = BenchmarkMetric.custom("Output KiB", polarity: .prefersSmaller, useScalingFactor: false)
    let lossy = "aac-256,aac-128,aac-64,opus-160,opus-96,opus-48"
    for watermarked in [false, true] {
        let name = "Package 5 min, AAC and Opus CMAF in 1.92-s segments: watermark " + (watermarked ? "on (A and B variants)" : "off (reference)")
        Benchmark(name, configuration: .init(metrics: metrics + [bytes])) { benchmark in
            for _ in benchmark.scaledIterations {
                let target = out + (watermarked ? "-watermark" : "-clear")
                try? FileManager.default.removeItem(atPath: target)
                let extra = watermarked ? ["--watermark-key", benchmarkInputDirectory + "/watermark.key"] : ["--segment-duration", "1.92"]
                let result = spawn(Inputs.streamhost, ["package", source, "--out", target, "--ladder", lossy, "--cmaf-only"] + extra)
                precondition(result.status == 0, "streamhost package failed")
                benchmark.measurement(peak, result.peakKiB / 1024)
                benchmark.measurement(cpu, result.cpuMilliseconds)
                benchmark.measurement(bytes, directoryBytes(target + "/cmaf") / 1024)
            }
        }
    }

    Benchmark("Package 5 min into the default ladder: one ffmpeg command (reference)", configuration: .init(metrics: metrics)) { benchmark in
        for _ in benchmark.scaledIterations {
            try? FileManager.default.removeItem(atPath: out + "-ffmpeg")
            let arguments = Inputs.ffmpegLadder(out: out + "-ffmpeg", gainDB: -3)
            let result = spawn("/usr/bin/ffmpeg", arguments)
            precondition(result.status == 0, "ffmpeg failed: \(arguments.joined(separator: " "))")
            benchmark.measurement(peak, result.peakKiB / 1024)
            benchmark.measurement(cpu, result.cpuMilliseconds)
        }
    }
}

/// The bytes of every file under `path`.
func directoryBytes(_ path: String) -> Int {
    let files = FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []
    return files.reduce(0) { total, relative in
        total + ((try? FileManager.default.attributesOfItem(atPath: path + "/" + relative)[.size] as? Int) ?? 0)
    }
}
