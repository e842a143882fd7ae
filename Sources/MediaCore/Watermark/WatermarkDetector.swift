import Foundation

/// What the watermark detector read from a recording: where it lies in the track, and, for each
/// segment it covers whole, which variant it carries.
public struct WatermarkReading: Sendable, Hashable {
    /// One segment's reading.
    public struct Segment: Sendable, Hashable {
        /// The segment's index in the track's timeline (as `segmentBoundaries` numbered them).
        public var index: Int
        /// The matched-filter estimate of the variant's sign: about −1 for ``WatermarkVariant/a``,
        /// +1 for ``WatermarkVariant/b``, 0 where two copies were averaged or no watermark is.
        public var value: Double
        /// Transform frames that went into it.
        public var frames: Int

        /// The variant the estimate's sign points to.
        public var variant: WatermarkVariant { value >= 0 ? .b : .a }
    }

    /// The reference frame (48 kHz) at which the recording's first sample lies.
    public var offset: Int
    /// The recording's level against the reference (a linear factor).
    public var gain: Double
    /// The normalised correlation of the aligned recording with the reference (1 = identical).
    public var alignment: Double
    /// Segments read, in order.
    public var segments: [Segment]
}

/// Reads the watermark back from a recording, given the clear reference the watermark was
/// embedded into (non-blind detection: the platform keeps its masters).
///
/// 1. **Alignment.** Both signals are taken to mono; the recording's loudest 20 s are located in
///    the reference by cross-correlation (FFT, decimated to 6 kHz), then to the sample at 48 kHz.
///    The strongest few correlation peaks are refined; where several are as good as the best (a
///    passage repeated exactly), the one with the most watermark energy is kept.
/// 2. **Reading.** For each transform frame lying wholly inside a segment (away from its edges
///    by ``guardFrames`` hops, where codecs' overlapping windows mix neighbours), the magnitudes of
///    recording `L` and reference `O` in the band give a gain `g = ΣLO/ΣO²` (so level changes
///    and codecs' band-level drift cancel) and the matched filter `Σ c·w·(L − g·O)` with
///    `w = α·O / ν`, where `ν` is the codec's noise relative to the music in the bin's group of
///    about 500 Hz, measured over the whole recording (groups a codec folds or quantises coarsely
///    weigh less); summed over the segment's frames and divided by `g·Σ w·α·O`, it estimates the
///    variant's sign.
public enum WatermarkDetector {
    /// Hops kept clear of each segment edge.
    public static let guardFrames = 1

    /// Reads `recording` (mono, at the parameters' sample rate) against `reference` (mono, same
    /// rate, the clear master as the ladder watermarked it).
    ///
    /// - Parameters:
    ///   - recording: The suspected leak, mono, resampled to `parameters.sampleRate`.
    ///   - reference: The clear master, mono, at `parameters.sampleRate`.
    ///   - key: The track's watermark key.
    ///   - segmentBoundaries: Reference frames where segments start, and the end of the last one
    ///     (ascending); segment `i` is `segmentBoundaries[i]..<segmentBoundaries[i + 1]`.
    ///   - parameters: The parameters the watermark was embedded with.
    /// - Returns: nil when the recording cannot be placed in the reference (too short, silent, or
    ///   another recording).
    public static func read(recording: [Float], reference: [Float], key: WatermarkKey, segmentBoundaries: [Int],
                            parameters: WatermarkParameters = .default) throws(MediaError) -> WatermarkReading? {
        let all = try readings(recording: recording, reference: reference, key: key, segmentBoundaries: segmentBoundaries, parameters: parameters)
        // A placement worse than the best by more than rounding is a different passage: a
        // misaligned reading is noise, and noise can outweigh a watermark. Only placements as
        // good as the best (a passage repeated exactly) are told apart by their watermark.
        let bestCorrelation = all.first?.alignment ?? 0
        func energy(_ reading: WatermarkReading) -> Double { reading.segments.reduce(0) { $0 + $1.value * $1.value * Double($1.frames) } }
        return all.filter { $0.alignment >= bestCorrelation - 0.01 }.max { energy($0) < energy($1) }
    }

    /// The readings at every placement the alignment found plausible (its strongest correlation
    /// peaks, refined), best correlation first. Where music repeats, or a codec smears the
    /// correlation, the right placement need not be the first: an accusation can weigh them all,
    /// counting each placement tried in its bound (StreamKit's `WatermarkAccusation` does).
    ///
    /// Parameters as ``read(recording:reference:key:segmentBoundaries:parameters:)``; empty when the
    /// recording cannot be placed.
    public static func readings(recording: [Float], reference: [Float], key: WatermarkKey, segmentBoundaries: [Int],
                                parameters: WatermarkParameters = .default) throws(MediaError) -> [WatermarkReading] {
        guard recording.count >= 4 * parameters.frameSize, reference.count >= 4 * parameters.frameSize, segmentBoundaries.count >= 2 else { return [] }
        let candidates = try Alignment.candidates(recording: recording, reference: reference, sampleRate: parameters.sampleRate)
        let reader = try Reader(key: key, parameters: parameters)
        return candidates.map { candidate in
            WatermarkReading(offset: candidate.offset, gain: candidate.gain, alignment: candidate.correlation,
                             segments: reader.read(recording: recording, reference: reference, offset: candidate.offset, boundaries: segmentBoundaries))
        }
    }

    /// Downmixes interleaved samples to mono (the mean of the channels).
    public static func mono(_ samples: [Float], channelCount: Int) -> [Float] {
        guard channelCount > 1 else { return samples }
        let frames = samples.count / channelCount
        var mono = [Float](repeating: 0, count: frames)
        let scale = 1 / Float(channelCount)
        for frame in 0..<frames {
            var sum: Float = 0
            for channel in 0..<channelCount { sum += samples[frame * channelCount + channel] }
            mono[frame] = sum * scale
        }
        return mono
    }

    /// The per-segment matched filter.
    final class Reader {
        let parameters: WatermarkParameters
        let transform: WatermarkTransform
        private var chipScratch: [Float] = []
        /// The band's magnitudes of the current frame, recording and reference.
        private var leakMagnitudes: [Double]
        private var referenceMagnitudes: [Double]
        private var leakFrame: [Float]
        private var referenceFrame: [Float]
        private var leakSpectrum: [Float]
        private var referenceSpectrum: [Float]

        init(key: WatermarkKey, parameters: WatermarkParameters) throws(MediaError) {
            self.parameters = parameters
            transform = try WatermarkTransform(key: key, parameters: parameters)
            leakMagnitudes = [Double](repeating: 0, count: transform.band.count)
            referenceMagnitudes = leakMagnitudes
            leakFrame = [Float](repeating: 0, count: parameters.frameSize)
            referenceFrame = leakFrame
            leakSpectrum = [Float](repeating: 0, count: parameters.frameSize + 2)
            referenceSpectrum = leakSpectrum
        }

        /// Bins per group whose codec noise is estimated together (about 500 Hz at 48 kHz).
        static let groupWidth = 21

        func read(recording: [Float], reference: [Float], offset: Int, boundaries: [Int]) -> [WatermarkReading.Segment] {
            let hop = parameters.hop
            let size = parameters.frameSize
            let (fft, window, bins, alphas) = (transform.fft, transform.window, transform.band, transform.alphas)
            let binCount = bins.count
            // Pass 1: every frame wholly inside a segment, its gain and band magnitudes.
            var frameNumbers: [Int] = []
            var frameSegments: [Int] = []
            var gains: [Double] = []
            var leak: [Double] = []
            var master: [Double] = []
            for index in 0..<(boundaries.count - 1) {
                let start = boundaries[index] + WatermarkDetector.guardFrames * hop
                let end = boundaries[index + 1] - WatermarkDetector.guardFrames * hop
                // Frame j spans reference samples (j − 1)·hop ..< (j + 1)·hop.
                var frame = max(start / hop + 1 + (start % hop == 0 ? 0 : 1), 0)
                while (frame + 1) * hop <= end {
                    let referenceStart = (frame - 1) * hop
                    let recordingStart = referenceStart - offset
                    defer { frame += 1 }
                    guard recordingStart >= 0, recordingStart + size <= recording.count, referenceStart >= 0, referenceStart + size <= reference.count else { continue }
                    for n in 0..<size {
                        leakFrame[n] = recording[recordingStart + n] * window[n]
                        referenceFrame[n] = reference[referenceStart + n] * window[n]
                    }
                    leakFrame.withUnsafeBufferPointer { input in leakSpectrum.withUnsafeMutableBufferPointer { fft.forward(input, into: $0) } }
                    referenceFrame.withUnsafeBufferPointer { input in referenceSpectrum.withUnsafeMutableBufferPointer { fft.forward(input, into: $0) } }
                    var cross = 0.0, power = 0.0
                    for (i, bin) in bins.enumerated() {
                        let l = Double(hypotf(leakSpectrum[2 * bin], leakSpectrum[2 * bin + 1]))
                        let o = Double(hypotf(referenceSpectrum[2 * bin], referenceSpectrum[2 * bin + 1]))
                        leakMagnitudes[i] = l
                        referenceMagnitudes[i] = o
                        cross += l * o
                        power += o * o
                    }
                    guard power > 1e-12 else { continue }
                    let gain = cross / power
                    guard gain > 1e-6 else { continue }
                    frameNumbers.append(frame)
                    frameSegments.append(index)
                    gains.append(gain)
                    leak += leakMagnitudes
                    master += referenceMagnitudes
                }
            }
            // The codec's noise relative to the music, per group of bins, over the whole
            // recording: where a codec keeps the fine structure (low bands, high bit rates) the
            // residual is small; where it folds or coarsely quantises it (Opus' upper bands at
            // 64 kb/s) the residual is as large as the music and carries no watermark. Each
            // group's contribution is divided by its relative noise: a matched filter for noise
            // whose level differs between groups (maximal-ratio combining).
            let groups = (binCount + Self.groupWidth - 1) / Self.groupWidth
            var residual = [Double](repeating: 0, count: groups)
            var signal = [Double](repeating: 0, count: groups)
            for f in gains.indices {
                let g = gains[f]
                let base = f * binCount
                for i in 0..<binCount {
                    let expected = g * master[base + i]
                    let difference = leak[base + i] - expected
                    residual[i / Self.groupWidth] += difference * difference
                    signal[i / Self.groupWidth] += expected * expected
                }
            }
            let noise = (0..<groups).map { signal[$0] > 0 ? max(residual[$0] / signal[$0], 1e-6) : 1 }
            // Pass 2: per segment, Σ c·w·(L − g·O) / Σ g·w·α·O with w = α·O / noise.
            var numerators = [Double](repeating: 0, count: boundaries.count)
            var denominators = numerators
            var counts = [Int](repeating: 0, count: boundaries.count)
            for f in gains.indices {
                let g = gains[f]
                let base = f * binCount
                transform.chips.chips(frame: frameNumbers[f], into: &chipScratch)
                var numerator = 0.0, denominator = 0.0
                for i in 0..<binCount {
                    let o = master[base + i]
                    let alpha = Double(alphas[i])
                    let weight = alpha * o / noise[i / Self.groupWidth]
                    numerator += Double(chipScratch[i]) * weight * (leak[base + i] - g * o)
                    denominator += g * weight * alpha * o
                }
                numerators[frameSegments[f]] += numerator
                denominators[frameSegments[f]] += denominator
                counts[frameSegments[f]] += 1
            }
            var segments: [WatermarkReading.Segment] = []
            for index in 0..<(boundaries.count - 1) where counts[index] > 0 && denominators[index] > 0 {
                segments.append(.init(index: index, value: numerators[index] / denominators[index], frames: counts[index]))
            }
            return segments
        }
    }
}
