#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Band edges and stopband attenuation of a preset, relative to the lower of the two
/// Nyquist frequencies (the band that survives the conversion).
struct ResamplerFilterSpecification: Sendable, Hashable {
    /// End of the flat band, as a fraction of the lower Nyquist frequency.
    var passbandEdge: Double
    /// Start of the stopband, as a fraction of the lower Nyquist frequency.
    var stopbandEdge: Double
    /// Kaiser design target for the stopband, in dB (also sets the passband ripple:
    /// δ = 10^(−A/20), i.e. ±0.000 005 dB at 125 dB).
    var attenuationDecibels: Double

    init(passbandEdge: Double, stopbandEdge: Double, attenuationDecibels: Double) {
        self.passbandEdge = passbandEdge
        self.stopbandEdge = stopbandEdge
        self.attenuationDecibels = attenuationDecibels
    }

    init(quality: ResamplerQuality) {
        switch quality {
        case .high:
            // 20 kHz … 22.05 kHz at 44.1 kHz; 5 dB design margin over the 120 dB goal.
            self.init(passbandEdge: 20_000.0 / 22_050.0, stopbandEdge: 1.0, attenuationDecibels: 125)
        case .medium:
            // Transition band straddles the lower Nyquist frequency (20 … 24.1 kHz at 44.1 kHz):
            // what aliases lands above 20 kHz only.
            self.init(
                passbandEdge: 20_000.0 / 22_050.0,
                stopbandEdge: 24_100.0 / 22_050.0,
                attenuationDecibels: 93
            )
        }
    }
}

/// Immutable polyphase coefficient table for one rate pair and preset.
///
/// The ratio `outputRate / inputRate` is reduced to `upFactor / downFactor` (L/M). Output
/// frame `n` sits at input position `n·M/L`; its integer part selects the input window and its
/// fractional part `φ/L` selects coefficient row `φ`. Row `φ`, tap `j` holds `h(φ/L + K/2 − 1 − j)`
/// where `h` is the Kaiser-windowed ideal low-pass (in input-sample units) and `K` is
/// ``tapsPerPhase``; each row is normalised to unit DC gain.
final class PolyphaseFilterBank: Sendable {
    /// L: output phases per input sample period.
    let upFactor: Int
    /// M: input frames advanced per L output frames.
    let downFactor: Int
    /// K: taps per output sample (a multiple of ``tapAlignment``).
    let tapsPerPhase: Int
    /// L rows of K coefficients.
    let coefficients: [Float]
    /// ceil(K/2 × L / M): the look-ahead in output frames.
    let latencyInOutputFrames: Int

    /// Rows are padded to a multiple of this (SIMD kernel width × unroll).
    static let tapAlignment = 16

    init(inputRate: Int, outputRate: Int, specification: ResamplerFilterSpecification) {
        let divisor = resamplerGCD(inputRate, outputRate)
        let up = outputRate / divisor
        let down = inputRate / divisor
        upFactor = up
        downFactor = down

        // Frequencies in cycles per input sample.
        let lowerNyquist = Double(min(inputRate, outputRate)) / 2 / Double(inputRate)
        let passband = specification.passbandEdge * lowerNyquist
        let stopband = specification.stopbandEdge * lowerNyquist
        let cutoff = (passband + stopband) / 2
        let transition = stopband - passband
        let attenuation = specification.attenuationDecibels

        // Kaiser's estimate of the length, counted in input samples (taps per phase).
        let estimate = (attenuation - 7.95) / (2.285 * 2 * Double.pi * transition)
        var taps = Int(estimate.rounded(.up))
        // The window must be longer than one output step, so an input window always exists.
        taps = max(taps, (down + up - 1) / up + 1)
        let alignment = Self.tapAlignment
        taps = (taps + alignment - 1) / alignment * alignment
        tapsPerPhase = taps

        let beta = resamplerKaiserBeta(attenuationDecibels: attenuation)
        let besselOfBeta = resamplerBesselI0(beta)
        let halfLength = Double(taps / 2)
        var table = [Float](repeating: 0, count: up * taps)
        var row = [Double](repeating: 0, count: taps)
        for phase in 0..<up {
            let fraction = Double(phase) / Double(up)
            var sum = 0.0
            for tap in 0..<taps {
                let t = fraction + halfLength - 1 - Double(tap)
                let x = t / halfLength
                let window = resamplerBesselI0(beta * (max(0, 1 - x * x)).squareRoot()) / besselOfBeta
                let value = 2 * cutoff * resamplerSinc(2 * cutoff * t) * window
                row[tap] = value
                sum += value
            }
            for tap in 0..<taps {
                table[phase * taps + tap] = Float(row[tap] / sum)
            }
        }
        coefficients = table
        latencyInOutputFrames = (taps / 2 * up + down - 1) / down
    }
}

/// sin(πx)/(πx).
func resamplerSinc(_ x: Double) -> Double {
    if abs(x) < 1e-12 { return 1 }
    let a = Double.pi * x
    return sin(a) / a
}

/// Kaiser's β for a stopband attenuation in dB (the formula for A > 50 dB, the only range used).
func resamplerKaiserBeta(attenuationDecibels a: Double) -> Double {
    precondition(a > 50, "presets are designed for more than 50 dB")
    return 0.1102 * (a - 8.7)
}

/// Modified Bessel function of the first kind, order 0 (power series; converges for the β used here).
func resamplerBesselI0(_ x: Double) -> Double {
    var sum = 1.0
    var term = 1.0
    let quarterSquare = x * x / 4
    var k = 1.0
    while true {
        term *= quarterSquare / (k * k)
        sum += term
        if term < sum * 1e-17 { break }
        k += 1
    }
    return sum
}

func resamplerGCD(_ a: Int, _ b: Int) -> Int {
    var (a, b) = (a, b)
    while b != 0 { (a, b) = (b, a % b) }
    return a
}
