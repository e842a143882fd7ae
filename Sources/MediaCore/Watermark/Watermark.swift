import Foundation
internal import Crypto

/// The secret that spreads a track's watermark: 32 bytes, from which the chip sequence (a
/// pseudo-random ±1 per time-frequency cell) is derived. Without it the watermark's pattern is
/// indistinguishable from noise; with it the detector correlates against the exact pattern.
/// Its description never shows the bytes.
public struct WatermarkKey: Sendable, Hashable, CustomStringConvertible {
    /// The key's bytes (32).
    public let bytes: [UInt8]

    /// A key of exactly 32 bytes; nil otherwise.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// A fresh random key.
    public static func random() -> WatermarkKey {
        WatermarkKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) })!
    }

    public var description: String { "WatermarkKey(32 bytes, redacted)" }
}

/// Which of a segment's two encodings: they differ only by the sign of the watermark.
public enum WatermarkVariant: String, Sendable, Hashable, CaseIterable, Codable {
    /// The variant that carries bit 0 (the pattern subtracted).
    case a
    /// The variant that carries bit 1 (the pattern added).
    case b

    /// −1 for ``a``, +1 for ``b``.
    var sign: Float { self == .a ? -1 : 1 }

    /// The variant that carries `bit`.
    public init(bit: Bool) { self = bit ? .b : .a }
}

/// The watermark's time-frequency layout and strength.
///
/// The watermark is spread-spectrum in the short-time Fourier domain: every bin of every frame in
/// the band gets its magnitude scaled by `1 ± α·c`, where `c` is the key's ±1 chip for that cell
/// and the sign is the variant's. α follows a conservative psychoacoustic bound: in each bin the
/// change lies ``maskingMargin`` dB below the masking threshold of a *tonal* masker of the bin's
/// own level (Johnston's tone-masking-noise offset of 14.5 + z dB, z the bin's critical-band rate
/// in Bark), the strictest case, ignoring the spreading between bands that only raises the
/// threshold. It is then scaled by ``strength``.
public struct WatermarkParameters: Sendable, Hashable, Codable {
    /// The sample rate the watermark is embedded and read at (the ladder's 48 kHz).
    public var sampleRate: Int = 48_000
    /// Frames of the transform (50 % overlap, sine window for analysis and synthesis).
    public var frameSize: Int = 2_048
    /// The band the watermark occupies, in Hz: where music has energy, and below every lossy
    /// encoder's cut-off at the bit rates a leak uses (MP3 128 kb/s, AAC 96 kb/s, Opus 64 kb/s).
    public var lowestFrequency: Double = 500
    /// The top of the band, in Hz.
    public var highestFrequency: Double = 6_000
    /// Decibels below the tonal masking threshold.
    public var maskingMargin: Double = 3
    /// A factor on α (1 is the psychoacoustic bound above).
    public var strength: Double = 1

    /// Hop between frames, in samples.
    public var hop: Int { frameSize / 2 }

    /// The defaults above.
    public static let `default` = WatermarkParameters()

    /// Creates parameters; the defaults are the ones the ladder uses.
    public init(sampleRate: Int = 48_000, frameSize: Int = 2_048, lowestFrequency: Double = 500, highestFrequency: Double = 6_000,
                maskingMargin: Double = 3, strength: Double = 1) {
        self.sampleRate = sampleRate
        self.frameSize = frameSize
        self.lowestFrequency = lowestFrequency
        self.highestFrequency = highestFrequency
        self.maskingMargin = maskingMargin
        self.strength = strength
    }

    /// The bins in the band.
    var bins: Range<Int> {
        let resolution = Double(sampleRate) / Double(frameSize)
        return max(1, Int((lowestFrequency / resolution).rounded(.up)))..<min(frameSize / 2, Int((highestFrequency / resolution).rounded(.down)) + 1)
    }

    /// α for each bin of ``bins`` (see the type's description).
    var alphas: [Float] {
        let resolution = Double(sampleRate) / Double(frameSize)
        return bins.map { bin in
            let f = Double(bin) * resolution
            let bark = 13 * atan(0.000_76 * f) + 3.5 * atan((f / 7_500) * (f / 7_500))
            return Float(strength * pow(10, -(14.5 + bark + maskingMargin) / 20))
        }
    }

    /// The watermark's level in dB against the signal, per bin, at this strength (−20·log10 α):
    /// between 22 dB (500 Hz) and 37 dB (6 kHz) with the defaults.
    public var levelBelowSignal: ClosedRange<Double> {
        let levels = alphas.map { -20 * log10(Double($0)) }
        return (levels.min() ?? 0)...(levels.max() ?? 0)
    }
}

/// The chip sequence: frame `j`'s ±1 chips over the band's bins, HMAC-SHA-256(key, j) expanded
/// by counter (256 chips per block).
struct WatermarkChips {
    let key: SymmetricKey
    let count: Int

    init(key: WatermarkKey, count: Int) {
        self.key = SymmetricKey(data: key.bytes)
        self.count = count
    }

    /// Frame `frame`'s chips, +1 or −1, `count` of them.
    func chips(frame: Int, into chips: inout [Float]) {
        chips.removeAll(keepingCapacity: true)
        var block: UInt32 = 0
        while chips.count < count {
            var message = [UInt8](repeating: 0, count: 12)
            withUnsafeBytes(of: Int64(frame).bigEndian) { message.replaceSubrange(0..<8, with: $0) }
            withUnsafeBytes(of: block.bigEndian) { message.replaceSubrange(8..<12, with: $0) }
            let mac = HMAC<SHA256>.authenticationCode(for: message, using: key)
            for byte in mac {
                for bit in 0..<8 where chips.count < count {
                    chips.append(byte & (1 << bit) != 0 ? 1 : -1)
                }
            }
            block += 1
        }
    }
}

/// What the embedder and the detector share for one key and layout: the transform, the window,
/// the band's bins with their α, and the chip sequence.
final class WatermarkTransform {
    let fft: RealFFT
    let window: [Float]
    let band: Range<Int>
    let alphas: [Float]
    let chips: WatermarkChips

    init(key: WatermarkKey, parameters: WatermarkParameters) throws(MediaError) {
        fft = try RealFFT(size: parameters.frameSize)
        window = sineWindow(parameters.frameSize)
        band = parameters.bins
        alphas = parameters.alphas
        chips = WatermarkChips(key: key, count: band.count)
    }
}

/// The sine window of `size` (periodic): its square sums to one at 50 % overlap, so analysis and
/// synthesis with it reconstruct exactly.
func sineWindow(_ size: Int) -> [Float] {
    (0..<size).map { Float(sin(Double.pi * (Double($0) + 0.5) / Double(size))) }
}
