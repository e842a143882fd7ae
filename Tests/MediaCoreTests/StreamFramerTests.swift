import Foundation
import MediaCore
import Testing
import TestSupport

@Suite("StreamFramer: live bitstreams cut into whole frames and pages as bytes arrive")
struct StreamFramerTests {
    /// Feeds `bytes` in pieces of `piece` bytes.
    static func frames(_ format: LiveStreamFormat, _ bytes: [UInt8], piece: Int) -> (frames: [LiveFrame], framer: StreamFramer) {
        var framer = StreamFramer(format: format)
        var frames: [LiveFrame] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + piece)
            frames += framer.push(bytes[offset..<end])
            offset = end
        }
        return (frames, framer)
    }

    static func encode(_ name: String, seconds: Int, _ arguments: [String]) throws -> [UInt8] {
        let path = try Fixtures.make(name, source: Fixtures.sourceArguments(seconds: Double(seconds)), arguments)
        return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    @Test("MP3 from ffmpeg (ID3 tag first): every frame found whatever the piece size, durations add up, nothing skipped but the tag")
    func mp3() throws {
        let bytes = try Self.encode("framer-10.mp3", seconds: 10, ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"])
        for piece in [1, 7, 1000, 65_536] {
            let (frames, framer) = Self.frames(.mpegAudio, bytes, piece: piece)
            let seconds = frames.reduce(0) { $0 + $1.duration }
            // The last frame waits for a following header: all but one.
            #expect(abs(seconds - 10) < 0.1, "piece \(piece): \(seconds) s")
            #expect(frames.allSatisfy { $0.sampleRate == 44_100 })
            #expect(frames.reduce(0) { $0 + $1.bytes.count } + framer.skippedBytes + framer.bufferedBytes == bytes.count)
            #expect(framer.skippedBytes < 1024, "only the ID3 tag: \(framer.skippedBytes)")
        }
    }

    @Test("ADTS from ffmpeg: 1024-sample frames, a sample-rate change mid-stream is followed")
    func adts() throws {
        let first = try Self.encode("framer-a.aac", seconds: 4, ["-c:a", "aac", "-b:a", "96k", "-ar", "44100", "-f", "adts"])
        let second = try Self.encode("framer-b.aac", seconds: 4, ["-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-f", "adts"])
        let (frames, _) = Self.frames(.adts, first + second, piece: 1500)
        let rates = Set(frames.map(\.sampleRate))
        #expect(rates == [44_100, 48_000])
        let seconds = frames.reduce(0) { $0 + $1.duration }
        #expect(abs(seconds - 8) < 0.15, "\(seconds) s")
    }

    @Test("garbage before, between and inside: resynchronises on the next real frame and counts what it skipped")
    func resynchronises() throws {
        let mp3 = try Self.encode("framer-5.mp3", seconds: 5, ["-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "0", "-write_xing", "0", "-f", "mp3"])
        var generator = SystemRandomNumberGenerator()
        let noise = (0..<5000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let corrupted = noise + Array(mp3[0..<40_000]) + noise + Array(mp3[40_000...])
        let (frames, framer) = Self.frames(.mpegAudio, corrupted, piece: 4096)
        let seconds = frames.reduce(0) { $0 + $1.duration }
        // A frame cut by the noise is lost; the rest comes through.
        #expect(seconds > 4.8 && seconds < 5.05, "\(seconds) s")
        #expect(framer.skippedBytes >= 10_000)
        // Pure noise: no frame at all.
        let (none, noiseFramer) = Self.frames(.mpegAudio, noise + noise + noise, piece: 512)
        #expect(none.isEmpty && noiseFramer.skippedBytes > 14_000)
    }

    @Test("Ogg Opus, then a second chain: header pages marked, TITLE read from OpusTags, granule time adds up")
    func oggChains() throws {
        let first = try Self.encode("framer-1.opus", seconds: 3, ["-c:a", "libopus", "-b:a", "64k", "-metadata", "title=First", "-metadata", "artist=Band", "-f", "ogg"])
        let second = try Self.encode("framer-2.ogg", seconds: 2, ["-c:a", "libvorbis", "-metadata", "title=Second", "-f", "ogg"])
        let (frames, framer) = Self.frames(.ogg, first + second, piece: 3000)
        #expect(framer.skippedBytes == 0)
        #expect(frames.compactMap(\.title) == ["Band - First", "Second"])
        #expect(frames.filter(\.isStreamHeader).count >= 4, "two pages of headers per chain at least")
        let seconds = frames.reduce(0) { $0 + $1.duration }
        #expect(abs(seconds - 5) < 0.1, "\(seconds) s")
        #expect(Set(frames.filter { !$0.isStreamHeader }.map(\.sampleRate)) == [48_000, 44_100])
    }

    @Test("content types: the ones Icecast sources send, parameters ignored, others refused")
    func contentTypes() {
        #expect(LiveStreamFormat(contentType: "audio/mpeg") == .mpegAudio)
        #expect(LiveStreamFormat(contentType: "audio/aacp") == .adts)
        #expect(LiveStreamFormat(contentType: "application/ogg") == .ogg)
        #expect(LiveStreamFormat(contentType: "Audio/Ogg; codecs=opus") == .ogg)
        #expect(LiveStreamFormat(contentType: "video/mp4") == nil)
        #expect(LiveStreamFormat(contentType: "") == nil)
    }
}
