import Foundation
import MediaCore
import StreamKit
import Testing

@Suite("Resampler streaming, alignment, channels")
struct ResamplerStreamingTests {
    static let qualities: [ResamplerQuality] = [.high, .medium]

    @Test("random block sizes give bit-identical output", arguments: qualities, [(44_100, 48_000), (48_000, 44_100), (8_000, 192_000), (176_400, 11_025)])
    func blockSizesDoNotMatter(quality: ResamplerQuality, rates: (Int, Int)) throws {
        var random = SplitMix64(seed: 42)
        let channels = 3
        let frames = 20_000
        let input = (0..<(frames * channels)).map { _ in Float.random(in: -1...1, using: &random) }
        var whole = try Resampler(inputRate: rates.0, outputRate: rates.1, channelCount: channels, quality: quality)
        var reference = whole.process(input)
        reference += whole.flush()

        for pattern in [[1], [7], [4096], [1, 7, 4096, 13, 500, 2, 3000], []] {
            var streaming = try Resampler(inputRate: rates.0, outputRate: rates.1, channelCount: channels, quality: quality)
            var output: [Float] = []
            var position = 0
            var index = 0
            while position < frames {
                let size = pattern.isEmpty ? Int.random(in: 0...2000, using: &random) : pattern[index % pattern.count]
                index += 1
                let end = min(frames, position + size)
                input[(position * channels)..<(end * channels)].withUnsafeBufferPointer {
                    streaming.process($0, appendingTo: &output)
                }
                position = end
            }
            output += streaming.flush()
            #expect(output == reference, "pattern \(pattern)")
        }
    }

    @Test("an impulse comes out centred on its own time (no delay)", arguments: qualities)
    func impulseIsAligned(quality: ResamplerQuality) throws {
        // Input frame 147·k is output frame 160·k exactly at 44.1 → 48 kHz.
        var input = [Float](repeating: 0, count: 4000)
        input[147 * 10] = 1
        var resampler = try Resampler(inputRate: 44_100, outputRate: 48_000, channelCount: 1, quality: quality)
        var output = resampler.process(input)
        output += resampler.flush()
        let peak = output.indices.max { abs(output[$0]) < abs(output[$1]) }!
        #expect(peak == 1600)
        // Linear phase: symmetric around the peak.
        for offset in 1..<200 {
            #expect(abs(output[peak - offset] - output[peak + offset]) <= 1e-6, "offset \(offset)")
        }
    }

    @Test("a tone keeps its phase: delay below 0.001 frame", arguments: qualities, [(44_100, 48_000), (48_000, 44_100), (8_000, 11_025), (192_000, 16_000)])
    func tonePhaseIsAligned(quality: ResamplerQuality, rates: (Int, Int)) throws {
        let frequency = 997
        let input = ResamplerSpectrum.sines(frequencies: [frequency], amplitude: 0.5, sampleRate: rates.0, frames: rates.0 / 4)
        var resampler = try Resampler(inputRate: rates.0, outputRate: rates.1, channelCount: 1, quality: quality)
        var output = resampler.process(input)
        output += resampler.flush()
        let fit = Self.fitTone(output, frequency: Double(frequency), sampleRate: Double(rates.1))
        let delayFrames = -fit.phase / (2 * Double.pi * Double(frequency)) * Double(rates.1)
        #expect(abs(delayFrames) < 0.001, "delay \(delayFrames) frames")
        #expect(abs(ResamplerSpectrum.decibels(fit.amplitude / 0.5)) < 0.01)
    }

    /// Least-squares fit of `a·sin(ωt + φ)` over the middle half of `samples`.
    static func fitTone(_ samples: [Float], frequency: Double, sampleRate: Double) -> (amplitude: Double, phase: Double) {
        var (ss, sc, cc, ys, yc) = (0.0, 0.0, 0.0, 0.0, 0.0)
        for i in (samples.count / 4)..<(3 * samples.count / 4) {
            let angle = 2 * Double.pi * frequency * Double(i) / sampleRate
            let (s, c, y) = (sin(angle), cos(angle), Double(samples[i]))
            ss += s * s; sc += s * c; cc += c * c; ys += y * s; yc += y * c
        }
        let determinant = ss * cc - sc * sc
        let a = (ys * cc - yc * sc) / determinant  // coefficient of sin
        let b = (yc * ss - ys * sc) / determinant  // coefficient of cos
        return ((a * a + b * b).squareRoot(), atan2(b, a))
    }

    @Test("every rate pair: length round(N·ratio) and a clean tone", arguments: qualities)
    func everyPair(quality: ResamplerQuality) throws {
        let rates = Resampler.supportedRates
        var random = SplitMix64(seed: 7)
        for inputRate in rates {
            for outputRate in rates where outputRate != inputRate {
                var resampler = try Resampler(inputRate: inputRate, outputRate: outputRate, channelCount: 1, quality: quality)
                #expect(resampler.latencyFrames > 0)
                // Lengths, reusing the resampler: flush resets it.
                for frames in [0, 1, 2, 3, 146, 147, 441, 1_000, Int.random(in: 1...5_000, using: &random)] {
                    var total = 0
                    total += resampler.process([Float](repeating: 0.25, count: frames)).count
                    total += resampler.flush().count
                    let expected = (Double(frames) * Double(outputRate) / Double(inputRate)).rounded()
                    #expect(abs(Double(total) - expected) <= 1, "\(inputRate)→\(outputRate), \(frames) frames: \(total)")
                }
                // A 440 Hz tone (inside every passband) keeps amplitude and phase.
                let input = ResamplerSpectrum.sines(frequencies: [440], amplitude: 0.5, sampleRate: inputRate, frames: inputRate / 8)
                var output = resampler.process(input)
                output += resampler.flush()
                let fit = Self.fitTone(output, frequency: 440, sampleRate: Double(outputRate))
                #expect(abs(ResamplerSpectrum.decibels(fit.amplitude / 0.5)) < 0.01, "\(inputRate)→\(outputRate)")
                #expect(abs(fit.phase) < 1e-4, "\(inputRate)→\(outputRate): phase \(fit.phase)")
            }
        }
    }

    @Test("equal rates copy samples exactly")
    func equalRatesPassThrough() throws {
        var random = SplitMix64(seed: 3)
        let input = (0..<999).map { _ in Float.random(in: -1...1, using: &random) }
        var resampler = try Resampler(inputRate: 48_000, outputRate: 48_000, channelCount: 3)
        #expect(resampler.latencyFrames == 0)
        #expect(resampler.process(input) == input)
        #expect(resampler.flush().isEmpty)
    }

    @Test("unsupported rates and channel counts are refused")
    func invalidArguments() {
        #expect(throws: ResamplerError.unsupportedRate(44_000)) {
            try Resampler(inputRate: 44_000, outputRate: 48_000, channelCount: 2)
        }
        #expect(throws: ResamplerError.unsupportedRate(24_000)) {
            try Resampler(inputRate: 48_000, outputRate: 24_000, channelCount: 2)
        }
        #expect(throws: ResamplerError.invalidChannelCount(0)) {
            try Resampler(inputRate: 44_100, outputRate: 48_000, channelCount: 0)
        }
        #expect(throws: ResamplerError.invalidChannelCount(33)) {
            try Resampler(inputRate: 44_100, outputRate: 48_000, channelCount: 33)
        }
        #expect(throws: Never.self) {
            try Resampler(inputRate: 44_100, outputRate: 48_000, channelCount: 32)
        }
    }

    @Test("channels are independent: no crosstalk", arguments: qualities)
    func channelsAreIndependent(quality: ResamplerQuality) throws {
        let frequencies = [1_000, 3_000, 7_000, 11_000, 17_000]
        let frames = 60_000
        let interleaved = ResamplerSpectrum.sines(frequencies: frequencies, amplitude: 0.5, sampleRate: 44_100, frames: frames)
        var resampler = try Resampler(inputRate: 44_100, outputRate: 48_000, channelCount: frequencies.count, quality: quality)
        var output = resampler.process(interleaved)
        output += resampler.flush()
        let channels = frequencies.count
        for (channel, frequency) in frequencies.enumerated() {
            let samples = stride(from: channel, to: output.count, by: channels).map { output[$0] }
            // Bit-identical to the same channel converted alone.
            let mono = ResamplerSpectrum.sines(frequencies: [frequency], amplitude: 0.5, sampleRate: 44_100, frames: frames)
            var alone = try Resampler(inputRate: 44_100, outputRate: 48_000, channelCount: 1, quality: quality)
            var aloneOutput = alone.process(mono)
            aloneOutput += alone.flush()
            #expect(samples == aloneOutput, "channel \(channel)")
            // And the spectrum holds that channel's tone only.
            let figures = ResamplerSpectrum.tone(
                in: samples.map(Double.init),
                sampleRate: 48_000,
                frequency: Double(frequency),
                offset: ResamplerSpectrum.settleFrames,
                count: ResamplerSpectrum.analysisLength
            )
            let limit = quality == .high ? -120.0 : -100.0
            #expect(figures.worstSpuriousDecibels <= limit, "channel \(channel): \(figures)")
        }
    }
}
