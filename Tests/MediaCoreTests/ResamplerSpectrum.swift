import Foundation

/// Measurement helpers for the resampler tests: an in-place radix-2 FFT in Double and a
/// 7-term Blackman–Harris window (highest side lobe ≈ −180 dB), so that components 120 dB
/// below a tone are measured, not hidden under the window's leakage.
///
/// The benchmark executable links this same file (symlink) to measure libswresample and
/// libsoxr with exactly the same procedure.
enum ResamplerSpectrum {
    /// In-place iterative radix-2 complex FFT; `real.count` must be a power of two.
    static func fft(real: inout [Double], imaginary: inout [Double]) {
        let n = real.count
        precondition(n > 0 && n & (n - 1) == 0 && imaginary.count == n)
        var j = 0
        for i in 1..<n {
            var bit = n >> 1
            while j & bit != 0 {
                j ^= bit
                bit >>= 1
            }
            j |= bit
            if i < j {
                real.swapAt(i, j)
                imaginary.swapAt(i, j)
            }
        }
        var length = 2
        while length <= n {
            let half = length / 2
            let angle = -2 * Double.pi / Double(length)
            for k in 0..<half {
                let wr = cos(angle * Double(k))
                let wi = sin(angle * Double(k))
                var start = 0
                while start < n {
                    let a = start + k
                    let b = a + half
                    let tr = real[b] * wr - imaginary[b] * wi
                    let ti = real[b] * wi + imaginary[b] * wr
                    real[b] = real[a] - tr
                    imaginary[b] = imaginary[a] - ti
                    real[a] += tr
                    imaginary[a] += ti
                    start += length
                }
            }
            length *= 2
        }
    }

    /// 7-term Blackman–Harris window (periodic form), side lobes below −180 dB.
    static func blackmanHarris7(count n: Int) -> [Double] {
        let a = [
            0.27105140069342, 0.43329793923448, 0.21812299954311, 0.06592544638803,
            0.01081174209837, 0.00077658482522, 0.00001388721735,
        ]
        return (0..<n).map { i in
            var value = 0.0
            for (k, coefficient) in a.enumerated() {
                let sign = k % 2 == 0 ? 1.0 : -1.0
                value += sign * coefficient * cos(2 * Double.pi * Double(k) * Double(i) / Double(n))
            }
            return value
        }
    }

    /// Power spectrum (bins 0…n/2) of a windowed segment, scaled so that a sine of amplitude `A`
    /// gives a main lobe whose bins sum to `A²` (Parseval over the window).
    static func powerSpectrum(_ samples: ArraySlice<Double>) -> [Double] {
        let n = samples.count
        let window = blackmanHarris7(count: n)
        var real = zip(samples, window).map { $0 * $1 }
        var imaginary = [Double](repeating: 0, count: n)
        fft(real: &real, imaginary: &imaginary)
        let energy = window.reduce(0) { $0 + $1 * $1 }
        let scale = 4 / (Double(n) * energy)
        return (0...(n / 2)).map { k in (real[k] * real[k] + imaginary[k] * imaginary[k]) * scale }
    }

    /// Figures for one tone in one output spectrum.
    struct ToneFigures: CustomStringConvertible {
        /// Measured amplitude (power summed over the main lobe, ±`lobeBins`).
        var amplitude: Double
        /// Largest single bin outside the tone's lobe, in dB relative to the tone's power.
        var worstSpuriousDecibels: Double
        /// Frequency of that bin in Hz.
        var worstSpuriousFrequency: Double

        var description: String {
            "amplitude \(amplitude), spurious \(worstSpuriousDecibels) dB at \(worstSpuriousFrequency) Hz"
        }
    }

    /// Bins on each side of the tone counted as its main lobe (BH7's lobe is ±4 bins wide;
    /// the margin covers leakage and the tone's skirt down to ≪ −140 dB).
    static let lobeBins = 10

    /// Measures a tone at `frequency` in `samples` (at `sampleRate`), using `count` samples
    /// starting at `offset`.
    static func tone(
        in samples: [Double],
        sampleRate: Double,
        frequency: Double,
        offset: Int,
        count: Int
    ) -> ToneFigures {
        let power = powerSpectrum(samples[offset..<(offset + count)])
        let binWidth = sampleRate / Double(count)
        let centre = Int((frequency / binWidth).rounded())
        let lobe = max(0, centre - lobeBins)...min(power.count - 1, centre + lobeBins)
        let tonePower = lobe.reduce(0.0) { $0 + power[$1] }
        var worst = 0.0
        var worstBin = 0
        for (bin, value) in power.enumerated() where !lobe.contains(bin) && value > worst {
            worst = value
            worstBin = bin
        }
        return ToneFigures(
            amplitude: tonePower.squareRoot(),
            worstSpuriousDecibels: 10 * log10(max(worst, 1e-300) / tonePower),
            worstSpuriousFrequency: Double(worstBin) * binWidth
        )
    }

    /// Largest lobe (sum of 2·`lobeBins`+1 adjacent bins) anywhere in the spectrum, as an
    /// amplitude: what is left of a tone that should have been removed.
    static func largestComponent(
        in samples: [Double],
        offset: Int,
        count: Int
    ) -> Double {
        let power = powerSpectrum(samples[offset..<(offset + count)])
        var best = 0.0
        for centre in power.indices {
            let lobe = max(0, centre - lobeBins)...min(power.count - 1, centre + lobeBins)
            best = max(best, lobe.reduce(0.0) { $0 + power[$1] })
        }
        return best.squareRoot()
    }

    /// Interleaved sine tones, one integer frequency (Hz) per channel, phase 0 at frame 0.
    /// The phase is reduced exactly in integers, so the tone is clean to Float32 precision.
    static func sines(
        frequencies: [Int],
        amplitude: Double,
        sampleRate: Int,
        frames: Int
    ) -> [Float] {
        let channels = frequencies.count
        var out = [Float](repeating: 0, count: frames * channels)
        for (channel, frequency) in frequencies.enumerated() {
            for frame in 0..<frames {
                let cycles = Double((frequency * frame) % sampleRate) / Double(sampleRate)
                out[frame * channels + channel] = Float(amplitude * sin(2 * Double.pi * cycles))
            }
        }
        return out
    }

    /// Output frames skipped at each end of a converted tone before analysis (start-up and
    /// flush transients of any converter measured here).
    static let settleFrames = 8192
    /// FFT length of the tone measurements.
    static let analysisLength = 32768

    /// Converts a tone of amplitude 0.5 with `convert` (a whole mono stream in, whole stream out)
    /// and measures it in the output spectrum.
    static func measureTone(
        inputRate: Int,
        outputRate: Int,
        frequency: Int,
        convert: ([Float]) -> [Float]
    ) -> ToneFigures {
        let output = convertedTone(inputRate: inputRate, outputRate: outputRate, frequency: frequency, convert: convert)
        var figures = tone(
            in: output,
            sampleRate: Double(outputRate),
            frequency: Double(frequency),
            offset: settleFrames,
            count: analysisLength
        )
        figures.amplitude /= 0.5
        return figures
    }

    /// Converts a tone of amplitude 0.5 that the converter must remove (above the output
    /// Nyquist frequency) and returns the largest component left, in dB relative to the input tone.
    static func measureRejection(
        inputRate: Int,
        outputRate: Int,
        frequency: Int,
        convert: ([Float]) -> [Float]
    ) -> Double {
        let output = convertedTone(inputRate: inputRate, outputRate: outputRate, frequency: frequency, convert: convert)
        let left = largestComponent(in: output, offset: settleFrames, count: analysisLength)
        return decibels(left / 0.5)
    }

    private static func convertedTone(
        inputRate: Int,
        outputRate: Int,
        frequency: Int,
        convert: ([Float]) -> [Float]
    ) -> [Double] {
        let outputFrames = analysisLength + 2 * settleFrames
        let inputFrames = outputFrames * inputRate / outputRate + 1
        let input = sines(frequencies: [frequency], amplitude: 0.5, sampleRate: inputRate, frames: inputFrames)
        let output = convert(input)
        precondition(output.count >= settleFrames + analysisLength, "converter returned \(output.count) frames")
        return output.map(Double.init)
    }

    /// Converts a tone of amplitude 0.5 at `frequency` (in the transition band, between 20 kHz
    /// and the input Nyquist frequency) from 44.1 to 48 kHz and returns the level of its image
    /// at 44.1 kHz − `frequency`, in dB relative to the input tone.
    static func measureImage(frequency: Int, convert: ([Float]) -> [Float]) -> Double {
        let output = convertedTone(inputRate: 44_100, outputRate: 48_000, frequency: frequency, convert: convert)
        let power = powerSpectrum(output[settleFrames..<(settleFrames + analysisLength)])
        let binWidth = 48_000.0 / Double(analysisLength)
        let imageBin = Int((Double(44_100 - frequency) / binWidth).rounded())
        let lobe = (imageBin - lobeBins)...(imageBin + lobeBins)
        let image = lobe.reduce(0.0) { $0 + power[$1] }.squareRoot()
        return decibels(image / 0.5)
    }

    /// Tones of the passband measurements (Hz).
    static let passbandTones = [100, 997, 5_000, 10_000, 15_000, 18_000, 19_000, 19_500, 20_000]

    static func decibels(_ ratio: Double) -> Double { 20 * log10(ratio) }
}
