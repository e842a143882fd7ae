#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the true (inter-sample) peak of a signal by oversampling, per ITU-R BS.1770-4 Annex 2.
///
/// The interpolator is a 49-tap Hann-windowed sinc, 4× below 96 kHz, 2× below 192 kHz and
/// none above (the same design as libebur128, so that the two agree). Phase 0 of the
/// polyphase filter is the input sample itself, so only the other phases are computed, over
/// eight output instants at a time with SIMD.
public struct TruePeakDetector: Sendable {
    /// Oversampling factor in use (1, 2 or 4).
    public let factor: Int
    /// Channels per frame.
    public let channelCount: Int
    /// Largest absolute value seen on each channel, including inter-sample peaks (linear).
    public private(set) var peaks: [Float]
    /// Largest absolute sample value on each channel (linear).
    public private(set) var samplePeaks: [Float]

    /// Taps of phases 1…factor-1, each as (delay, coefficient) pairs; phase 0 is the identity.
    private let phases: [[(delay: Int, coefficient: Float)]]
    /// Longest delay of any tap: the history each channel keeps.
    private let history: Int
    /// Per channel: the last `history` input samples (oldest first).
    private var tails: [[Float]]

    /// Filter length (taps) of the interpolator.
    public static let taps = 49

    public init(sampleRate: Int, channelCount: Int) {
        factor = sampleRate < 96_000 ? 4 : (sampleRate < 192_000 ? 2 : 1)
        self.channelCount = channelCount
        peaks = [Float](repeating: 0, count: channelCount)
        samplePeaks = peaks
        var phases = [[(delay: Int, coefficient: Float)]](repeating: [], count: factor)
        if factor > 1 {
            let taps = Self.taps
            for j in 0..<taps {
                let m = Double(j) - Double(taps - 1) / 2
                var c = 1.0
                if abs(m) > 1e-6 {
                    let x = m * Double.pi / Double(factor)
                    c = sin(x) / x
                }
                c *= 0.5 * (1 - cos(2 * Double.pi * Double(j) / Double(taps - 1)))
                if abs(c) > 1e-6 {
                    phases[j % factor].append((delay: j / factor, coefficient: Float(c)))
                }
            }
        }
        self.phases = Array(phases.dropFirst())
        history = (Self.taps + factor - 1) / factor
        tails = [[Float]](repeating: [Float](repeating: 0, count: history), count: channelCount)
    }

    /// The interpolator's phases 1…factor−1 (phase 0 is the identity), for other users of the filter.
    var interpolationPhases: [[(delay: Int, coefficient: Float)]] { phases }
    /// Input samples the interpolator reads.
    var historyLength: Int { history }

    /// The largest true peak over all channels (linear).
    public var peak: Float { peaks.max() ?? 0 }

    /// Measures a block of interleaved frames.
    public mutating func process(_ interleaved: UnsafeBufferPointer<Float>) {
        let frames = interleaved.count / channelCount
        guard frames > 0 else { return }
        for c in 0..<channelCount {
            // The channel's samples after its history: x[history + n] is frame n.
            var x = tails[c]
            x.reserveCapacity(history + frames + 8)
            var samplePeak: Float = samplePeaks[c]
            for n in 0..<frames {
                let v = interleaved[n * channelCount + c]
                x.append(v)
                samplePeak = max(samplePeak, abs(v))
            }
            samplePeaks[c] = samplePeak
            peaks[c] = max(peaks[c], samplePeak, interpolatedPeak(x, frames: frames))
            tails[c] = Array(x.suffix(history))
        }
    }

    /// Convenience for arrays.
    public mutating func process(_ interleaved: [Float]) {
        interleaved.withUnsafeBufferPointer { process($0) }
    }

    /// Peak of phases 1…factor-1 for output instants 0..<frames of `x` (history-prefixed).
    private func interpolatedPeak(_ x: [Float], frames: Int) -> Float {
        guard factor > 1 else { return 0 }
        var best = SIMD8<Float>(repeating: 0)
        var scalarBest: Float = 0
        x.withUnsafeBufferPointer { xs in
            let base = xs.baseAddress!
            for phase in phases {
                var n = 0
                // y[n] = Σ c·x[history + n − delay], eight n at a time.
                while n + 8 <= frames {
                    var acc = SIMD8<Float>(repeating: 0)
                    for tap in phase {
                        let start = base + (history + n - tap.delay)
                        let v = UnsafeRawPointer(start).loadUnaligned(as: SIMD8<Float>.self)
                        acc = acc + v * tap.coefficient  // not addingProduct: see MEDIA-NOTES
                    }
                    best = pointwiseMax(best, abs(acc))
                    n += 8
                }
                while n < frames {
                    var acc: Float = 0
                    for tap in phase { acc += tap.coefficient * xs[history + n - tap.delay] }
                    scalarBest = max(scalarBest, abs(acc))
                    n += 1
                }
            }
        }
        return max(best.max(), scalarBest)
    }
}

@inline(__always)
func abs(_ v: SIMD8<Float>) -> SIMD8<Float> {
    v.replacing(with: -v, where: v .< 0)
}
