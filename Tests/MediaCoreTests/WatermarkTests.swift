import Foundation
import Testing
@testable import MediaCore
import StreamKit
import TestSupport

/// The forensic watermark's DSP (issue 23): the transform, the embedder's exactness, and reading
/// the A/B variants back from real music after the transformations a leak goes through.
@Suite struct WatermarkTests {
    @Test func realFFTMatchesTheDefinitionAndInvertsExactly() throws {
        let size = 64
        let fft = try RealFFT(size: size)
        var generator = SystemRandomNumberGenerator()
        let input = (0..<size).map { _ in Float.random(in: -1...1, using: &generator) }
        var bins = [Float](repeating: 0, count: size + 2)
        input.withUnsafeBufferPointer { source in bins.withUnsafeMutableBufferPointer { fft.forward(source, into: $0) } }
        for k in 0...(size / 2) {
            var re = 0.0, im = 0.0
            for n in 0..<size {
                let angle = -2 * Double.pi * Double(k * n) / Double(size)
                re += Double(input[n]) * cos(angle)
                im += Double(input[n]) * sin(angle)
            }
            #expect(abs(Double(bins[2 * k]) - re) < 1e-4 && abs(Double(bins[2 * k + 1]) - im) < 1e-4, "bin \(k)")
        }
        var back = [Float](repeating: 0, count: size)
        bins.withUnsafeBufferPointer { source in back.withUnsafeMutableBufferPointer { fft.inverse(source, into: $0) } }
        #expect(zip(back, input).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test func alignmentFindsAnExcerpt() throws {
        var generator = SplitMix64(seed: 5)
        let reference = (0..<150_000).map { _ in Float.random(in: -1...1, using: &generator) }
        let probe = Array(reference[12_345..<32_345])
        let correlation = try Alignment.crossCorrelation(probe: probe, reference: reference)
        #expect(correlation.count == 130_001)
        #expect(correlation.indices.max(by: { correlation[$0] < correlation[$1] }) == 12_345)
        var music = [Float](repeating: 0, count: 48_000 * 40)
        for n in music.indices {
            let phase = Double(n) * 0.001 * (1 + Double(n / 48_000))
            music[n] = Float(sin(phase)) * 0.3 + Float.random(in: -0.2...0.2, using: &generator)
        }
        let excerpt = Array(music[100_003..<(100_003 + 48_000 * 25)])
        let placed = try Alignment.candidates(recording: excerpt, reference: music, sampleRate: 48_000)
        #expect(placed.first?.offset == 100_003, "\(placed)")
    }

    /// Without strength the embedder reconstructs its input (the windows overlap-add to one), and
    /// its output does not depend on how the stream was cut into blocks.
    @Test func embedderIsExactAndBlockIndependent() throws {
        let key = WatermarkKey.random()
        let frames = 48_000 * 3 + 777
        let input = (0..<frames * 2).map { Float(sin(Double($0) * 0.013)) * 0.5 + Float.random(in: -0.1...0.1) }
        let transparent = try WatermarkEmbedder(key: key, variant: .b, channelCount: 2, parameters: WatermarkParameters(strength: 0))
        var output = transparent.process(input)
        output += transparent.finish()
        #expect(output.count == input.count)
        #expect(zip(output, input).map { abs($0 - $1) }.max()! < 1e-5)

        let whole = try WatermarkEmbedder(key: key, variant: .a, channelCount: 2)
        let oneShot = whole.process(input) + whole.finish()
        let pieces = try WatermarkEmbedder(key: key, variant: .a, channelCount: 2)
        var cut: [Float] = []
        var position = 0
        var size = 1
        while position < input.count {
            let end = min(input.count, position + size * 2)
            cut += pieces.process(Array(input[position..<end]))
            position = end
            size = size * 7 % 5_003 + 1
        }
        cut += pieces.finish()
        #expect(cut == oneShot)
        #expect(oneShot != input)
    }

    /// Real music, its A and B variants spliced by a known bit per 2-s segment as a session's
    /// player would fetch them, then leaked through lossy codecs, a resampling to 44.1 kHz,
    /// ±6 dB of gain and a cut at an arbitrary start: every whole segment reads back right.
    @Test(arguments: Leak.allCases)
    func readsTheVariantsBackAfterALeak(_ leak: Leak) throws {
        let track = try #require(Self.music.first(where: { $0.contains(leak.track) }), "install singularity-music and hyperrogue-music (scripts/install-deps.sh)")
        let key = WatermarkKey(bytes: Array(repeating: 7, count: 32))!
        let clear = try Fixtures.ffmpegPCM(track, extra: ["-t", "50", "-ar", "48000", "-ac", "2"])
        let a = try WatermarkEmbedder(key: key, variant: .a, channelCount: 2)
        let b = try WatermarkEmbedder(key: key, variant: .b, channelCount: 2)
        let variantA = a.process(clear) + a.finish()
        let variantB = b.process(clear) + b.finish()
        let segment = 96_000
        let boundaries = Array(stride(from: 0, through: clear.count / 2, by: segment))
        var bits: [Bool] = []
        var spliced: [Float] = []
        var generator = SplitMix64(seed: UInt64(Leak.allCases.firstIndex(of: leak)!) + 11)
        for (index, start) in boundaries.dropLast().enumerated() {
            let bit = Bool.random(using: &generator)
            bits.append(bit)
            let end = boundaries[index + 1]
            spliced += (bit ? variantB : variantA)[(start * 2)..<(end * 2)]
        }
        let cutSeconds = Double.random(in: 1...7, using: &generator)
        let recording = try leak.apply(to: spliced, cutSeconds: cutSeconds)
        let reference = WatermarkDetector.mono(Array(clear.prefix(spliced.count)), channelCount: 2)
        let reading = try #require(try WatermarkDetector.read(recording: recording, reference: reference, key: key, segmentBoundaries: boundaries))
        let expectedOffset = Int(cutSeconds * 48_000)
        #expect(abs(reading.offset - expectedOffset) < 2_400, "offset \(reading.offset) against a cut at \(expectedOffset)")
        let wrong = reading.segments.filter { $0.variant != WatermarkVariant(bit: bits[$0.index]) }
        let margin = reading.segments.map { abs($0.value) }.min() ?? 0
        print("watermark \(leak): \(reading.segments.count) segments read, \(wrong.count) wrong, smallest |value| \(String(format: "%.2f", margin)), gain \(String(format: "%.2f", reading.gain)), alignment \(String(format: "%.3f", reading.alignment))")
        #expect(reading.segments.count >= boundaries.count - 6)
        #expect(wrong.isEmpty)
    }

    /// The watermark's level against the music and the reading of an unmarked copy (nothing).
    @Test func unmarkedMusicReadsAsNoise() throws {
        let track = try #require(Self.music.first, "install singularity-music and hyperrogue-music (scripts/install-deps.sh)")
        let key = WatermarkKey(bytes: Array(repeating: 9, count: 32))!
        let clear = try Fixtures.ffmpegPCM(track, extra: ["-t", "30", "-ar", "48000", "-ac", "1"])
        let embedder = try WatermarkEmbedder(key: key, variant: .b, channelCount: 1)
        let marked = embedder.process(clear) + embedder.finish()
        let signal = clear.reduce(0.0) { $0 + Double($1 * $1) }
        let mark = zip(marked, clear).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        let snr = 10 * log10(signal / mark)
        print("watermark level: SNR \(String(format: "%.1f", snr)) dB on \(URL(fileURLWithPath: track).lastPathComponent); per bin \(WatermarkParameters.default.levelBelowSignal) dB below the signal")
        #expect(snr > 25)
        let boundaries = Array(stride(from: 0, through: clear.count, by: 96_000))
        let unmarked = try #require(try WatermarkDetector.read(recording: clear, reference: clear, key: key, segmentBoundaries: boundaries))
        print("unmarked: offset \(unmarked.offset) alignment \(unmarked.alignment) values \(unmarked.segments.map { String(format: "%.3f", $0.value) })")
        #expect(unmarked.segments.allSatisfy { abs($0.value) < 0.05 })
        let otherKey = try #require(try WatermarkDetector.read(recording: marked, reference: clear, key: WatermarkKey(bytes: Array(repeating: 8, count: 32))!,
                                                               segmentBoundaries: boundaries))
        print("other key: offset \(otherKey.offset) values \(otherKey.segments.map { String(format: "%.3f", $0.value) })")
        #expect(otherKey.segments.allSatisfy { abs($0.value) < 0.2 })
    }

    static let music: [String] = ["/usr/share/games/singularity/music", "/usr/share/hyperrogue/music"].flatMap { folder in
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".ogg") }.sorted().map { folder + "/" + $0 }
    }

    /// A leak: a codec at a bit rate, a rate, a gain.
    enum Leak: String, CaseIterable, CustomStringConvertible {
        case mp3At128 = "mp3 128k, 44.1 kHz, -6 dB"
        case aacAt96 = "aac 96k, 44.1 kHz, +6 dB"
        case opusAt64 = "opus 64k, 44.1 kHz"

        var description: String { rawValue }

        /// Which real track each leak uses (different music for each).
        var track: String {
            switch self {
            case .mp3At128: return "Awakening"
            case .aacAt96: return "hr3-caves"
            case .opusAt64: return "Nebula"
            }
        }

        /// The spliced stream (48 kHz stereo) leaked as the robustness suite leaks it, cut at
        /// `cutSeconds`.
        func apply(to samples: [Float], cutSeconds: Double) throws -> [Float] {
            switch self {
            case .mp3At128: return try WatermarkRobustnessTests.leak(samples, codec: .mp3, gain: -6, start: cutSeconds)
            case .aacAt96: return try WatermarkRobustnessTests.leak(samples, codec: .aac, gain: 6, start: cutSeconds)
            case .opusAt64: return try WatermarkRobustnessTests.leak(samples, codec: .opus, gain: 0, start: cutSeconds)
            }
        }
    }
}
