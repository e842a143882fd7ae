import Foundation
import MediaCore
import Testing

/// Spectral figures of the presets (FFT of sine tones, 7-term Blackman–Harris window).
///
/// libswresample's default (`swr_alloc_set_opts2`, no options; measured by `ResamplerBench
/// quality` with this same procedure) gives, over the same tones 100 Hz…20 kHz:
/// amplitude error −0.50 dB (44.1→48) and −1.28 dB (48→44.1) at 20 kHz; worst spurious
/// component −29.2 dB (44.1→48, the image of 20 kHz) and −96.5 dB (48→44.1);
/// a 23 kHz tone into 48→44.1 kHz is only attenuated by 19.9 dB.
/// `medium` must beat every one of these; `high` must meet the figures.
@Suite("Resampler quality")
struct ResamplerQualityTests {
    struct Limits: Sendable, CustomStringConvertible {
        var quality: ResamplerQuality
        /// Largest |amplitude error| in dB for tones 100 Hz…20 kHz.
        var amplitudeErrorDecibels: Double
        /// Largest spurious component, dB relative to the tone.
        var spuriousDecibels: Double
        /// Largest residue of a tone above the output Nyquist frequency, dB relative to input.
        var rejectionDecibels: Double

        var description: String { "\(quality)" }
    }

    static let limits: [Limits] = [
        Limits(quality: .high, amplitudeErrorDecibels: 0.01, spuriousDecibels: -120, rejectionDecibels: -120),
        Limits(quality: .medium, amplitudeErrorDecibels: 0.01, spuriousDecibels: -100, rejectionDecibels: -20),
    ]

    static func convert(_ input: [Float], from inputRate: Int, to outputRate: Int, quality: ResamplerQuality) -> [Float] {
        var resampler = try! Resampler(inputRate: inputRate, outputRate: outputRate, channelCount: 1, quality: quality)
        var output = resampler.process(input)
        output += resampler.flush()
        return output
    }

    @Test("passband tones: amplitude and spurious components", arguments: limits, [(44_100, 48_000), (48_000, 44_100)])
    func passbandTones(limits: Limits, rates: (Int, Int)) {
        for frequency in ResamplerSpectrum.passbandTones {
            let figures = ResamplerSpectrum.measureTone(inputRate: rates.0, outputRate: rates.1, frequency: frequency) {
                Self.convert($0, from: rates.0, to: rates.1, quality: limits.quality)
            }
            let errorDecibels = ResamplerSpectrum.decibels(figures.amplitude)
            #expect(abs(errorDecibels) <= limits.amplitudeErrorDecibels, "\(frequency) Hz: \(errorDecibels) dB")
            #expect(figures.worstSpuriousDecibels <= limits.spuriousDecibels, "\(frequency) Hz: \(figures)")
        }
    }

    @Test("a 23 kHz tone into 48 → 44.1 kHz is removed", arguments: limits)
    func aliasRejection(limits: Limits) {
        let residue = ResamplerSpectrum.measureRejection(inputRate: 48_000, outputRate: 44_100, frequency: 23_000) {
            Self.convert($0, from: 48_000, to: 44_100, quality: limits.quality)
        }
        #expect(residue <= limits.rejectionDecibels, "residue \(residue) dB")
    }

    /// Content between 20 kHz and 22.05 kHz at 44.1 kHz is legitimate input; its images
    /// (44.1 kHz − f, inside the 48 kHz output band) must go. 22 kHz images to 22.1 kHz, right
    /// at the edge of the stopband.
    @Test("images of 20.5…22 kHz tones in 44.1 → 48 kHz are rejected (high)", arguments: [20_500, 21_000, 21_500, 22_000])
    func imageRejectionInTransitionBand(frequency: Int) {
        let image = ResamplerSpectrum.measureImage(frequency: frequency) {
            Self.convert($0, from: 44_100, to: 48_000, quality: .high)
        }
        #expect(image <= -120, "image of \(frequency) Hz: \(image) dB")
    }

    /// A linear sweep 20 Hz…19 kHz (raised-cosine faded) converted, compared sample by sample
    /// with the same sweep computed directly at the output rate: checks flatness, phase
    /// linearity and time alignment together.
    @Test("sweep matches the ideal sweep at the output rate", arguments: limits, [(44_100, 48_000), (48_000, 44_100)])
    func sweep(limits: Limits, rates: (Int, Int)) {
        let seconds = 0.5
        func sweep(rate: Int) -> [Float] {
            let frames = Int(seconds * Double(rate))
            let (f0, f1) = (20.0, 19_000.0)
            let fade = 0.02
            return (0..<frames).map { i in
                let t = Double(i) / Double(rate)
                let phase = 2 * Double.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
                let edge = min(t, seconds - t)
                let gain = edge >= fade ? 1 : 0.5 - 0.5 * cos(Double.pi * max(edge, 0) / fade)
                return Float(0.5 * gain * sin(phase))
            }
        }
        let output = Self.convert(sweep(rate: rates.0), from: rates.0, to: rates.1, quality: limits.quality)
        let ideal = sweep(rate: rates.1)
        #expect(abs(output.count - ideal.count) <= 1)
        var errorEnergy = 0.0
        var energy = 0.0
        for i in 0..<min(output.count, ideal.count) {
            let difference = Double(output[i]) - Double(ideal[i])
            errorEnergy += difference * difference
            energy += Double(ideal[i]) * Double(ideal[i])
        }
        let errorDecibels = 10 * log10(errorEnergy / energy)
        // ±0.01 dB of ripple alone would allow −59 dB; the presets do far better.
        let limit = limits.quality == .high ? -100.0 : -70.0
        #expect(errorDecibels <= limit, "sweep error \(errorDecibels) dB")
    }
}
