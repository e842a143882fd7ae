import CEbur128
import Foundation
import MediaCore
import Testing
import TestSupport

/// Synthetic signals of EBU Tech 3341 / 3342 (the ones defined by formula, not by file).
enum EBUSignal {
    /// A 1 kHz sine at `dBFS` peak on `channels` channels (all in phase), `seconds` long.
    static func sine(dBFS: Double, seconds: Double, rate: Int = 48000, channels: Int = 2, frequency: Double = 1000, phase: Double = 0) -> [Float] {
        let amplitude = pow(10, dBFS / 20)
        let frames = Int(seconds * Double(rate))
        var out = [Float](repeating: 0, count: frames * channels)
        for n in 0..<frames {
            let v = Float(amplitude * sin(2 * .pi * frequency * Double(n) / Double(rate) + phase))
            for c in 0..<channels { out[n * channels + c] = v }
        }
        return out
    }

    /// Segments of 1 kHz stereo sine, each (dBFS, seconds).
    static func steps(_ segments: [(Double, Double)], rate: Int = 48000) -> [Float] {
        segments.flatMap { sine(dBFS: $0.0, seconds: $0.1, rate: rate) }
    }

    /// Tech 3341 case 6: 5 channels (L R C Ls Rs) at −28, −28, −24, −30, −30 dBFS.
    static func fiveChannel(rate: Int = 48000) -> [Float] {
        let levels = [-28.0, -28, -24, -30, -30]
        let frames = 20 * rate
        var out = [Float](repeating: 0, count: frames * 5)
        for n in 0..<frames {
            let s = sin(2 * .pi * 1000 * Double(n) / Double(rate))
            for c in 0..<5 { out[n * 5 + c] = Float(pow(10, levels[c] / 20) * s) }
        }
        return out
    }

    /// Pink-ish noise with a slow envelope, seeded: a stand-in for programme material.
    static func programme(seconds: Double, rate: Int, channels: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        let frames = Int(seconds * Double(rate))
        var out = [Float](repeating: 0, count: frames * channels)
        var b = [Double](repeating: 0, count: channels * 3)
        for n in 0..<frames {
            let t = Double(n) / Double(rate)
            let envelope = 0.25 * (1.2 + sin(2 * .pi * 0.11 * t) + 0.5 * sin(2 * .pi * 0.037 * t))
            for c in 0..<channels {
                let white = Double.random(in: -1...1, using: &rng)
                // Paul Kellet's economy pink filter.
                b[c * 3] = 0.99765 * b[c * 3] + white * 0.0990460
                b[c * 3 + 1] = 0.96300 * b[c * 3 + 1] + white * 0.2965164
                b[c * 3 + 2] = 0.57000 * b[c * 3 + 2] + white * 1.0526913
                let pink = (b[c * 3] + b[c * 3 + 1] + b[c * 3 + 2] + white * 0.1848) * 0.11
                out[n * channels + c] = Float(envelope * (pink + 0.3 * sin(2 * .pi * (110 * Double(c + 1)) * t)))
            }
        }
        return out
    }
}

func measure(_ samples: [Float], rate: Int = 48000, channels: Int = 2, blockFrames: Int = 4096) throws -> LoudnessMeter {
    var meter = try LoudnessMeter(sampleRate: rate, channelCount: channels)
    var start = 0
    while start < samples.count {
        let end = min(samples.count, start + blockFrames * channels)
        meter.process(Array(samples[start..<end]))
        start = end
    }
    return meter
}

/// libebur128 (I, LRA, sample and true peak) on the same samples.
func reference(_ samples: [Float], rate: Int, channels: Int) -> (integrated: Double, range: Double, truePeak: Double, samplePeak: Double) {
    let mode = Int32(EBUR128_MODE_I.rawValue | EBUR128_MODE_LRA.rawValue | EBUR128_MODE_TRUE_PEAK.rawValue | EBUR128_MODE_SAMPLE_PEAK.rawValue)
    var state: UnsafeMutablePointer<ebur128_state>? = ebur128_init(UInt32(channels), UInt(rate), mode)
    defer { ebur128_destroy(&state) }
    samples.withUnsafeBufferPointer { _ = ebur128_add_frames_float(state, $0.baseAddress, samples.count / channels) }
    var integrated = 0.0, range = 0.0, tp = 0.0, sp = 0.0
    ebur128_loudness_global(state, &integrated)
    ebur128_loudness_range(state, &range)
    for c in 0..<channels {
        var v = 0.0
        ebur128_true_peak(state, UInt32(c), &v); tp = max(tp, v)
        ebur128_sample_peak(state, UInt32(c), &v); sp = max(sp, v)
    }
    return (integrated, range, 20 * log10(tp), 20 * log10(sp))
}

@Suite("Loudness (EBU R 128)")
struct LoudnessTests {
    // EBU Tech 3341 (2016) minimum requirements, ±0.1 LU for I, M, S.
    @Test("Tech 3341 integrated loudness cases 1–6", arguments: [
        (1, -23.0), (2, -33.0), (3, -23.0), (4, -23.0), (5, -23.0), (6, -23.0),
    ])
    func tech3341Integrated(testCase: Int, expected: Double) throws {
        let signal: [Float]
        var channels = 2
        switch testCase {
        case 1: signal = EBUSignal.steps([(-23, 20)])
        case 2: signal = EBUSignal.steps([(-33, 20)])
        case 3: signal = EBUSignal.steps([(-36, 10), (-23, 60), (-36, 10)])
        case 4: signal = EBUSignal.steps([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)])
        case 5: signal = EBUSignal.steps([(-26, 20), (-20, 20.1), (-26, 20)])
        default: signal = EBUSignal.fiveChannel(); channels = 5
        }
        let meter = try measure(signal, channels: channels)
        #expect(abs(meter.integratedLoudness - expected) <= 0.1, "I = \(meter.integratedLoudness)")
    }

    @Test("Tech 3341 momentary and short-term of a constant tone (cases 1, 2)")
    func tech3341MomentaryShortTerm() throws {
        for level in [-23.0, -33.0] {
            let meter = try measure(EBUSignal.steps([(level, 20)]))
            #expect(abs(meter.momentaryLoudness - level) <= 0.1)
            #expect(abs(meter.shortTermLoudness - level) <= 0.1)
            #expect(abs(meter.report.maximumShortTermLoudness - level) <= 0.1)
        }
    }

    @Test("Tech 3341 case 9: short-term of 1.34 s / 1.66 s bursts stays at −23 LUFS")
    func tech3341Case9() throws {
        var meter = try LoudnessMeter(sampleRate: 48000, channelCount: 2)
        var readings: [Double] = []
        for _ in 0..<20 {
            for (level, seconds) in [(-20.0, 1.34), (-30.0, 1.66)] {
                let burst = EBUSignal.sine(dBFS: level, seconds: seconds)
                // Read S every 100 ms after the first 3 s.
                var start = 0
                while start < burst.count {
                    let end = min(burst.count, start + 4800 * 2)
                    meter.process(Array(burst[start..<end]))
                    start = end
                    if meter.frameCount >= 3 * 48000 { readings.append(meter.shortTermLoudness) }
                }
            }
        }
        #expect(readings.count > 100)
        #expect(readings.allSatisfy { abs($0 - -23) <= 0.1 }, "range \(readings.min()!)…\(readings.max()!)")
    }

    // EBU Tech 3342 (2016): LRA within ±1 LU.
    @Test("Tech 3342 loudness range cases 1–4", arguments: [
        ([(-20.0, 20.0), (-30, 20)], 10.0),
        ([(-20.0, 20.0), (-15, 20)], 5.0),
        ([(-40.0, 20.0), (-20, 20)], 20.0),
        ([(-50.0, 20.0), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),
    ] as [([(Double, Double)], Double)])
    func tech3342(segments: [(Double, Double)], expected: Double) throws {
        let meter = try measure(EBUSignal.steps(segments))
        #expect(abs(meter.loudnessRange - expected) <= 1, "LRA = \(meter.loudnessRange)")
    }

    // Tech 3341 cases 15–18: a sine at fs/4 whose samples miss its peak; true peak −6 dBTP (+0.2/−0.4).
    @Test("Tech 3341 true-peak cases 15–18", arguments: [0.0, 45.0, 60.0, 67.5])
    func tech3341TruePeak(phaseDegrees: Double) throws {
        let signal = EBUSignal.sine(dBFS: -6, seconds: 1, frequency: 12000, phase: phaseDegrees * .pi / 180)
        let meter = try measure(signal)
        let tp = meter.report.truePeak
        #expect(tp >= -6.4 && tp <= -5.8, "TP = \(tp)")
        if phaseDegrees == 45 { #expect(meter.report.samplePeak < -8.9) }  // samples at ±0.707 of the peak
    }

    // Tech 3341 cases 19–20: a 1 kHz... at other rates, sample peak exact, true peak close.
    @Test("true peak of a full-scale 997 Hz tone at 44.1 kHz is 0 dBTP (+0.2/−0.4)")
    func truePeakTone() throws {
        let meter = try measure(EBUSignal.sine(dBFS: 0, seconds: 2, rate: 44100, frequency: 997), rate: 44100)
        #expect(meter.report.truePeak >= -0.4 && meter.report.truePeak <= 0.2)
    }

    @Test("silence measures −∞ and encodes as null")
    func silence() throws {
        let meter = try measure([Float](repeating: 0, count: 48000 * 2 * 5))
        #expect(meter.integratedLoudness == -.infinity)
        let json = String(decoding: try JSONEncoder().encode(meter.report), as: UTF8.self)
        #expect(json.contains("\"integratedLoudness\":null"))
        let back = try JSONDecoder().decode(LoudnessReport.self, from: Data(json.utf8))
        #expect(back.integratedLoudness == -.infinity)
    }

    @Test("block size does not change the result")
    func blockSizeInvariance() throws {
        let signal = EBUSignal.programme(seconds: 12, rate: 44100, channels: 2, seed: 3)
        let a = try measure(signal, rate: 44100, blockFrames: 4096).report
        let b = try measure(signal, rate: 44100, blockFrames: 7).report
        let c = try measure(signal, rate: 44100, blockFrames: 44100 * 12).report
        #expect(abs(a.integratedLoudness - b.integratedLoudness) < 1e-9)
        #expect(abs(a.integratedLoudness - c.integratedLoudness) < 1e-9)
        #expect(a.truePeak == b.truePeak && a.truePeak == c.truePeak)
        #expect(abs(a.loudnessRange - b.loudnessRange) < 1e-9)
    }

    @Test("agrees with libebur128 within 0.05 LU on programme-like signals", arguments: [
        (44100, 2, UInt64(1)), (48000, 2, UInt64(2)), (48000, 1, UInt64(3)), (96000, 2, UInt64(4)),
        (22050, 2, UInt64(5)), (48000, 6, UInt64(6)), (8000, 1, UInt64(7)), (192000, 2, UInt64(8)),
    ])
    func agreesWithLibebur128(rate: Int, channels: Int, seed: UInt64) throws {
        let signal = EBUSignal.programme(seconds: 40, rate: rate, channels: channels, seed: seed)
        let ours = try measure(signal, rate: rate, channels: channels).report
        let theirs = reference(signal, rate: rate, channels: channels)
        #expect(abs(ours.integratedLoudness - theirs.integrated) <= 0.05, "I \(ours.integratedLoudness) vs \(theirs.integrated)")
        #expect(abs(ours.loudnessRange - theirs.range) <= 0.05, "LRA \(ours.loudnessRange) vs \(theirs.range)")
        #expect(abs(ours.truePeak - theirs.truePeak) <= 0.05, "TP \(ours.truePeak) vs \(theirs.truePeak)")
        #expect(abs(ours.samplePeak - theirs.samplePeak) <= 1e-6)
    }

    @Test("agrees with libebur128 on decoded real files", arguments: ["cbr.mp3", "aac.m4a", "opus.opus"])
    func agreesOnDecodedFiles(file: String) throws {
        let format = try #require(lossyFormats.first { $0.file == file })
        let pcm = try AudioDecoder(path: try format.path()).readAll()
        let ours = try measure(pcm.samples, rate: pcm.sampleRate, channels: pcm.channelCount).report
        let theirs = reference(pcm.samples, rate: pcm.sampleRate, channels: pcm.channelCount)
        #expect(abs(ours.integratedLoudness - theirs.integrated) <= 0.05)
        #expect(abs(ours.truePeak - theirs.truePeak) <= 0.05)
    }

    @Test func rejectsBadParameters() {
        #expect(throws: MediaError.self) { try LoudnessMeter(sampleRate: 0, channelCount: 2) }
        #expect(throws: MediaError.self) { try LoudnessMeter(sampleRate: 48000, channelCount: 0) }
        #expect(throws: MediaError.self) { try LoudnessMeter(sampleRate: 48000, channelCount: 2, channelWeights: [1]) }
    }
}
