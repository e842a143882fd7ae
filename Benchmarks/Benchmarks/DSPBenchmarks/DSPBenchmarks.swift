import Benchmark
import CEbur128
import Foundation
import MediaCore

// Loudness (integrated + loudness range + true peak) of 10 minutes of stereo 48 kHz Float32,
// MediaCore's meter beside libebur128 1.2.6 with the same modes, in the same run.
// Both read the same in-memory samples in 4096-frame blocks.

enum Signal {
    static let rate = 48_000
    static let seconds = 600
    /// Deterministic programme-like stereo: tones, noise and a slow envelope.
    static let samples: [Float] = {
        var state: UInt64 = 0x1234_5678
        var out = [Float](repeating: 0, count: rate * seconds * 2)
        for n in 0..<(rate * seconds) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let noise = Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
            let t = Float(n) / Float(rate)
            let envelope = 0.3 * (1.2 + sin(2 * .pi * 0.1 * t))
            out[2 * n] = envelope * (0.5 * sin(2 * .pi * 220 * t) + 0.1 * noise)
            out[2 * n + 1] = envelope * (0.5 * sin(2 * .pi * 330 * t) + 0.1 * noise)
        }
        return out
    }()
    static let block = 4096 * 2
}

/// MediaCore's meter over all of `samples`, in 4096-frame blocks.
func meterWithMediaCore(_ samples: [Float]) -> LoudnessReport {
    var meter = try! LoudnessMeter(sampleRate: Signal.rate, channelCount: 2)
    samples.withUnsafeBufferPointer { all in
        var start = 0
        while start < all.count {
            let end = min(all.count, start + Signal.block)
            meter.process(UnsafeBufferPointer(rebasing: all[start..<end]))
            start = end
        }
    }
    return meter.report
}

/// libebur128 over all of `samples` with the same modes: integrated + range + true peak.
func meterWithLibebur128(_ samples: [Float]) -> Double {
    let mode = Int32(EBUR128_MODE_I.rawValue | EBUR128_MODE_LRA.rawValue | EBUR128_MODE_TRUE_PEAK.rawValue)
    var state: UnsafeMutablePointer<ebur128_state>? = ebur128_init(2, UInt(Signal.rate), mode)
    samples.withUnsafeBufferPointer { all in
        var start = 0
        while start < all.count {
            let end = min(all.count, start + Signal.block)
            _ = ebur128_add_frames_float(state, all.baseAddress! + start, (end - start) / 2)
            start = end
        }
    }
    var integrated = 0.0, range = 0.0, peak = 0.0
    ebur128_loudness_global(state, &integrated)
    ebur128_loudness_range(state, &range)
    ebur128_true_peak(state, 0, &peak)
    ebur128_destroy(&state)
    return integrated + range + peak
}

/// The CPU time of this thread in nanoseconds (steadier than wall time on a shared machine).
func threadCPUNanoseconds() -> Int {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return time.tv_sec * 1_000_000_000 + time.tv_nsec
}

/// The figure the CI gate holds: how many times faster MediaCore's meter is than libebur128
/// (×100), both timed in each iteration of one run, so a slower machine moves both alike.
let speedVersusLibebur128 = BenchmarkMetric.custom("speed vs libebur128 (x100)", polarity: .prefersLarger, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal],
        warmupIterations: 1,
        maxDuration: .seconds(20),
        maxIterations: 8,
        // The CI gate (make bench-check): allocations may not grow, and the loudness meter may not
        // fall below its goal of 3× libebur128 (Benchmarks/Thresholds/ holds 596: 5.96× here, so
        // 296 of headroom). The ratio depends on the processor: a CI machine measured 3.79×, which
        // a tolerance of a third of this machine's figure refused although the goal held.
        thresholds: [
            .mallocCountTotal: .init(relative: [.p90: 5], absolute: [.p90: 4]),
            speedVersusLibebur128: .init(absolute: [.p90: 296]),
        ]
    )
    let samples = Signal.samples

    Benchmark("Loudness I+LRA+TP 10 min stereo 48 kHz: MediaCore") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(meterWithMediaCore(samples))
        }
    }

    Benchmark("Loudness I+LRA+TP 10 min stereo 48 kHz: libebur128 (reference)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(meterWithLibebur128(samples))
        }
    }

    Benchmark("Loudness: MediaCore's speed relative to libebur128",
              configuration: .init(metrics: [speedVersusLibebur128], warmupIterations: 1, maxDuration: .seconds(30), maxIterations: 6)) { benchmark in
        for _ in benchmark.scaledIterations {
            let start = threadCPUNanoseconds()
            blackHole(meterWithMediaCore(samples))
            let middle = threadCPUNanoseconds()
            blackHole(meterWithLibebur128(samples))
            let end = threadCPUNanoseconds()
            benchmark.measurement(speedVersusLibebur128, (end - middle) * 100 / max(1, middle - start))
        }
    }
}
