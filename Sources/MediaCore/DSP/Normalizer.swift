#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What loudness normalisation may do to a track.
public enum NormalizationPolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// Leave the level alone (the limiter still guards the ceiling).
    case off
    /// Turn loud tracks down to the target, never turn quiet ones up.
    case reduceOnly = "reduce-only"
    /// Bring every track to the target, up or down.
    case full
}

/// Settings of ``LoudnessNormalizer``.
public struct NormalizationConfiguration: Sendable, Hashable, Codable {
    /// Target integrated loudness, LUFS.
    public var targetLoudness: Double = -14
    /// True-peak ceiling of the output, dBTP.
    public var ceiling: Double = -1
    public var policy: NormalizationPolicy = .full
    /// How far ahead the limiter looks, seconds: gain reduction starts this long before a peak.
    public var lookahead: Double = 0.005
    /// Time constant of the limiter's recovery after a peak, seconds.
    public var release: Double = 0.08

    public init(targetLoudness: Double = -14, ceiling: Double = -1, policy: NormalizationPolicy = .full) {
        self.targetLoudness = targetLoudness
        self.ceiling = ceiling
        self.policy = policy
    }

    /// The gain (dB) that the policy gives a track measured at `integratedLoudness`.
    public func gain(forIntegratedLoudness integratedLoudness: Double) -> Double {
        guard integratedLoudness.isFinite else { return 0 }  // silence: nothing to normalise
        let full = targetLoudness - integratedLoudness
        switch policy {
        case .off: return 0
        case .reduceOnly: return min(0, full)
        case .full: return full
        }
    }
}

/// What the normaliser did.
public struct NormalizationStatistics: Sendable, Hashable, Codable {
    /// Gain applied before limiting, dB.
    public var gain: Double
    /// Deepest gain reduction of the limiter, dB (0 when it never acted).
    public var maximumGainReduction: Double
    /// Frames on which the limiter reduced the gain by more than 0.01 dB.
    public var limitedFrames: Int64
    /// Frames processed.
    public var frameCount: Int64

    /// Share of frames the limiter touched.
    public var limitedFraction: Double { frameCount > 0 ? Double(limitedFrames) / Double(frameCount) : 0 }
}

/// Applies a gain, then a look-ahead true-peak limiter, to a stream of interleaved frames.
///
/// The limiter is linked across channels. For each frame `j` it finds the peak of the gained
/// signal, including the inter-sample peaks on either side of it (4× oversampling with the
/// meter's interpolator), and the gain `r[j]` that would keep it under the ceiling. The gain
/// curve is `a[n] = mean(m[n−L…n])` with `m[k] = min(r[k…k+L])` (L: the look-ahead), released
/// exponentially; every `m[k]` over a window holding `n` is at most `r[n]`, so `a[n] ≤ r[n]`:
/// no frame is left over the ceiling, and the gain ramps down over L frames before a peak
/// instead of clipping it. The delay this needs is compensated: output frame `n` is input
/// frame `n`; ``flush()`` returns the tail.
public struct LoudnessNormalizer: Sendable {
    public let sampleRate: Int
    public let channelCount: Int
    public let configuration: NormalizationConfiguration
    private var linearGain: Float
    private let ceilingLinear: Float
    private let lookahead: Int
    private let releaseCoefficient: Float
    private let phases: [[(delay: Int, coefficient: Float)]]
    /// Frames between an input sample and the centre of the interpolator reading it.
    private let interpolatorDelay: Int

    /// Per channel: the last samples the interpolator reads (oldest first).
    private var history: [[Float]]
    /// Gained frames not yet output (interleaved), from `pendingStart`.
    private var pending: [Float] = []
    private var pendingStart = 0
    /// Sample peak of frames awaiting their required gain (ring, indexed by frame).
    private var framePeaks: [Float]
    /// Inter-sample peak between the previous frame and the current one.
    private var previousInterval: Float = 0
    /// Monotonic deque of (frame, required gain) for the sliding minimum.
    private var minimumDeque: [(index: Int64, value: Float)] = []
    private var minimumHead = 0
    /// The last L+1 released minima and their sum (the moving average).
    private var averageWindow: [Float]
    private var averageIndex = 0
    private var averageSum: Double
    private var released: Float = 1
    private var received: Int64 = 0
    private var realFrames: Int64 = 0
    public private(set) var statistics: NormalizationStatistics

    /// - Parameters:
    ///   - sampleRate: the input's rate in Hz.
    ///   - channelCount: interleaved channels of the input.
    ///   - gain: gain in dB to apply before limiting (see ``NormalizationConfiguration/gain(forIntegratedLoudness:)``).
    ///   - configuration: the target, the true-peak ceiling and the policy.
    public init(sampleRate: Int, channelCount: Int, gain: Double, configuration: NormalizationConfiguration = .init()) throws(MediaError) {
        guard sampleRate > 0, channelCount > 0 else {
            throw MediaError(.unsupportedParameters, "normaliser needs a positive sample rate and channel count")
        }
        guard gain.isFinite, configuration.ceiling.isFinite, configuration.ceiling <= 0,
              configuration.lookahead > 0, configuration.lookahead <= 0.1, configuration.release > 0 else {
            throw MediaError(.unsupportedParameters, "gain must be finite, the ceiling at most 0 dBTP, the look-ahead in (0, 0.1] s")
        }
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        self.configuration = configuration
        linearGain = Float(pow(10, gain / 20))
        // Aim 0.05 dB under the ceiling: the gain moves between the instants a peak is
        // estimated on, so the output's own true peak can land a hair above the estimate.
        ceilingLinear = Float(pow(10, (configuration.ceiling - 0.05) / 20))
        lookahead = max(1, Int((configuration.lookahead * Double(sampleRate)).rounded()))
        releaseCoefficient = Float(1 - exp(-1 / (configuration.release * Double(sampleRate))))
        let detector = TruePeakDetector(sampleRate: sampleRate, channelCount: 1)
        phases = detector.interpolationPhases
        interpolatorDelay = (TruePeakDetector.taps - 1) / 2 / detector.factor
        history = [[Float]](repeating: [Float](repeating: 0, count: detector.historyLength), count: channelCount)
        framePeaks = [Float](repeating: 0, count: interpolatorDelay + 2)
        averageWindow = [Float](repeating: 1, count: lookahead + 1)
        averageSum = Double(lookahead + 1)
        // L silent frames (needing no reduction) stand before the first real one, so that the
        // gain curve can already be ramping down when the track starts on a peak.
        minimumDeque = [(index: Int64(lookahead - 1), value: 1)]
        statistics = NormalizationStatistics(gain: gain, maximumGainReduction: 0, limitedFrames: 0, frameCount: 0)
    }

    /// Changes the gain (dB, before the limiter) from the next frame processed: for a live
    /// stage that moves it slowly as the programme's loudness changes.
    ///
    /// - Parameter decibels: the new gain; ignored when not finite.
    public mutating func setGain(_ decibels: Double) {
        guard decibels.isFinite else { return }
        linearGain = Float(pow(10, decibels / 20))
        statistics.gain = decibels
    }

    /// Internal delay in frames (compensated: callers see aligned output).
    public var latency: Int { 2 * lookahead + interpolatorDelay }

    /// Processes interleaved frames; returns the output frames that are ready, aligned with the input.
    public mutating func process(_ input: [Float]) -> [Float] {
        let frames = input.count / channelCount
        realFrames += Int64(frames)
        var output: [Float] = []
        output.reserveCapacity(input.count)
        // The inter-sample peaks of the whole block first, eight frames at a time per channel
        // (the per-sample path below shifted each channel's history for every sample: it was
        // the packager's largest cost of its own).
        var intervals = [Float](repeating: 0, count: frames)
        input.withUnsafeBufferPointer { x in
            for c in 0..<channelCount { interpolateBlock(channel: c, x, frames: frames, into: &intervals) }
            intervals.withUnsafeBufferPointer { peaks in
                for n in 0..<frames { step(x, frame: n, interval: peaks[n], output: &output) }
            }
        }
        compact()
        return output
    }

    /// Appends the channel's gained samples of the block to its history, and max-accumulates
    /// into `peaks[n]` the largest interpolated value in the interval the interpolator covers
    /// once frame `n` is in: the values ``interpolate(channel:appending:)`` returns, frame by
    /// frame, with the same arithmetic in the same order.
    private mutating func interpolateBlock(channel c: Int, _ input: UnsafeBufferPointer<Float>, frames: Int, into peaks: inout [Float]) {
        let h = history[c].count
        var x = history[c]
        x.reserveCapacity(h + frames)
        for n in 0..<frames { x.append(input[n * channelCount + c] * linearGain) }
        x.withUnsafeBufferPointer { xs in
            peaks.withUnsafeMutableBufferPointer { out in
                let base = xs.baseAddress!
                let last = h - 1
                var n = 0
                while n + 8 <= frames {
                    var best = SIMD8<Float>(repeating: 0)
                    for phase in phases {
                        var acc = SIMD8<Float>(repeating: 0)
                        for tap in phase {
                            let v = UnsafeRawPointer(base + (last + 1 + n - tap.delay)).loadUnaligned(as: SIMD8<Float>.self)
                            acc = acc + v * tap.coefficient  // not addingProduct: see MEDIA-NOTES
                        }
                        best = pointwiseMax(best, abs(acc))
                    }
                    let previous = UnsafeRawPointer(out.baseAddress! + n).loadUnaligned(as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(out.baseAddress! + n).storeBytes(of: pointwiseMax(previous, best), as: SIMD8<Float>.self)
                    n += 8
                }
                while n < frames {
                    var best: Float = 0
                    for phase in phases {
                        var acc: Float = 0
                        for tap in phase { acc += tap.coefficient * xs[last + 1 + n - tap.delay] }
                        best = max(best, abs(acc))
                    }
                    out[n] = max(out[n], best)
                    n += 1
                }
            }
        }
        history[c] = Array(x.suffix(h))
    }

    /// Ends the stream: returns the remaining frames.
    public mutating func flush() -> [Float] {
        var output: [Float] = []
        let silence = [Float](repeating: 0, count: channelCount)
        silence.withUnsafeBufferPointer { x in
            while statistics.frameCount < realFrames {
                var interval: Float = 0
                for c in 0..<channelCount { interval = max(interval, interpolate(channel: c, appending: 0)) }
                step(x, frame: 0, interval: interval, output: &output)
            }
        }
        compact()
        return output
    }

    /// One frame through the limiter; `interval` is the interpolated peak its arrival completes.
    private mutating func step(_ x: UnsafeBufferPointer<Float>, frame n: Int, interval: Float, output: inout [Float]) {
        let i = received
        received += 1
        var samplePeak: Float = 0
        for c in 0..<channelCount {
            let v = x[n * channelCount + c] * linearGain
            pending.append(v)
            samplePeak = max(samplePeak, abs(v))
        }
        framePeaks[Int(i % Int64(framePeaks.count))] = samplePeak
        // `interval` lies between frames i − D and i − D + 1 (D: interpolator delay): frame
        // j = i − D now knows the peaks on both of its sides.
        let j = i - Int64(interpolatorDelay)
        guard j >= 0 else {
            previousInterval = interval
            return
        }
        let peak = max(framePeaks[Int(j % Int64(framePeaks.count))], previousInterval, interval)
        previousInterval = interval
        let required: Float = peak > ceilingLinear ? ceilingLinear / peak : 1
        // Indices in the gain pipeline count the L silent frames before the track.
        let position = j + Int64(lookahead)
        while minimumDeque.count > minimumHead, minimumDeque[minimumDeque.count - 1].value >= required {
            minimumDeque.removeLast()
        }
        minimumDeque.append((position, required))
        // m[k] = min r[k…k+L] is final once r[k+L] is in.
        let k = position - Int64(lookahead)
        while minimumDeque[minimumHead].index < k { minimumHead += 1 }
        released = min(minimumDeque[minimumHead].value, released + (1 - released) * releaseCoefficient)
        averageSum += Double(released) - Double(averageWindow[averageIndex])
        averageWindow[averageIndex] = released
        averageIndex = (averageIndex + 1) % averageWindow.count
        // a[k] = mean m[k−L…k]: frame k is final (a real frame from position L on).
        guard k >= Int64(lookahead), k - Int64(lookahead) < realFrames else { return }
        let gain = min(1, Float(averageSum / Double(averageWindow.count)))
        for c in 0..<channelCount { output.append(pending[pendingStart + c] * gain) }
        pendingStart += channelCount
        statistics.frameCount += 1
        if gain < 1 {
            if gain < 0.99885 { statistics.limitedFrames += 1 }  // more than 0.01 dB
            statistics.maximumGainReduction = max(statistics.maximumGainReduction, -20 * log10(Double(gain)))
        }
    }

    /// Appends `v` to the channel's history; returns the largest interpolated value in the
    /// interval the interpolator now covers.
    private mutating func interpolate(channel c: Int, appending v: Float) -> Float {
        history[c].removeFirst()
        history[c].append(v)
        var peak: Float = 0
        history[c].withUnsafeBufferPointer { h in
            let last = h.count - 1
            for phase in phases {
                var acc: Float = 0
                for tap in phase { acc += tap.coefficient * h[last - tap.delay] }
                peak = max(peak, abs(acc))
            }
        }
        return peak
    }

    private mutating func compact() {
        if pendingStart > 1 << 16 {
            pending.removeFirst(pendingStart)
            pendingStart = 0
        }
        if minimumHead > 4096 {
            minimumDeque.removeFirst(minimumHead)
            minimumHead = 0
        }
    }
}
