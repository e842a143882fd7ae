import Foundation

/// Where a recording lies in a reference: cross-correlation by FFT at a low rate, then by direct
/// correlation at the full rate around each candidate.
enum Alignment {
    struct Candidate {
        /// The recording's first sample lies at reference sample `offset`.
        var offset: Int
        var gain: Double
        var correlation: Double
    }

    /// The coarse search runs at the rate divided by this (1 kHz from 48 kHz): the placement is
    /// then refined at the full rate within two of its steps.
    static let decimation = 48
    static let probeSeconds = 20.0
    static let candidateCount = 3
    /// Peaks of the probe's correlation checked against the whole recording.
    static let probePeaks = 12
    /// The block size of the FFT correlation (the probe takes at most half of it).
    static let blockSize = 1 << 16

    /// The best few placements of `recording` in `reference` (mono, same rate), best first.
    static func candidates(recording: [Float], reference: [Float], sampleRate: Int) throws(MediaError) -> [Candidate] {
        let low = decimate(recording)
        let lowReference = decimate(reference)
        let lowRate = Double(sampleRate) / Double(decimation)
        // The loudest stretch of the recording, up to 20 s, on whole seconds.
        let probeLength = min(low.count, Int(probeSeconds * lowRate), blockSize / 2)
        let second = Int(lowRate)
        guard probeLength >= second, lowReference.count >= probeLength else { return [] }
        var probeStart = 0
        var bestEnergy = -1.0
        var start = 0
        while start + probeLength <= low.count {
            let energy = low[start..<start + probeLength].reduce(0.0) { $0 + Double($1 * $1) }
            if energy > bestEnergy { bestEnergy = energy; probeStart = start }
            start += second
        }
        guard bestEnergy > 1e-9 else { return [] }
        let correlation = try crossCorrelation(probe: Array(low[probeStart..<probeStart + probeLength]), reference: lowReference)
        // Normalised by the energy of the reference under the probe at each lag, floored at a
        // hundredth of the probe's: in near-silence the FFT's rounding error would otherwise be
        // divided by almost nothing and outscore the true placement.
        var prefix = [Double](repeating: 0, count: lowReference.count + 1)
        for (i, v) in lowReference.enumerated() { prefix[i + 1] = prefix[i] + Double(v * v) }
        let scores = correlation.indices.map { lag -> Double in
            let energy = max(prefix[lag + probeLength] - prefix[lag], bestEnergy / 100)
            return Double(correlation[lag]) / (bestEnergy * energy).squareRoot()
        }
        // The strongest peaks of the probe, a second apart; then the whole recording decides
        // between them: music built of loops repeats a 20-s stretch, not 3 minutes.
        var peaks: [Int] = []
        for lag in scores.indices.sorted(by: { scores[$0] > scores[$1] }).prefix(5_000) where peaks.count < probePeaks {
            if peaks.allSatisfy({ abs($0 - lag) >= second }) { peaks.append(lag) }
        }
        let offsets = peaks.map { $0 - probeStart }
        let whole = offsets.map { Self.correlation(low, lowReference, offset: $0) }
        let kept = offsets.indices.sorted { whole[$0] > whole[$1] }.prefix(candidateCount).map { offsets[$0] + probeStart }
        let fullProbeStart = probeStart * decimation
        let fullProbeLength = probeLength * decimation
        return kept.compactMap { lag in
            refine(recording: recording, reference: reference, probeStart: fullProbeStart, probeLength: fullProbeLength,
                   around: lag * decimation - fullProbeStart, radius: 2 * decimation)
        }.sorted { $0.correlation > $1.correlation }
    }

    /// The normalised correlation of `recording` with `reference` shifted by `offset`
    /// (recording[n] against reference[n + offset]) over their overlap.
    static func correlation(_ recording: [Float], _ reference: [Float], offset: Int) -> Double {
        let first = max(0, -offset)
        let last = min(recording.count, reference.count - offset)
        guard last > first else { return -1 }
        var cross = 0.0, a = 0.0, b = 0.0
        for n in first..<last {
            let x = Double(recording[n]), y = Double(reference[n + offset])
            cross += x * y
            a += x * x
            b += y * y
        }
        return a > 0 && b > 0 ? cross / (a * b).squareRoot() : -1
    }

    /// Σ probe[n]·reference[n + lag] for every lag at which the probe lies inside the reference,
    /// by overlap-save blocks of ``blockSize`` (FFmpeg's fast transforms stop at 2^17).
    static func crossCorrelation(probe: [Float], reference: [Float]) throws(MediaError) -> [Float] {
        let size = blockSize
        precondition(probe.count <= size / 2)
        let fft = try RealFFT(size: size)
        var block = [Float](repeating: 0, count: size)
        for (i, v) in probe.enumerated() { block[i] = v }
        var probeSpectrum = [Float](repeating: 0, count: size + 2)
        block.withUnsafeBufferPointer { input in probeSpectrum.withUnsafeMutableBufferPointer { fft.forward(input, into: $0) } }
        let lags = reference.count - probe.count + 1
        let step = size - probe.count + 1
        var result = [Float](repeating: 0, count: max(0, lags))
        var spectrum = probeSpectrum
        var first = 0
        while first < lags {
            for i in 0..<size { block[i] = first + i < reference.count ? reference[first + i] : 0 }
            block.withUnsafeBufferPointer { input in spectrum.withUnsafeMutableBufferPointer { fft.forward(input, into: $0) } }
            // DFT(reference block) · conj(DFT(probe)): the correlation, without wrap-around for the
            // first `step` lags.
            for k in 0..<(size / 2 + 1) {
                let (ar, ai) = (spectrum[2 * k], spectrum[2 * k + 1])
                let (br, bi) = (probeSpectrum[2 * k], -probeSpectrum[2 * k + 1])
                spectrum[2 * k] = ar * br - ai * bi
                spectrum[2 * k + 1] = ar * bi + ai * br
            }
            spectrum.withUnsafeBufferPointer { input in block.withUnsafeMutableBufferPointer { fft.inverse(input, into: $0) } }
            for i in 0..<min(step, lags - first) { result[first + i] = block[i] }
            first += step
        }
        return result
    }

    /// The full-rate offset within `radius` of `around` with the highest normalised correlation
    /// over the probe.
    static func refine(recording: [Float], reference: [Float], probeStart: Int, probeLength: Int, around: Int, radius: Int) -> Candidate? {
        var best: Candidate?
        let end = min(recording.count, probeStart + probeLength)
        for offset in (around - radius)...(around + radius) {
            var cross = 0.0, recordingEnergy = 0.0, referenceEnergy = 0.0
            var n = probeStart
            guard n + offset >= 0, end + offset <= reference.count else { continue }
            while n < end {
                let x = Double(recording[n]), y = Double(reference[n + offset])
                cross += x * y
                recordingEnergy += x * x
                referenceEnergy += y * y
                n += 1
            }
            guard recordingEnergy > 0, referenceEnergy > 0 else { continue }
            let correlation = cross / (recordingEnergy * referenceEnergy).squareRoot()
            if correlation > (best?.correlation ?? -2) {
                best = Candidate(offset: offset, gain: cross / referenceEnergy, correlation: correlation)
            }
        }
        return best
    }

    /// Box-filtered and decimated by ``decimation`` (enough for placing music, not for listening).
    static func decimate(_ samples: [Float]) -> [Float] {
        let count = samples.count / decimation
        var result = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var sum: Float = 0
            for j in 0..<decimation { sum += samples[i * decimation + j] }
            result[i] = sum / Float(decimation)
        }
        return result
    }
}
