/// The Xing/Info header and LAME extension that LAME and FFmpeg write into the first MP3
/// frame: frame count, encoder delay and padding, from which the exact length follows.
struct MP3InfoTag: Hashable {
    var frames: Int
    var samplesPerFrame: Int
    var encoderDelay: Int
    var padding: Int

    /// Samples per channel after gapless trimming (what FFmpeg's decoder outputs).
    var exactSampleCount: Int64? {
        let total = Int64(frames) * Int64(samplesPerFrame) - Int64(encoderDelay) - Int64(padding)
        return total > 0 ? total : nil
    }

    /// Parses the tag from the first frame at the start of `b`; nil when there is no
    /// frame count or no LAME extension (then the length is only an estimate).
    static func parse(_ b: [UInt8]) -> MP3InfoTag? {
        guard b.count >= 4, b[0] == 0xFF, b[1] & 0xE0 == 0xE0 else { return nil }
        let version = (b[1] >> 3) & 0x03
        let layer = 4 - Int((b[1] >> 1) & 0x03)
        let mono = (b[3] >> 6) == 3
        let mpeg1 = version == 3
        guard layer == 3 else { return nil }
        let sideInfo = mpeg1 ? (mono ? 17 : 32) : (mono ? 9 : 17)
        var at = 4 + sideInfo
        guard at + 8 <= b.count else { return nil }
        let magic = String(decoding: b[at..<at + 4], as: UTF8.self)
        guard magic == "Xing" || magic == "Info" else { return nil }
        func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        let flags = be32(at + 4)
        at += 8
        guard flags & 1 != 0, at + 4 <= b.count else { return nil }
        let frames = be32(at)
        at += 4
        if flags & 2 != 0 { at += 4 }
        if flags & 4 != 0 { at += 100 }
        if flags & 8 != 0 { at += 4 }
        guard at + 24 <= b.count else { return nil }
        let encoder = String(decoding: b[at..<at + 4], as: UTF8.self)
        // FFmpeg trusts the delay fields only from these encoders (libavformat/mp3dec.c).
        guard ["LAME", "Lavf", "Lavc"].contains(encoder) else { return nil }
        let d = at + 21
        let delay = Int(b[d]) << 4 | Int(b[d + 1]) >> 4
        let padding = Int(b[d + 1] & 0x0F) << 8 | Int(b[d + 2])
        return MP3InfoTag(frames: frames, samplesPerFrame: mpeg1 ? 1152 : 576, encoderDelay: delay, padding: padding)
    }
}
