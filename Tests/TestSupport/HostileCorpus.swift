import Foundation

/// A deterministic generator (SplitMix64) for reproducible random bytes.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}

/// Malformed and hostile media files made from real fixtures, for robustness tests of every
/// parser that reads uploads. Each entry is a name and a path.
public enum HostileCorpus {
    public struct Entry: Sendable, CustomStringConvertible {
        public var name: String
        public var path: String
        public var description: String { name }
    }

    public static func make() throws -> [Entry] {
        let dir = Fixtures.directory + "/hostile"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var rng = SeededGenerator(seed: 0x5EED)
        var entries: [Entry] = []
        func add(_ name: String, _ bytes: [UInt8]) throws {
            let path = "\(dir)/\(name)"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            entries.append(Entry(name: name, path: path))
        }
        func read(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
        func be32(_ v: UInt32) -> [UInt8] { le32(v).reversed() }
        func patch(_ b: [UInt8], at offset: Int, _ bytes: [UInt8]) -> [UInt8] {
            var b = b
            b.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            return b
        }
        func find(_ b: [UInt8], _ ascii: String) -> Int {
            let needle = Array(ascii.utf8)
            for i in 0...(b.count - needle.count) where Array(b[i..<i + needle.count]) == needle { return i }
            fatalError("fixture lacks \(ascii)")
        }

        let source = Fixtures.sourceArguments(seconds: 2)
        let flac = try read(Fixtures.make("h.flac", source: source, ["-c:a", "flac", "-sample_fmt", "s16"]))
        let mp3 = try read(Fixtures.make("h.mp3", source: source, ["-c:a", "libmp3lame", "-metadata", "title=x"]))
        let m4a = try read(Fixtures.make("h.m4a", source: source, ["-c:a", "aac"]))
        let ogg = try read(Fixtures.make("h.ogg", source: source, ["-c:a", "libvorbis"]))
        let opus = try read(Fixtures.make("h.opus", source: source, ["-c:a", "libopus"]))
        let wav = try read(Fixtures.make("h.wav", source: source, ["-c:a", "pcm_s16le"]))
        let aac = try read(Fixtures.make("h.aac", source: source, ["-c:a", "aac", "-f", "adts"]))

        // Empty and tiny.
        try add("empty.mp3", [])
        try add("one-byte.flac", [0x66])
        try add("magic-only.flac", Array("fLaC".utf8))
        // Truncated at many offsets.
        for (name, bytes) in [("flac", flac), ("mp3", mp3), ("m4a", m4a), ("ogg", ogg), ("opus", opus), ("wav", wav), ("aac", aac)] {
            for fraction in [0.001, 0.01, 0.3, 0.77] {
                let cut = max(5, Int(Double(bytes.count) * fraction))
                try add("truncated-\(Int(fraction * 1000))-permille.\(name)", Array(bytes.prefix(cut)))
            }
        }
        // Random bytes behind a valid magic.
        let magics: [(String, [UInt8])] = [
            ("flac", Array("fLaC".utf8)), ("ogg", Array("OggS".utf8)), ("wav", Array("RIFF".utf8) + le32(100_000) + Array("WAVE".utf8)),
            ("aiff", Array("FORM".utf8) + be32(100_000) + Array("AIFF".utf8)), ("m4a", be32(24) + Array("ftypM4A ".utf8)),
            ("mp3", Array(mp3.prefix(10)) + [UInt8](repeating: 0, count: Int(mp3[9]) + Int(mp3[8]) << 7)),
            ("id3", Array("ID3".utf8) + [4, 0, 0, 0, 0, 0, 0]),
        ]
        for (name, magic) in magics {
            try add("random-after-magic.\(name)", magic + rng.bytes(64 * 1024))
        }
        // A real header then random bytes.
        try add("random-after-header.flac", Array(flac.prefix(8192)) + rng.bytes(200_000))
        try add("random-after-header.mp3", Array(mp3.prefix(4096)) + rng.bytes(200_000))
        try add("random-after-header.ogg", Array(ogg.prefix(6000)) + rng.bytes(200_000))
        // Bit flips all through a valid file (corrupt frames to skip).
        for (name, bytes) in [("mp3", mp3), ("flac", flac), ("ogg", ogg), ("aac", aac), ("opus", opus)] {
            var flipped = bytes
            for i in stride(from: 2048, to: flipped.count, by: 997) { flipped[i] ^= 0xA5 }
            try add("bitflips.\(name)", flipped)
        }
        // ID3v2 tags that lie about their size.
        try add("id3-huge-size.mp3", Array("ID3".utf8) + [4, 0, 0, 0x7F, 0x7F, 0x7F, 0x7F] + Array(mp3.prefix(20_000)))
        let frameHeader = Array("TIT2".utf8) + [0x7F, 0x7F, 0x7F, 0x7F, 0, 0, 3] + Array("title".utf8)
        try add("id3-frame-huge-size.mp3", Array("ID3".utf8) + [4, 0, 0, 0, 0, 0, UInt8(frameHeader.count)] + frameHeader + Array(mp3.dropFirst(10 + Int(mp3[9]) + Int(mp3[8]) << 7)))
        // Non-UTF-8 text declared UTF-8 (ID3v2.4 encoding 3).
        let badText: [UInt8] = [3, 0xC3, 0x28, 0xA0, 0xA1, 0xE2, 0x28, 0xA1, 0xF0, 0x28, 0x8C, 0x28, 0x1B, 0x5B, 0x33, 0x31, 0x6D]
        let badFrame = Array("TIT2".utf8) + [0, 0, 0, UInt8(badText.count), 0, 0] + badText
        try add("id3-invalid-utf8.mp3", Array("ID3".utf8) + [4, 0, 0, 0, 0, 0, UInt8(badFrame.count)] + badFrame + Array(mp3.dropFirst(10 + Int(mp3[9]) + Int(mp3[8]) << 7)))
        // WAV header lies.
        let fmt = find(wav, "fmt ")
        try add("wav-sample-rate-0.wav", patch(wav, at: fmt + 12, le32(0)))
        try add("wav-65535-channels.wav", patch(wav, at: fmt + 10, [0xFF, 0xFF]))
        try add("wav-1000-channels.wav", patch(patch(wav, at: fmt + 10, [0xE8, 0x03]), at: fmt + 20, [0xD0, 0x07]))
        try add("wav-block-align-0.wav", patch(wav, at: fmt + 20, [0, 0]))
        try add("wav-bits-0.wav", patch(wav, at: fmt + 22, [0, 0]))
        let data = find(wav, "data")
        try add("wav-data-4GiB.wav", patch(wav, at: data + 4, le32(0xFFFF_FFF0)))
        try add("wav-chunk-size-loop.wav", patch(wav, at: fmt + 4, le32(0xFFFF_FFF8)))
        // FLAC STREAMINFO lies: sample rate 0, 2^36-1 total samples (≈ 18 days at 44.1 kHz), max block size 0.
        // STREAMINFO starts at 8: minblk(2) maxblk(2) minfrm(3) maxfrm(3) then 20 bits rate, 3 ch, 5 bps, 36 samples.
        try add("flac-sample-rate-0.flac", patch(flac, at: 18, [0x00, 0x00, flac[20] & 0x0F]))
        try add("flac-huge-duration.flac", patch(flac, at: 21, [flac[21] | 0x0F, 0xFF, 0xFF, 0xFF, 0xFF]))
        try add("flac-block-size-0.flac", patch(flac, at: 8, [0, 0, 0, 0]))
        // MP4 lies: 2^32-1 second duration, a box that claims to contain the whole universe,
        // a box smaller than its header, and atoms nested thousands deep.
        let mvhd = find(m4a, "mvhd")
        try add("mp4-duration-2e32-seconds.m4a", patch(patch(m4a, at: mvhd + 16, be32(1)), at: mvhd + 20, be32(0xFFFF_FFFF)))
        let moov = find(m4a, "moov")
        try add("mp4-moov-size-huge.m4a", patch(m4a, at: moov - 4, be32(0xFFFF_FFF0)))
        try add("mp4-box-size-4.m4a", patch(m4a, at: moov - 4, be32(4)))
        let stsz = find(m4a, "stsz")
        try add("mp4-stsz-huge-count.m4a", patch(m4a, at: stsz + 12, be32(0x7FFF_FFFF)))
        let stts = find(m4a, "stts")
        try add("mp4-stts-huge-count.m4a", patch(m4a, at: stts + 12, be32(0xFFFF_FFFF)))
        var nested: [UInt8] = []
        for depth in 0..<5000 { nested = be32(UInt32(8 + nested.count)) + Array((depth % 2 == 0 ? "moov" : "trak").utf8) + nested }
        try add("mp4-nested-5000-deep.m4a", be32(24) + Array("ftypM4A ".utf8) + [0, 0, 0, 0] + Array("M4A ".utf8) + nested)
        // Ogg Opus header claiming 255 channels, and a Vorbis stream with invalid UTF-8 comments.
        let opusHead = find(opus, "OpusHead")
        try add("opus-255-channels.opus", patch(opus, at: opusHead + 9, [255]))
        // Random bytes with no magic at all.
        try add("random.bin", rng.bytes(100_000))
        return entries
    }
}
