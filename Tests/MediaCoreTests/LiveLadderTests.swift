import Foundation
import MediaCore
import Testing
import TestSupport

@Suite("Live decoding and the live ladder: network units → 48 kHz PCM → aligned CMAF parts")
struct LiveLadderTests {
    /// A file ffmpeg made from a 523 Hz tone, as a source would send it.
    static func source(_ name: String, seconds: Double, _ arguments: [String]) throws -> [UInt8] {
        let path = try Fixtures.make(name, source: ["-f", "lavfi", "-i", "sine=frequency=523:sample_rate=44100:duration=\(seconds)"], arguments)
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Framer → decoder, in network-sized pieces.
    static func decode(_ format: LiveStreamFormat, _ bytes: [UInt8]) throws -> (samples: [Float], decoder: LiveDecoder) {
        var framer = StreamFramer(format: format)
        let decoder = try LiveDecoder(format: format)
        var samples: [Float] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 1400)
            for unit in framer.push(bytes[offset..<end]) { samples += try decoder.decode(unit) }
            offset = end
        }
        return (samples, decoder)
    }

    /// Main frequency of interleaved stereo by zero crossings of the left channel (first 0.2 s skipped).
    static func frequency(_ samples: [Float], rate: Double = 48_000) -> Double {
        let left = stride(from: 0, to: samples.count, by: 2).map { samples[$0] }.dropFirst(Int(rate / 5))
        var crossings = 0
        var previous = left.first ?? 0
        for sample in left.dropFirst() {
            if (previous < 0) != (sample < 0) { crossings += 1 }
            previous = sample
        }
        return Double(crossings) / 2 / (Double(left.count) / rate)
    }

    @Test("MP3, ADTS AAC and chained Ogg (Opus then Vorbis) decode from network pieces to 48 kHz stereo: the right length and the tone")
    func decodesEveryFormat() throws {
        let cases: [(LiveStreamFormat, [UInt8], Double)] = [
            (.mpegAudio, try Self.source("live-dec.mp3", seconds: 5, ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]), 5),
            (.adts, try Self.source("live-dec.aac", seconds: 5, ["-c:a", "aac", "-b:a", "96k", "-f", "adts"]), 5),
            (.ogg, try Self.source("live-dec.opus", seconds: 3, ["-c:a", "libopus", "-f", "ogg"])
                + Self.source("live-dec.ogg", seconds: 2, ["-c:a", "libvorbis", "-f", "ogg"]), 5),
        ]
        for (format, bytes, seconds) in cases {
            let (samples, decoder) = try Self.decode(format, bytes)
            let decoded = Double(samples.count / 2) / 48_000
            #expect(abs(decoded - seconds) < 0.12, "\(format): \(decoded) s")
            #expect(abs(Self.frequency(samples) - 523) < 4, "\(format): \(Self.frequency(samples)) Hz")
            #expect(decoder.corruptUnits == 0, "\(format)")
        }
    }

    @Test("a corrupt stretch costs a few units, never an error, and decoding goes on")
    func survivesCorruption() throws {
        var bytes = try Self.source("live-dec.mp3", seconds: 5, ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"])
        for index in stride(from: 30_000, to: 34_000, by: 7) { bytes[index] ^= 0x5A }
        let (samples, _) = try Self.decode(.mpegAudio, bytes)
        #expect(Double(samples.count / 2) / 48_000 > 4.5)
    }

    @Test("the ladder cuts every rung into 0.96 s parts at the same instants; init + parts (some behind an ID3 emsg) play in ffmpeg for their full length")
    func alignedParts() throws {
        let (samples, _) = try Self.decode(.mpegAudio, try Self.source("live-ladder.mp3", seconds: 12, ["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"]))
        let ladder = try LiveLadder()
        var parts: [LivePart] = []
        var offset = 0
        while offset < samples.count {
            // Blocks of about 26 ms, as a source's frames arrive.
            let end = min(samples.count, offset + 2 * 1152)
            parts += try ladder.push(Array(samples[offset..<end]))
            offset = end
        }
        #expect(ladder.partFrames == 46_080)
        for rung in ladder.rungs.map(\.id) {
            let mine = parts.filter { $0.rung == rung }
            #expect(mine.count >= 11, "\(rung): \(mine.count) parts")
            #expect(mine.allSatisfy { $0.duration == 46_080 }, "\(rung)")
            #expect(mine.enumerated().allSatisfy { $0.element.index == $0.offset && $0.element.startTime == Int64($0.offset) * 46_080 }, "\(rung)")
            let file = Fixtures.directory + "/live-\(rung).mp4"
            var bytes = ladder.initSegments[rung] ?? []
            for part in mine {
                // Timed metadata before some fragments, as a live show's title changes: players skip what they do not read.
                if part.index % 4 == 0 {
                    bytes += TimedMetadata.id3Event(title: "Title \(part.index)", presentationTime: UInt64(part.startTime), timescale: 48_000, id: UInt32(part.index))
                }
                bytes += part.bytes
            }
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let check = try Subprocess.run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"])
            #expect(check.status == 0 && check.stderr.isEmpty, "\(rung): \(check.stderr)")
            let probe = try Subprocess.run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file])
            let duration = Double(String(decoding: probe.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            #expect(abs(duration - Double(mine.count) * 0.96) < 0.1, "\(rung): \(duration) s for \(mine.count) parts")
        }
        #expect(ladder.codecStrings["aac-128"] == "mp4a.40.2" && ladder.codecStrings["opus-96"] == "opus")
    }

    @Test("ID3 timed metadata: a version-1 emsg with the AOM scheme, the presentation time and an ID3v2.4 tag whose TIT2 is the title")
    func id3EventMessage() throws {
        let title = "Artist – Title ♫"
        let box = TimedMetadata.id3Event(title: title, presentationTime: 0x1_0000_0005, timescale: 48_000, id: 7)
        func u32(_ at: Int) -> UInt32 { box[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        #expect(Int(u32(0)) == box.count && Array(box[4..<8]) == Array("emsg".utf8))
        #expect(box[8] == 1 && u32(8) & 0xFF_FFFF == 0, "version 1, no flags")
        #expect(u32(12) == 48_000 && UInt64(u32(16)) << 32 | UInt64(u32(20)) == 0x1_0000_0005)
        #expect(u32(24) == 0xFFFF_FFFF && u32(28) == 7)
        let scheme = Array("https://aomedia.org/emsg/ID3".utf8)
        #expect(Array(box[32..<(32 + scheme.count)]) == scheme && box[32 + scheme.count] == 0 && box[33 + scheme.count] == 0)
        let tag = Array(box[(34 + scheme.count)...])
        #expect(Array(tag[0..<5]) == Array("ID3".utf8) + [4, 0])
        let size = tag[6..<10].reduce(0) { $0 << 7 | Int($1) }
        #expect(size == tag.count - 10)
        // The first frame: TIT2, UTF-8 (encoding 3), the title.
        #expect(Array(tag[10..<14]) == Array("TIT2".utf8))
        let frameSize = tag[14..<18].reduce(0) { $0 << 7 | Int($1) }
        #expect(tag[20] == 3 && String(decoding: tag[21..<(20 + frameSize)], as: UTF8.self) == title)
    }

    @Test("each rung's packets as a container-less stream: ADTS for AAC, Ogg Opus joined mid-stream and bare MP3 frames decode in ffmpeg to the tone, for their length")
    func rungStreams() throws {
        let (samples, _) = try Self.decode(.mpegAudio, try Self.source("live-rungs.mp3", seconds: 8, ["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"]))
        let ladder = try LiveLadder(rungs: [try #require(LiveRung(name: "aac-96")), try #require(LiveRung(name: "opus-48")), try #require(LiveRung(name: "mp3-128"))])
        #expect(LiveRung(name: "mp3-16") == nil && LiveRung(name: "aac-9000") == nil && LiveRung(name: "opus") == nil)
        #expect(ladder.isCMAF("aac-96") && !ladder.isCMAF("mp3-128") && ladder.initSegments["mp3-128"] == nil)
        let parts = try ladder.push(samples)
        guard case .aac(let config)? = ladder.tracks["aac-96"]?.codec, case .opus(let preSkip, _)? = ladder.tracks["opus-48"]?.codec else {
            Issue.record("unexpected tracks")
            return
        }
        var adts: [UInt8] = []
        for part in parts where part.rung == "aac-96" {
            for packet in part.packets { adts += try #require(ADTS.frame(packet.data, audioSpecificConfig: config)) }
        }
        #expect(ADTS.frame([0], audioSpecificConfig: [0xF8, 0x00]) == nil, "object type 31 has no ADTS profile")
        #expect(ADTS.frame([UInt8](repeating: 0, count: 9000), audioSpecificConfig: config) == nil)
        // A listener who joins at the third part: the headers, then pages from there.
        var ogg = OggOpusStream(channelCount: 2, preSkip: preSkip, inputSampleRate: 48_000)
        var joined = ogg.headers(title: "Live title")
        for (index, part) in parts.filter({ $0.rung == "opus-48" }).enumerated() {
            let pages = ogg.pages(part.packets)
            if index >= 2 { joined += pages }
        }
        let opusParts = parts.filter { $0.rung == "opus-48" }.count
        // MP3: the frames as the encoder gave them, no container, no part alignment.
        let mp3Parts = parts.filter { $0.rung == "mp3-128" }
        #expect(mp3Parts.allSatisfy { $0.bytes.isEmpty && !$0.packets.isEmpty })
        let mp3 = mp3Parts.flatMap { $0.packets.flatMap(\.data) }
        let mp3Seconds = Double(mp3Parts.reduce(0) { $0 + $1.duration }) / 48_000
        for (name, bytes, seconds) in [("live-rung.aac", adts, Double(parts.filter { $0.rung == "aac-96" }.count) * 0.96),
                                       ("live-rung.opus", joined, Double(opusParts - 2) * 0.96), ("live-rung.mp3", mp3, mp3Seconds)] {
            let file = Fixtures.directory + "/" + name
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let decoded = try Subprocess.run("ffmpeg", ["-v", "error", "-i", file, "-ac", "2", "-ar", "48000", "-f", "f32le", "-"])
            #expect(decoded.status == 0 && decoded.stderr.isEmpty, "\(name): \(decoded.stderr)")
            let pcm = decoded.stdout.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            #expect(abs(Double(pcm.count / 2) / 48_000 - seconds) < 0.15, "\(name): \(Double(pcm.count / 2) / 48_000) s, expected \(seconds)")
            #expect(abs(Self.frequency(pcm) - 523) < 5, "\(name): \(Self.frequency(pcm)) Hz")
        }
        let tags = try Subprocess.run("ffprobe", ["-v", "error", "-show_entries", "stream_tags=title", "-of", "csv=p=0", Fixtures.directory + "/live-rung.opus"])
        #expect(String(decoding: tags.stdout, as: UTF8.self).contains("Live title"))
    }

    @Test("the live loudness stage moves a quiet programme toward the target slowly, holds through silence, and keeps true peaks under the ceiling")
    func liveLoudness() throws {
        let rate = 48_000
        var stage = try LiveLoudnessStage(sampleRate: rate, channelCount: 2, targetLoudness: -14, maximumGain: 12, slewDecibelsPerSecond: 1)
        // A 1 kHz tone at about −30 LUFS for 20 s, fed in 20 ms blocks.
        func tone(seconds: Double, amplitude: Float, from start: Int) -> [Float] {
            (0..<Int(seconds * Double(rate))).flatMap { i -> [Float] in
                let v = amplitude * sin(2 * .pi * 1000 * Float(start + i) / Float(rate))
                return [v, v]
            }
        }
        var output: [Float] = []
        var gains: [Double] = []
        let quiet = tone(seconds: 20, amplitude: 0.04, from: 0)
        for block in stride(from: 0, to: quiet.count, by: 1920) {
            output += stage.process(Array(quiet[block..<min(quiet.count, block + 1920)]))
            gains.append(stage.gain)
        }
        // 3 s to fill the meter, then at most 1 dB/s: about 12 dB after 20 s (the cap), never a jump.
        #expect(gains[100] < 0.01, "no gain before the short-term window is full: \(gains[100])")
        #expect(zip(gains, gains.dropFirst()).allSatisfy { $1 - $0 <= 0.021 }, "the gain moved faster than 1 dB/s")
        #expect(stage.gain > 11 && stage.gain <= 12, "\(stage.gain) dB after 20 s")
        // Silence holds the gain.
        let held = stage.gain
        for _ in 0..<100 { _ = stage.process([Float](repeating: 0, count: 1920)) }
        #expect(abs(stage.gain - held) < 0.001)
        // A loud burst after the boost is limited under −1 dBTP (sample peaks a little under).
        let loud = tone(seconds: 1, amplitude: 0.9, from: 0)
        let limited = stage.process(loud)
        #expect((limited.map(abs).max() ?? 0) < pow(10, -1.0 / 20), "peak \(limited.map(abs).max() ?? 0)")
        #expect(stage.latency > 0 && output.count > quiet.count - 2 * stage.latency * 2)
    }
}
