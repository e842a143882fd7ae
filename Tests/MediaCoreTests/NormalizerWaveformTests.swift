import Foundation
import MediaCore
import Testing
import TestSupport

/// Runs the normaliser over `signal` in blocks of `block` frames.
func normalize(_ signal: [Float], rate: Int, channels: Int, gain: Double, configuration: NormalizationConfiguration = .init(), block: Int = 4096)
    throws -> (output: [Float], statistics: NormalizationStatistics) {
    var normalizer = try LoudnessNormalizer(sampleRate: rate, channelCount: channels, gain: gain, configuration: configuration)
    var output: [Float] = []
    var start = 0
    while start < signal.count {
        let end = min(signal.count, start + block * channels)
        output += normalizer.process(Array(signal[start..<end]))
        start = end
    }
    output += normalizer.flush()
    return (output, normalizer.statistics)
}

@Suite("Normaliser with true-peak limiter")
struct NormalizerTests {
    @Test("quiet programme is brought to −14 LUFS with true peak under −1 dBTP", arguments: [44100, 48000])
    func fullNormalisation(rate: Int) throws {
        // Programme at about −30 LUFS with drum-like hits every 0.5 s: at −14 LUFS their peaks
        // go over the ceiling, so the limiter has work to do.
        var signal = EBUSignal.programme(seconds: 30, rate: rate, channels: 2, seed: 11).map { $0 * 0.1 }
        for hit in stride(from: 0, to: 30 * rate - rate / 10, by: rate / 2) {
            for n in 0..<(rate / 20) {
                let t = Double(n) / Double(rate)
                let v = Float(0.07 * exp(-t * 60) * sin(2 * .pi * 90 * t))
                signal[(hit + n) * 2] += v
                signal[(hit + n) * 2 + 1] += v
            }
        }
        let before = try measure(signal, rate: rate).report
        #expect(before.integratedLoudness < -25)
        let configuration = NormalizationConfiguration()
        let gain = configuration.gain(forIntegratedLoudness: before.integratedLoudness)
        let (output, stats) = try normalize(signal, rate: rate, channels: 2, gain: gain)
        #expect(output.count == signal.count)
        let after = try measure(output, rate: rate).report
        #expect(abs(after.integratedLoudness - -14) <= 0.5, "I after = \(after.integratedLoudness)")
        #expect(after.truePeak <= -1 + 0.1, "TP after = \(after.truePeak)")
        #expect(stats.gain == gain)
        #expect(stats.frameCount == Int64(signal.count / 2))
        #expect(stats.maximumGainReduction > 0, "the limiter had work to do")
        // Hits every 500 ms; each reduction recovers with an 80 ms time constant, so frames within
        // ~0.3 s after a hit still count (> 0.01 dB). Far from a limiter stuck on.
        #expect(stats.limitedFraction > 0.05 && stats.limitedFraction < 0.7)
    }

    @Test("a sine far over the ceiling is limited to it without clipping")
    func hardLimiting() throws {
        let signal = EBUSignal.sine(dBFS: -3, seconds: 3, frequency: 997)
        let (output, stats) = try normalize(signal, rate: 48000, channels: 2, gain: 12)
        let after = try measure(output).report
        #expect(after.truePeak <= -0.9, "TP = \(after.truePeak)")
        #expect(after.truePeak >= -1.5, "the limiter should not pump far below the ceiling")
        #expect(stats.maximumGainReduction > 9.5)  // +9 dBTP down to −1
    }

    @Test("gain is exact where the limiter is idle, and output stays aligned with input")
    func alignment() throws {
        let signal = EBUSignal.programme(seconds: 5, rate: 48000, channels: 2, seed: 5).map { $0 * 0.05 }
        let (output, stats) = try normalize(signal, rate: 48000, channels: 2, gain: 6)
        #expect(stats.limitedFrames == 0)
        let g = Float(pow(10, 6.0 / 20))
        #expect(output.count == signal.count)
        #expect(zip(signal, output).allSatisfy { abs($0 * g - $1) <= 1e-6 })
    }

    @Test("block size does not change the output")
    func blockInvariance() throws {
        let signal = EBUSignal.programme(seconds: 4, rate: 44100, channels: 2, seed: 9).map { $0 * 0.4 }
        let a = try normalize(signal, rate: 44100, channels: 2, gain: 10, block: 4096).output
        let b = try normalize(signal, rate: 44100, channels: 2, gain: 10, block: 1).output
        let c = try normalize(signal, rate: 44100, channels: 2, gain: 10, block: 100_000).output
        #expect(a == b)
        #expect(a == c)
    }

    @Test("policies: off, reduce-only, full")
    func policies() {
        var configuration = NormalizationConfiguration(targetLoudness: -14)
        #expect(configuration.gain(forIntegratedLoudness: -20) == 6)
        #expect(configuration.gain(forIntegratedLoudness: -8) == -6)
        configuration.policy = .reduceOnly
        #expect(configuration.gain(forIntegratedLoudness: -20) == 0)
        #expect(configuration.gain(forIntegratedLoudness: -8) == -6)
        configuration.policy = .off
        #expect(configuration.gain(forIntegratedLoudness: -8) == 0)
        #expect(NormalizationConfiguration().gain(forIntegratedLoudness: -.infinity) == 0)
    }

    @Test("policy off with the signal under the ceiling is the identity")
    func offIsIdentity() throws {
        let signal = EBUSignal.programme(seconds: 2, rate: 48000, channels: 2, seed: 4).map { $0 * 0.3 }
        var configuration = NormalizationConfiguration()
        configuration.policy = .off
        let (output, _) = try normalize(signal, rate: 48000, channels: 2, gain: 0, configuration: configuration)
        #expect(output == signal)
    }

    @Test func rejectsBadConfiguration() {
        #expect(throws: MediaError.self) { try LoudnessNormalizer(sampleRate: 48000, channelCount: 2, gain: .nan) }
        #expect(throws: MediaError.self) {
            try LoudnessNormalizer(sampleRate: 48000, channelCount: 2, gain: 0, configuration: .init(ceiling: 3))
        }
    }
}

@Suite("Waveform peaks (audiowaveform formats)")
struct WaveformTests {
    @Test("min/max per pixel, mono mix, partial last pixel, 8- and 16-bit")
    func peaks() throws {
        // 5 frames of stereo; 2 samples per pixel → 3 pixels (the last one partial).
        let frames: [Float] = [0.5, 0.5, -0.5, -0.25, 1.0, 1.0, -1.0, -1.0, 0.25, 0.75]
        var builder = try WaveformBuilder(sampleRate: 8000, channelCount: 2, samplesPerPixel: [2], bits: .sixteen)
        builder.process(frames)
        let waveform = try #require(builder.finish().first)
        #expect(waveform.length == 3)
        #expect(waveform.data == [-12288, 16384, -32768, 32767, 16384, 16384])
        var eight = try WaveformBuilder(sampleRate: 8000, channelCount: 2, samplesPerPixel: [2], bits: .eight)
        eight.process(frames)
        #expect(eight.finish().first?.data == [-48, 64, -128, 127, 64, 64])
        var split = try WaveformBuilder(sampleRate: 8000, channelCount: 2, samplesPerPixel: [2], bits: .sixteen, splitChannels: true)
        split.process(frames)
        let s = try #require(split.finish().first)
        #expect(s.channels == 2)
        #expect(Array(s.data.prefix(4)) == [-16384, 16384, -8192, 16384])
    }

    @Test("coarser zoom levels equal a direct build at that level")
    func zoomLevels() throws {
        let signal = EBUSignal.programme(seconds: 3, rate: 44100, channels: 2, seed: 2)
        var multi = try WaveformBuilder(sampleRate: 44100, channelCount: 2, samplesPerPixel: [256, 512, 2048])
        multi.process(signal)
        let levels = multi.finish()
        #expect(levels.map(\.samplesPerPixel) == [256, 512, 2048])
        for level in levels {
            var direct = try WaveformBuilder(sampleRate: 44100, channelCount: 2, samplesPerPixel: [level.samplesPerPixel])
            direct.process(signal)
            #expect(direct.finish().first == level)
            #expect(level.length == (signal.count / 2 + level.samplesPerPixel - 1) / level.samplesPerPixel)
        }
        #expect(throws: MediaError.self) { try WaveformBuilder(sampleRate: 44100, channelCount: 2, samplesPerPixel: [256, 300]) }
    }

    @Test("JSON and .dat encodings follow audiowaveform version 2")
    func encodings() throws {
        let waveform = Waveform(sampleRate: 44100, samplesPerPixel: 512, bits: .eight, channels: 1, data: [-3, 5, -128, 127])
        let json = try JSONSerialization.jsonObject(with: Data(waveform.json().utf8)) as? [String: Any]
        #expect(json?["version"] as? Int == 2)
        #expect(json?["channels"] as? Int == 1)
        #expect(json?["sample_rate"] as? Int == 44100)
        #expect(json?["samples_per_pixel"] as? Int == 512)
        #expect(json?["bits"] as? Int == 8)
        #expect(json?["length"] as? Int == 2)
        #expect(json?["data"] as? [Int] == [-3, 5, -128, 127])
        let dat = waveform.dat()
        #expect(dat.count == 24 + 4)
        #expect(Array(dat[0..<24]) == [2, 0, 0, 0, 1, 0, 0, 0, 0x44, 0xAC, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0])
        #expect(Array(dat[24...]) == [0xFD, 5, 0x80, 0x7F])
        let sixteen = Waveform(sampleRate: 48000, samplesPerPixel: 256, bits: .sixteen, channels: 1, data: [-2, 300])
        #expect(Array(sixteen.dat()[4..<8]) == [0, 0, 0, 0])
        #expect(Array(sixteen.dat()[24...]) == [0xFE, 0xFF, 0x2C, 0x01])
    }

    @Test("one decode gives loudness and waveform together")
    func analysis() throws {
        let path = try losslessFormats[4].path()
        let result = try MediaAnalysis.analyze(path: path, waveform: .init(samplesPerPixel: [441, 882]))
        #expect(result.waveforms.count == 2)
        #expect(result.waveforms[0].length == 300)
        #expect(result.loudness.frameCount == 3 * 44100)
        let pcm = try AudioDecoder(path: path).readAll()
        let direct = try measure(pcm.samples, rate: 44100).report
        #expect(result.loudness == direct)
    }
}
