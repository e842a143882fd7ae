internal import CFFmpeg

/// A real-input discrete Fourier transform of one size, forward and inverse: libavutil's `av_tx`
/// (`AV_TX_FLOAT_RDFT`, FFmpeg ≥ 5.1), which MediaCore links already and which has SIMD kernels
/// for x86 and ARM. Not thread-safe: one per thread (the contexts hold scratch memory).
///
/// The forward transform maps `size` samples to `size / 2 + 1` complex bins, interleaved
/// (re, im); the inverse maps them back, scaled by `1 / size` so that a round trip is exact.
final class RealFFT {
    let size: Int
    private var forwardContext: OpaquePointer?
    private var inverseContext: OpaquePointer?
    private let forwardFunction: av_tx_fn
    private let inverseFunction: av_tx_fn
    /// Aligned scratch: av_tx requires the CPU's SIMD alignment, and the inverse overwrites its input.
    private let input: UnsafeMutablePointer<Float>
    private let spectrum: UnsafeMutablePointer<Float>

    /// The largest size with a fast transform in FFmpeg 5.1.
    static let maximumSize = 1 << 17

    /// Bins of the forward transform.
    var binCount: Int { size / 2 + 1 }

    init(size: Int) throws(MediaError) {
        // FFmpeg 5.1's power-of-two tables stop at 2^17: beyond, av_tx falls back to a direct
        // O(n²) transform (measured: 2^19 did not finish in a minute).
        precondition(size >= 16 && size <= Self.maximumSize && size & (size - 1) == 0, "RealFFT needs a power of two up to 2^17")
        self.size = size
        var forward: OpaquePointer?
        var inverse: OpaquePointer?
        var forwardFunction: av_tx_fn?
        var inverseFunction: av_tx_fn?
        var unit: Float = 1
        var inverseScale: Float = 1 / Float(size)
        let forwardResult = AVResult(av_tx_init(&forward, &forwardFunction, AV_TX_FLOAT_RDFT, 0, Int32(size), &unit, 0))
        let inverseResult = AVResult(av_tx_init(&inverse, &inverseFunction, AV_TX_FLOAT_RDFT, 1, Int32(size), &inverseScale, 0))
        guard !forwardResult.isError, !inverseResult.isError, let forwardFunction, let inverseFunction else {
            av_tx_uninit(&forward)
            av_tx_uninit(&inverse)
            throw (forwardResult.isError ? forwardResult : inverseResult).error("av_tx_init (RDFT \(size))", default: .internalFailure)
        }
        forwardContext = forward
        inverseContext = inverse
        self.forwardFunction = forwardFunction
        self.inverseFunction = inverseFunction
        input = av_malloc((size + 2) * MemoryLayout<Float>.stride)!.bindMemory(to: Float.self, capacity: size + 2)
        spectrum = av_malloc((size + 2) * MemoryLayout<Float>.stride)!.bindMemory(to: Float.self, capacity: size + 2)
    }

    deinit {
        av_tx_uninit(&forwardContext)
        av_tx_uninit(&inverseContext)
        av_free(input)
        av_free(spectrum)
    }

    /// The spectrum of `samples` (exactly `size` of them) into `bins` (`2 * binCount` floats).
    func forward(_ samples: UnsafeBufferPointer<Float>, into bins: UnsafeMutableBufferPointer<Float>) {
        precondition(samples.count == size && bins.count >= 2 * binCount)
        input.update(from: samples.baseAddress!, count: size)
        forwardFunction(forwardContext, spectrum, input, MemoryLayout<Float>.stride)
        bins.baseAddress!.update(from: spectrum, count: 2 * binCount)
        // A real signal's DC and Nyquist bins are real. FFmpeg 5.1's RDFT does not always write
        // their imaginary parts (the test caught uninitialised memory at Nyquist): zero, exactly.
        bins[1] = 0
        bins[size + 1] = 0
    }

    /// The `size` samples whose spectrum is `bins` (`2 * binCount` floats).
    func inverse(_ bins: UnsafeBufferPointer<Float>, into samples: UnsafeMutableBufferPointer<Float>) {
        precondition(bins.count >= 2 * binCount && samples.count >= size)
        spectrum.update(from: bins.baseAddress!, count: 2 * binCount)
        inverseFunction(inverseContext, input, spectrum, MemoryLayout<Float>.stride)
        samples.baseAddress!.update(from: input, count: size)
    }
}
