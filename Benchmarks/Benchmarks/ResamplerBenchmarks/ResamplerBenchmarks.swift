// Resampler speed: 60 s of stereo Float32, 44.1 → 48 kHz, single thread, in 4096-frame
// blocks: MediaCore `high` beside libsoxr HQ, MediaCore `medium` beside libswresample's
// default, in the same run. (Quality figures of all four: the MediaCore test suite and
// BENCHMARKS.md.) For the haswell figures build with
// `swift package benchmark -Xswiftc -target-cpu -Xswiftc haswell` (see BENCHMARKS.md).
import Benchmark
internal import CSoxr
internal import CSwresample
import Foundation
import MediaCore

// MARK: Converters under test

/// A whole-stream converter: interleaved blocks in, interleaved output appended.
protocol StreamConverter {
    mutating func process(_ input: UnsafeBufferPointer<Float>, appendingTo output: inout [Float])
    mutating func finish(appendingTo output: inout [Float])
}

struct SwiftConverter: StreamConverter {
    var resampler: Resampler
    init(inputRate: Int, outputRate: Int, channels: Int, quality: ResamplerQuality) {
        resampler = try! Resampler(inputRate: inputRate, outputRate: outputRate, channelCount: channels, quality: quality)
    }
    mutating func process(_ input: UnsafeBufferPointer<Float>, appendingTo output: inout [Float]) {
        resampler.process(input, appendingTo: &output)
    }
    mutating func finish(appendingTo output: inout [Float]) { output += resampler.flush() }
}

/// Owns one `soxr_t` (freed in `deinit`); used from one thread.
final class SoxrConverter: StreamConverter {
    let handle: soxr_t
    let channels: Int
    let ratio: Double

    init(inputRate: Int, outputRate: Int, channels: Int) {
        var io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
        var quality = soxr_quality_spec(csoxr_recipe_hq(), 0)
        var error: soxr_error_t?
        handle = soxr_create(Double(inputRate), Double(outputRate), UInt32(channels), &error, &io, &quality, nil)!
        precondition(error == nil)
        self.channels = channels
        ratio = Double(outputRate) / Double(inputRate)
    }
    deinit { soxr_delete(handle) }

    /// Writes straight into `output`'s tail (zero-filled, then trimmed), like `Resampler` does.
    private func run(_ input: UnsafePointer<Float>?, frames: Int, appendingTo output: inout [Float]) {
        let room = Int(Double(frames) * ratio) + 64
        let first = output.count
        output.append(contentsOf: repeatElement(0, count: room * channels))
        var done = 0
        let error = output.withUnsafeMutableBufferPointer { out in
            soxr_process(handle, input, frames, nil, out.baseAddress! + first, room, &done)
        }
        precondition(error == nil)
        output.removeLast((room - done) * channels)
    }
    func process(_ input: UnsafeBufferPointer<Float>, appendingTo output: inout [Float]) {
        run(input.baseAddress, frames: input.count / channels, appendingTo: &output)
    }
    func finish(appendingTo output: inout [Float]) {
        while true {
            let before = output.count
            run(nil, frames: 0, appendingTo: &output)
            if output.count == before { break }
        }
    }
}

/// Owns one `SwrContext` with libswresample's default options (freed in `deinit`).
final class SwresampleConverter: StreamConverter {
    var context: OpaquePointer?
    let channels: Int
    let ratio: Double

    init(inputRate: Int, outputRate: Int, channels: Int) {
        var layout = AVChannelLayout()
        cswr_default_layout(&layout, Int32(channels))
        var outLayout = layout
        let status = swr_alloc_set_opts2(
            &context, &outLayout, AV_SAMPLE_FMT_FLT, Int32(outputRate),
            &layout, AV_SAMPLE_FMT_FLT, Int32(inputRate), 0, nil
        )
        precondition(status == 0 && swr_init(context) == 0)
        self.channels = channels
        ratio = Double(outputRate) / Double(inputRate)
    }
    deinit { swr_free(&context) }

    /// Writes straight into `output`'s tail (zero-filled, then trimmed), like `Resampler` does.
    private func run(_ input: UnsafePointer<Float>?, frames: Int, appendingTo output: inout [Float]) -> Int {
        let room = Int(Double(frames) * ratio) + 64
        let first = output.count
        output.append(contentsOf: repeatElement(0, count: room * channels))
        let produced = output.withUnsafeMutableBufferPointer { out -> Int32 in
            var outPlane: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(out.baseAddress! + first)
                .assumingMemoryBound(to: UInt8.self)
            guard let input else { return swr_convert(context, &outPlane, Int32(room), nil, 0) }
            var inPlane: UnsafePointer<UInt8>? = UnsafeRawPointer(input).assumingMemoryBound(to: UInt8.self)
            return swr_convert(context, &outPlane, Int32(room), &inPlane, Int32(frames))
        }
        precondition(produced >= 0)
        output.removeLast((room - Int(produced)) * channels)
        return Int(produced)
    }
    func process(_ input: UnsafeBufferPointer<Float>, appendingTo output: inout [Float]) {
        _ = run(input.baseAddress, frames: input.count / channels, appendingTo: &output)
    }
    func finish(appendingTo output: inout [Float]) {
        while run(nil, frames: 0, appendingTo: &output) > 0 {}
    }
}

func convertWhole(_ converter: inout some StreamConverter, _ input: [Float]) -> [Float] {
    var output: [Float] = []
    input.withUnsafeBufferPointer { converter.process($0, appendingTo: &output) }
    converter.finish(appendingTo: &output)
    return output
}


enum Input {
    static let rate = 44_100
    /// 60 s of a stereo tone pair with a little noise.
    static let samples: [Float] = {
        var state: UInt64 = 42
        return (0..<(rate * 60)).flatMap { n -> [Float] in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let noise = Float(Int64(bitPattern: state) >> 40) / Float(1 << 23) * 0.01
            let t = Float(n) / Float(rate)
            return [0.5 * sin(2 * .pi * 997 * t) + noise, 0.4 * sin(2 * .pi * 3001 * t) - noise]
        }
    }()

    static func run(_ converter: inout some StreamConverter) -> Int {
        var output: [Float] = []
        output.reserveCapacity(samples.count * 48_000 / 44_100 + 8192)
        samples.withUnsafeBufferPointer { all in
            var start = 0
            while start < all.count {
                let end = min(all.count, start + 4096 * 2)
                converter.process(UnsafeBufferPointer(rebasing: all[start..<end]), appendingTo: &output)
                start = end
            }
        }
        converter.finish(appendingTo: &output)
        return output.count
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal],
        warmupIterations: 1,
        maxDuration: .seconds(20),
        maxIterations: 9
    )
    let samples = Input.samples
    blackHole(samples.count)
    Benchmark("Resample 60 s stereo 44.1→48 kHz: MediaCore high") { benchmark in
        for _ in benchmark.scaledIterations {
            var c = SwiftConverter(inputRate: 44_100, outputRate: 48_000, channels: 2, quality: .high)
            blackHole(Input.run(&c))
        }
    }
    Benchmark("Resample 60 s stereo 44.1→48 kHz: libsoxr HQ (reference)") { benchmark in
        for _ in benchmark.scaledIterations {
            var c = SoxrConverter(inputRate: 44_100, outputRate: 48_000, channels: 2)
            blackHole(Input.run(&c))
        }
    }
    Benchmark("Resample 60 s stereo 44.1→48 kHz: MediaCore medium") { benchmark in
        for _ in benchmark.scaledIterations {
            var c = SwiftConverter(inputRate: 44_100, outputRate: 48_000, channels: 2, quality: .medium)
            blackHole(Input.run(&c))
        }
    }
    Benchmark("Resample 60 s stereo 44.1→48 kHz: libswresample default (reference)") { benchmark in
        for _ in benchmark.scaledIterations {
            var c = SwresampleConverter(inputRate: 44_100, outputRate: 48_000, channels: 2)
            blackHole(Input.run(&c))
        }
    }
}
