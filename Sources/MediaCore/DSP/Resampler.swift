/// Quality presets of ``Resampler``.
///
/// Both are Kaiser-windowed sinc polyphase filters designed at init. Band edges are given
/// relative to the lower of the two Nyquist frequencies (22.05 kHz for 44.1 ↔ 48 kHz). Figures
/// are those measured by the test suite for 44.1 ↔ 48 kHz (FFT of sine tones 100 Hz…20 kHz,
/// 7-term Blackman–Harris window); `NOTES.md` of the resampler has the full tables and the
/// same figures for libsoxr HQ and libswresample's default.
public enum ResamplerQuality: Sendable, Hashable {
    /// The pipeline's default: 176 taps per output sample at 44.1→48 kHz, 192 at 48→44.1 kHz.
    ///
    /// Passband up to 20 kHz (90.7 %) flat within ±0.01 dB (measured < 0.00001 dB); stopband
    /// from the lower Nyquist frequency, designed for 125 dB: spurious components of passband
    /// tones ≤ −146 dB, images of 20.5…22 kHz tones (44.1→48) ≤ −129.9 dB, a 23 kHz tone into
    /// 48→44.1 kHz left at −132.6 dB.
    case high
    /// A cheaper filter, at least as good as libswresample's default on every figure of the same
    /// test: 64 taps per output sample at 44.1→48 kHz, 80 at 48→44.1 kHz.
    ///
    /// Passband up to 20 kHz flat within ±0.01 dB (measured 0.00014 dB; libswresample −0.50 dB
    /// and −1.28 dB at 20 kHz); stopband from 109.3 % of the lower Nyquist frequency (24.1 kHz
    /// at 44.1 kHz), designed for 93 dB: spurious components of passband tones ≤ −101.7 dB
    /// (libswresample −28.9 dB and −96.5 dB). The transition band straddles the Nyquist
    /// frequency, so content between 20 and 24.1 kHz may alias, landing above 20 kHz only
    /// (a 23 kHz tone into 48→44.1 kHz: −26.5 dB; libswresample −19.9 dB).
    case medium
}

/// Errors thrown by ``Resampler/init(inputRate:outputRate:channelCount:quality:)``.
public enum ResamplerError: Error, Sendable, Hashable {
    /// The rate (in Hz) is not one of 8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200,
    /// 96000, 176400 or 192000.
    case unsupportedRate(Int)
    /// The channel count is outside 1…32.
    case invalidChannelCount(Int)
}

/// Streaming sample-rate converter for interleaved Float32 audio.
///
/// A value type: use one per stream, from one task. Filters are designed at init (windowed-sinc
/// polyphase FIR, Kaiser window, one row of coefficients per output phase of the exact rational
/// ratio between the rates). Output is time-aligned with the input: the filter's look-ahead
/// (``latencyFrames``) is absorbed, so output frame `n` is the signal at time `n / outputRate`,
/// and after ``flush()`` the total output length is `round(totalInput × outputRate / inputRate)`.
/// Processing is deterministic: any split of the input into blocks gives bit-identical output.
///
/// ```swift
/// var resampler = try Resampler(inputRate: 44_100, outputRate: 48_000, channelCount: 2)
/// var out: [Float] = []
/// for block in blocks { block.withUnsafeBufferPointer { resampler.process($0, appendingTo: &out) } }
/// out += resampler.flush()
/// ```
public struct Resampler: Sendable {
    /// Sample rates accepted by the resampler, in Hz.
    public static let supportedRates: [Int] = [
        8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000,
    ]
    /// The largest accepted channel count.
    public static let maximumChannelCount = 32

    /// Input sample rate in Hz.
    public let inputRate: Int
    /// Output sample rate in Hz.
    public let outputRate: Int
    /// Number of interleaved channels in input and output.
    public let channelCount: Int
    /// The quality preset the filters were designed for.
    public let quality: ResamplerQuality
    /// Latency of the filter in output frames (compensated internally: output is time-aligned).
    ///
    /// This is how many output frames the resampler holds back until more input (or ``flush()``)
    /// arrives; it is never inserted into the output. Zero when the rates are equal.
    public let latencyFrames: Int

    private var core: PolyphaseResamplerCore?

    /// Creates a resampler and designs its filter.
    ///
    /// - Parameters:
    ///   - inputRate: Input sample rate in Hz, one of ``supportedRates``.
    ///   - outputRate: Output sample rate in Hz, one of ``supportedRates``.
    ///   - channelCount: Interleaved channels, 1…32.
    ///   - quality: Filter preset; ``ResamplerQuality/high`` by default.
    /// - Throws: ``ResamplerError/unsupportedRate(_:)`` or ``ResamplerError/invalidChannelCount(_:)``.
    public init(
        inputRate: Int,
        outputRate: Int,
        channelCount: Int,
        quality: ResamplerQuality = .high
    ) throws(ResamplerError) {
        guard Self.supportedRates.contains(inputRate) else { throw .unsupportedRate(inputRate) }
        guard Self.supportedRates.contains(outputRate) else { throw .unsupportedRate(outputRate) }
        guard (1...Self.maximumChannelCount).contains(channelCount) else {
            throw .invalidChannelCount(channelCount)
        }
        self.inputRate = inputRate
        self.outputRate = outputRate
        self.channelCount = channelCount
        self.quality = quality
        if inputRate == outputRate {
            core = nil
            latencyFrames = 0
        } else {
            let bank = PolyphaseFilterBank(
                inputRate: inputRate,
                outputRate: outputRate,
                specification: ResamplerFilterSpecification(quality: quality)
            )
            core = PolyphaseResamplerCore(bank: bank, channelCount: channelCount)
            latencyFrames = bank.latencyInOutputFrames
        }
    }

    /// Feeds interleaved Float32 frames; returns the interleaved output frames ready so far.
    ///
    /// `input.count` must be a multiple of ``channelCount``.
    public mutating func process(_ input: [Float]) -> [Float] {
        var output: [Float] = []
        input.withUnsafeBufferPointer { process($0, appendingTo: &output) }
        return output
    }

    /// Same, appending to `output` without intermediate allocation (the fast path).
    ///
    /// `input.count` must be a multiple of ``channelCount``. Frames are appended interleaved.
    public mutating func process(_ input: UnsafeBufferPointer<Float>, appendingTo output: inout [Float]) {
        precondition(
            input.count % channelCount == 0,
            "input length \(input.count) is not a multiple of the channel count \(channelCount)"
        )
        guard core != nil else {
            output.append(contentsOf: input)
            return
        }
        core!.process(input, appendingTo: &output)
    }

    /// Ends the stream: returns the remaining frames so that the total output length is
    /// round(totalInput × outputRate / inputRate) (±1).
    ///
    /// The resampler is then reset to its initial state and can take a new stream.
    public mutating func flush() -> [Float] {
        var output: [Float] = []
        guard core != nil else { return output }
        core!.flush(appendingTo: &output)
        return output
    }
}
