#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Loudness of a programme per ITU-R BS.1770-4 and EBU R 128 (Tech 3341, Tech 3342).
public struct LoudnessReport: Sendable, Hashable, Codable {
    /// Gated integrated loudness, LUFS (−∞ as `-Double.infinity` encodes as nil in JSON).
    public var integratedLoudness: Double
    /// Loudness range (EBU Tech 3342), LU.
    public var loudnessRange: Double
    /// Largest true (inter-sample) peak over all channels, dBTP.
    public var truePeak: Double
    /// Largest sample peak over all channels, dBFS.
    public var samplePeak: Double
    /// Largest momentary (400 ms) loudness, LUFS.
    public var maximumMomentaryLoudness: Double
    /// Largest short-term (3 s) loudness, LUFS.
    public var maximumShortTermLoudness: Double
    /// Frames measured.
    public var frameCount: Int64
    public var sampleRate: Int

    enum CodingKeys: String, CodingKey {
        case integratedLoudness, loudnessRange, truePeak, samplePeak, maximumMomentaryLoudness,
             maximumShortTermLoudness, frameCount, sampleRate
    }

    public init(integratedLoudness: Double, loudnessRange: Double, truePeak: Double, samplePeak: Double,
                maximumMomentaryLoudness: Double, maximumShortTermLoudness: Double, frameCount: Int64, sampleRate: Int) {
        self.integratedLoudness = integratedLoudness
        self.loudnessRange = loudnessRange
        self.truePeak = truePeak
        self.samplePeak = samplePeak
        self.maximumMomentaryLoudness = maximumMomentaryLoudness
        self.maximumShortTermLoudness = maximumShortTermLoudness
        self.frameCount = frameCount
        self.sampleRate = sampleRate
    }

    // Silence measures −∞; JSON has no infinity, so −∞ is written as null and read back.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func level(_ key: CodingKeys) throws -> Double { try c.decodeIfPresent(Double.self, forKey: key) ?? -.infinity }
        integratedLoudness = try level(.integratedLoudness)
        loudnessRange = try c.decode(Double.self, forKey: .loudnessRange)
        truePeak = try level(.truePeak)
        samplePeak = try level(.samplePeak)
        maximumMomentaryLoudness = try level(.maximumMomentaryLoudness)
        maximumShortTermLoudness = try level(.maximumShortTermLoudness)
        frameCount = try c.decode(Int64.self, forKey: .frameCount)
        sampleRate = try c.decode(Int.self, forKey: .sampleRate)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        func level(_ value: Double, _ key: CodingKeys) throws {
            if value.isFinite { try c.encode((value * 100).rounded() / 100, forKey: key) } else { try c.encodeNil(forKey: key) }
        }
        try level(integratedLoudness, .integratedLoudness)
        try c.encode((loudnessRange * 100).rounded() / 100, forKey: .loudnessRange)
        try level(truePeak, .truePeak)
        try level(samplePeak, .samplePeak)
        try level(maximumMomentaryLoudness, .maximumMomentaryLoudness)
        try level(maximumShortTermLoudness, .maximumShortTermLoudness)
        try c.encode(frameCount, forKey: .frameCount)
        try c.encode(sampleRate, forKey: .sampleRate)
    }
}

/// A streaming EBU R 128 meter: momentary, short-term and integrated loudness, loudness
/// range, sample peak and true peak, at any sample rate and channel count.
///
/// K-weighting is the BS.1770 two-stage filter (high shelf, then RLB high-pass) re-derived for
/// the sample rate by the bilinear transform, run in double precision, two channels per SIMD
/// register. Instead of re-summing 400 ms of filtered samples every 100 ms, the meter keeps
/// the energy of each 100 ms segment; a gating block is the sum of four, a short-term window
/// the sum of thirty. Gating blocks (400 ms, 75 % overlap) and loudness-range windows (3 s,
/// every second) follow libebur128's timing, so the two agree to within rounding.
public struct LoudnessMeter: Sendable {
    public let sampleRate: Int
    public let channelCount: Int
    /// BS.1770 channel weights (1.0 front, 1.41 surround, 0 for LFE).
    public let channelWeights: [Double]

    /// Frames per 100 ms segment (rounded, as libebur128 does).
    let segmentFrames: Int
    private var filters: [KWeightingPair]
    /// Energy of the segment being filled, per channel.
    private var partial: [Double]
    private var partialFrames = 0
    /// Weighted energy sums (not means) of completed 100 ms segments, most recent last (≤ 30 kept).
    private var segments: [Double] = []
    private var segmentCount = 0
    /// Mean energies of gating blocks at or above the absolute gate.
    private var gatingBlocks: [Double] = []
    /// Mean energies of 3 s windows at or above the absolute gate (for the loudness range).
    private var shortTermBlocks: [Double] = []
    private var maxMomentaryEnergy = 0.0
    private var maxShortTermEnergy = 0.0
    private var truePeakDetector: TruePeakDetector
    public private(set) var frameCount: Int64 = 0

    /// Energy of −70 LUFS, the absolute gate.
    static let absoluteGate = pow(10.0, (-70.0 + 0.691) / 10)

    /// Weights per channel index as libebur128 assigns them by channel count
    /// (L R C LFE Ls Rs for six channels; L R C Ls Rs for five; L R Ls Rs for four).
    public static func defaultWeights(channelCount: Int) -> [Double] {
        switch channelCount {
        case 4: return [1, 1, 1.41, 1.41]
        case 5: return [1, 1, 1, 1.41, 1.41]
        default: return (0..<channelCount).map { [1, 1, 1, 0, 1.41, 1.41][safe: $0] ?? 0 }
        }
    }

    /// - Parameters:
    ///   - sampleRate: the input's rate in Hz (16 Hz to 768 kHz).
    ///   - channelCount: interleaved channels of the input.
    ///   - channelWeights: one weight per channel; default ``defaultWeights(channelCount:)``.
    public init(sampleRate: Int, channelCount: Int, channelWeights: [Double]? = nil) throws(MediaError) {
        guard sampleRate >= 16, sampleRate <= 768_000 else {
            throw MediaError(.unsupportedParameters, "loudness needs a sample rate in 16…768000 Hz, not \(sampleRate)")
        }
        guard channelCount >= 1, channelCount <= 64 else {
            throw MediaError(.unsupportedParameters, "loudness needs 1…64 channels, not \(channelCount)")
        }
        let weights = channelWeights ?? Self.defaultWeights(channelCount: channelCount)
        guard weights.count == channelCount else {
            throw MediaError(.unsupportedParameters, "\(weights.count) channel weights for \(channelCount) channels")
        }
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        self.channelWeights = weights
        segmentFrames = (sampleRate + 5) / 10
        filters = (0..<(channelCount + 1) / 2).map { _ in KWeightingPair(sampleRate: Double(sampleRate)) }
        partial = [Double](repeating: 0, count: (channelCount + 1) / 2 * 2)
        truePeakDetector = TruePeakDetector(sampleRate: sampleRate, channelCount: channelCount)
    }

    /// Measures a block of interleaved frames (any length; state carries across calls).
    public mutating func process(_ interleaved: UnsafeBufferPointer<Float>) {
        let frames = interleaved.count / channelCount
        guard frames > 0 else { return }
        truePeakDetector.process(UnsafeBufferPointer(rebasing: interleaved[0..<frames * channelCount]))
        var start = 0
        while start < frames {
            let end = min(frames, start + (segmentFrames - partialFrames))
            for pair in 0..<filters.count {
                let left = pair * 2
                let right = left + 1 < channelCount ? left + 1 : -1
                var sum = SIMD2<Double>(partial[left], partial[left + 1])
                filters[pair].run(interleaved, channels: channelCount, left: left, right: right,
                                  from: start, to: end, energy: &sum)
                partial[left] = sum.x
                partial[left + 1] = sum.y
            }
            partialFrames += end - start
            start = end
            if partialFrames == segmentFrames { completeSegment() }
        }
        frameCount += Int64(frames)
    }

    /// Convenience for arrays.
    public mutating func process(_ interleaved: [Float]) {
        interleaved.withUnsafeBufferPointer { process($0) }
    }

    private mutating func completeSegment() {
        var energy = 0.0
        for c in 0..<channelCount { energy += channelWeights[c] * partial[c] }
        for i in partial.indices { partial[i] = 0 }
        partialFrames = 0
        segments.append(energy)
        if segments.count > 30 { segments.removeFirst(segments.count - 30) }
        segmentCount += 1
        if segmentCount >= 4 {
            let block = windowEnergy(segments: 4)
            maxMomentaryEnergy = max(maxMomentaryEnergy, block)
            if block >= Self.absoluteGate { gatingBlocks.append(block) }
        }
        if segmentCount >= 30 {
            let window = windowEnergy(segments: 30)
            maxShortTermEnergy = max(maxShortTermEnergy, window)
            // Loudness-range windows: the first at 3 s, then every second (2 s overlap).
            if (segmentCount - 30) % 10 == 0, window >= Self.absoluteGate { shortTermBlocks.append(window) }
        }
    }

    /// Mean energy of the last `count` segments (missing segments count as silence).
    private func windowEnergy(segments count: Int) -> Double {
        segments.suffix(count).reduce(0, +) / Double(count * segmentFrames)
    }

    static func loudness(_ energy: Double) -> Double {
        energy > 0 ? 10 * log10(energy) - 0.691 : -.infinity
    }

    /// Loudness of the last 400 ms, LUFS.
    public var momentaryLoudness: Double { Self.loudness(windowEnergy(segments: 4)) }
    /// Loudness of the last 3 s, LUFS.
    public var shortTermLoudness: Double { Self.loudness(windowEnergy(segments: 30)) }

    /// Gated integrated loudness so far, LUFS (absolute gate −70 LUFS, relative gate −10 LU).
    public var integratedLoudness: Double {
        guard !gatingBlocks.isEmpty else { return -.infinity }
        let threshold = gatingBlocks.reduce(0, +) / Double(gatingBlocks.count) * pow(10, -10.0 / 10)
        var sum = 0.0
        var count = 0
        for block in gatingBlocks where block >= threshold {
            sum += block
            count += 1
        }
        return count > 0 ? Self.loudness(sum / Double(count)) : -.infinity
    }

    /// Loudness range so far, LU (EBU Tech 3342: relative gate −20 LU, 10th to 95th percentile).
    public var loudnessRange: Double {
        guard !shortTermBlocks.isEmpty else { return 0 }
        let sorted = shortTermBlocks.sorted()
        let threshold = sorted.reduce(0, +) / Double(sorted.count) * pow(10, -20.0 / 10)
        let gated = sorted.drop(while: { $0 < threshold })
        guard !gated.isEmpty else { return 0 }
        let n = Double(gated.count - 1)
        let high = gated[gated.startIndex + Int(n * 0.95 + 0.5)]
        let low = gated[gated.startIndex + Int(n * 0.1 + 0.5)]
        return Self.loudness(high) - Self.loudness(low)
    }

    /// Largest true peak, linear.
    public var truePeak: Float { truePeakDetector.peak }

    /// Largest sample peak, linear (phase 0 of the true-peak detector sees every sample).
    public var samplePeak: Float { samplePeaks.max() ?? 0 }
    private var samplePeaks: [Float] { truePeakDetector.samplePeaks }

    /// Everything measured so far.
    public var report: LoudnessReport {
        LoudnessReport(
            integratedLoudness: integratedLoudness,
            loudnessRange: loudnessRange,
            truePeak: decibels(truePeak),
            samplePeak: decibels(samplePeak),
            maximumMomentaryLoudness: Self.loudness(maxMomentaryEnergy),
            maximumShortTermLoudness: Self.loudness(maxShortTermEnergy),
            frameCount: frameCount,
            sampleRate: sampleRate
        )
    }
}

func decibels(_ linear: Float) -> Double {
    linear > 0 ? 20 * log10(Double(linear)) : -.infinity
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}

/// The BS.1770 K-weighting filter for two channels at once (one SIMD2<Double> lane each):
/// a high shelf (+4 dB above ~1.7 kHz) followed by the RLB high-pass (~38 Hz), both as
/// transposed direct-form II biquads re-derived for the sample rate (coefficients as in
/// libebur128, from the analogue prototypes of BS.1770).
struct KWeightingPair: Sendable {
    let b0s, b1s, b2s, a1s, a2s: Double
    let a1h, a2h: Double  // high-pass numerator is (1, −2, 1)
    var s1 = SIMD2<Double>(), s2 = SIMD2<Double>()
    var h1 = SIMD2<Double>(), h2 = SIMD2<Double>()

    init(sampleRate: Double) {
        var f0 = 1681.974450955533
        let g = 3.999843853973347
        var q = 0.7071752369554196
        var k = tan(Double.pi * f0 / sampleRate)
        let vh = pow(10.0, g / 20)
        let vb = pow(vh, 0.4996667741545416)
        let a0 = 1 + k / q + k * k
        b0s = (vh + vb * k / q + k * k) / a0
        b1s = 2 * (k * k - vh) / a0
        b2s = (vh - vb * k / q + k * k) / a0
        a1s = 2 * (k * k - 1) / a0
        a2s = (1 - k / q + k * k) / a0
        f0 = 38.13547087602444
        q = 0.5003270373238773
        k = tan(Double.pi * f0 / sampleRate)
        a1h = 2 * (k * k - 1) / (1 + k / q + k * k)
        a2h = (1 - k / q + k * k) / (1 + k / q + k * k)
    }

    /// Filters frames `from..<to` of channels `left` and `right` (−1: none) and adds the
    /// squared outputs to `energy`.
    mutating func run(_ x: UnsafeBufferPointer<Float>, channels: Int, left: Int, right: Int,
                      from: Int, to: Int, energy: inout SIMD2<Double>) {
        var s1 = self.s1, s2 = self.s2, h1 = self.h1, h2 = self.h2
        var acc = energy
        let b0 = SIMD2(repeating: b0s), b1 = SIMD2(repeating: b1s), b2 = SIMD2(repeating: b2s)
        let a1 = SIMD2(repeating: a1s), a2 = SIMD2(repeating: a2s)
        let ha1 = SIMD2(repeating: a1h), ha2 = SIMD2(repeating: a2h)
        var index = from * channels
        for _ in from..<to {
            let input = SIMD2<Double>(Double(x[index + left]), right >= 0 ? Double(x[index + right]) : 0)
            index += channels
            // Shelf (TDF-II).
            let y = b0 * input + s1
            s1 = b1 * input - a1 * y + s2
            s2 = b2 * input - a2 * y
            // High-pass (TDF-II) with numerator 1, −2, 1.
            let z = y + h1
            h1 = -2 * y - ha1 * z + h2
            h2 = y - ha2 * z
            acc = acc + z * z
        }
        // Flush denormals in the state (long silence after sound).
        let tiny = SIMD2<Double>(repeating: 1e-30)
        s1.replace(with: 0, where: abs(s1) .< tiny)
        s2.replace(with: 0, where: abs(s2) .< tiny)
        h1.replace(with: 0, where: abs(h1) .< tiny)
        h2.replace(with: 0, where: abs(h2) .< tiny)
        self.s1 = s1; self.s2 = s2; self.h1 = h1; self.h2 = h2
        energy = acc
    }
}

@inline(__always)
func abs(_ v: SIMD2<Double>) -> SIMD2<Double> { v.replacing(with: -v, where: v .< 0) }
