#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The container and codec family of a file, as recognised from its first bytes.
///
/// Only these families are accepted for ingest; anything else is a
/// ``MediaError/Code/unsupportedFormat`` error whose message names what was seen.
public enum MediaFamily: Sendable, Hashable {
    /// MPEG-1/2 audio layer III (also layers I and II), bare frames, optionally behind ID3v2 tags.
    case mp3(layer: Int, id3v2: Bool)
    /// AAC in ADTS framing.
    case adts(id3v2: Bool)
    /// ISO base media file (MP4, M4A, M4B, 3GP) with its `ftyp` major brand.
    case mp4(majorBrand: String)
    /// Native FLAC (`fLaC`), optionally behind ID3v2 tags.
    case flac(id3v2: Bool)
    /// Ogg with the codec of its first logical stream.
    case ogg(OggCodec)
    /// RIFF/RF64/BW64 WAVE with its format tag.
    case wav(WAVContainer, formatTag: WAVFormatTag?)
    /// AIFF, or AIFF-C when `compressed` is true.
    case aiff(compressed: Bool)

    /// The codec carried in an Ogg stream.
    public enum OggCodec: String, Sendable, Hashable, Codable {
        case vorbis, opus, flac
    }

    /// The RIFF flavour of a WAVE file.
    public enum WAVContainer: String, Sendable, Hashable, Codable {
        /// Classic RIFF (32-bit sizes, files up to 4 GiB).
        case riff
        /// EBU Tech 3306 RF64 (64-bit sizes in a `ds64` chunk).
        case rf64
        /// ITU-R BS.2088 BW64.
        case bw64
    }

    /// The `wFormatTag` of a WAVE `fmt ` chunk.
    public struct WAVFormatTag: RawRepresentable, Sendable, Hashable, Codable {
        public var rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// Integer PCM.
        public static let pcm = WAVFormatTag(rawValue: 0x0001)
        /// IEEE 754 floating-point PCM.
        public static let ieeeFloat = WAVFormatTag(rawValue: 0x0003)
        /// WAVE_FORMAT_EXTENSIBLE (sub-format GUID and channel mask follow).
        public static let extensible = WAVFormatTag(rawValue: 0xFFFE)
    }

    /// A short stable name of the container: `mp3`, `adts`, `mp4`, `flac`, `ogg`, `wav`, `aiff`.
    public var containerName: String {
        switch self {
        case .mp3: "mp3"
        case .adts: "adts"
        case .mp4: "mp4"
        case .flac: "flac"
        case .ogg: "ogg"
        case .wav: "wav"
        case .aiff: "aiff"
        }
    }

    /// The FFmpeg demuxer that reads this family (no other demuxer is ever tried).
    var demuxerName: String {
        switch self {
        case .mp3: "mp3"
        case .adts: "aac"
        case .mp4: "mov"
        case .flac: "flac"
        case .ogg: "ogg"
        case .wav: "wav"
        case .aiff: "aiff"
        }
    }
}

extension MediaFamily: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .mp3(layer, id3): "MPEG audio layer \(layer)" + (id3 ? " (ID3v2)" : "")
        case let .adts(id3): "AAC ADTS" + (id3 ? " (ID3v2)" : "")
        case let .mp4(brand): "MP4 (brand '\(brand)')"
        case let .flac(id3): "FLAC" + (id3 ? " (ID3v2)" : "")
        case let .ogg(codec): "Ogg \(codec.rawValue)"
        case let .wav(container, tag):
            "WAVE (\(container.rawValue)" + (tag.map { ", format 0x" + Sniffer.hex([UInt8($0.rawValue >> 8), UInt8($0.rawValue & 0xFF)]).filter { $0 != " " } } ?? "") + ")"
        case let .aiff(compressed): compressed ? "AIFF-C" : "AIFF"
        }
    }
}

/// Recognises the media family from magic bytes.
///
/// Sniffing reads at most a few kilobytes (plus a seek past ID3v2 tags) and never
/// trusts a declared size beyond the data actually present.
public enum Sniffer {
    /// How many bytes ``sniff(_:)`` looks at (after any ID3v2 tags).
    public static let windowSize = 4096

    /// Sniffs a file on disk.
    public static func sniff(fileAt path: String) throws(MediaError) -> MediaFamily {
        try sniffFile(path).family
    }

    /// The family, the offset where audio starts (after ID3v2 tags), the bytes sniffed there
    /// and the file's size.
    static func sniffFile(_ path: String) throws(MediaError) -> (family: MediaFamily, audioOffset: Int64, window: [UInt8], fileSize: Int64, declaredDataEnd: Int64?) {
        let file = try ReadOnlyFile(path: path)
        let size = file.size
        var offset: Int64 = 0
        var sawID3 = false
        // ID3v2 tags may be chained; each must fit inside the file.
        for _ in 0..<8 {
            let header = file.read(at: offset, count: 10)
            guard let tagSize = id3v2TagSize(header) else { break }
            guard offset + Int64(tagSize) <= size else {
                throw MediaError(.invalidData, "ID3v2 tag declares \(tagSize) bytes but the file has \(size - offset) left")
            }
            offset += Int64(tagSize)
            sawID3 = true
        }
        let window = file.read(at: offset, count: windowSize)
        let family = try classify(window, afterID3: sawID3, fileSize: size)
        return (family, offset, window, size, declaredDataEnd(window, family: family).map { $0 + offset })
    }

    /// Sniffs bytes held in memory (the start of a file, e.g. an upload's first chunk).
    public static func sniff(_ bytes: [UInt8]) throws(MediaError) -> MediaFamily {
        var offset = 0
        var sawID3 = false
        for _ in 0..<8 {
            guard let tagSize = id3v2TagSize(bytes[offset...]) else { break }
            guard offset + tagSize <= bytes.count else {
                throw MediaError(.invalidData, "ID3v2 tag declares \(tagSize) bytes but only \(bytes.count - offset) are present")
            }
            offset += tagSize
            sawID3 = true
        }
        let window = Array(bytes[offset..<min(bytes.count, offset + windowSize)])
        return try classify(window, afterID3: sawID3, fileSize: Int64(bytes.count))
    }

    /// Total size of an ID3v2 tag (header, body, footer) starting at `bytes`, if one does.
    static func id3v2TagSize(_ bytes: some Collection<UInt8>) -> Int? {
        let b = Array(bytes.prefix(10))
        guard b.count == 10, b[0] == 0x49, b[1] == 0x44, b[2] == 0x33,  // "ID3"
              b[3] != 0xFF, b[4] != 0xFF,
              b[6] < 0x80, b[7] < 0x80, b[8] < 0x80, b[9] < 0x80
        else { return nil }
        let body = Int(b[6]) << 21 | Int(b[7]) << 14 | Int(b[8]) << 7 | Int(b[9])
        let footer = (b[5] & 0x10) != 0 ? 10 : 0
        return 10 + body + footer
    }

    static func classify(_ b: [UInt8], afterID3: Bool, fileSize: Int64) throws(MediaError) -> MediaFamily {
        if b.isEmpty {
            throw MediaError(.unsupportedFormat, afterID3 ? "only an ID3v2 tag, no audio after it" : "empty file")
        }
        func ascii(_ range: Range<Int>) -> String? {
            guard range.upperBound <= b.count else { return nil }
            return String(decoding: b[range], as: UTF8.self)
        }
        if ascii(0..<4) == "fLaC" { return .flac(id3v2: afterID3) }
        if let frame = adtsFrameLength(b, at: 0) {
            if frame >= b.count || adtsFrameLength(b, at: frame) != nil { return .adts(id3v2: afterID3) }
        }
        if let (layer, length) = mpegAudioFrame(b, at: 0) {
            // A bare frame sync is weak evidence: require the next header too when it fits.
            if afterID3 || length >= b.count || mpegAudioFrame(b, at: length) != nil {
                return .mp3(layer: layer, id3v2: afterID3)
            }
        }
        if afterID3 {
            throw MediaError(.unsupportedFormat, "ID3v2 tag followed by \(describeUnknown(b))")
        }
        if ascii(4..<8) == "ftyp", let brand = ascii(8..<12) {
            return .mp4(majorBrand: brand.filter { $0.isASCII && !$0.isWhitespace && $0 != "\0" })
        }
        if ascii(0..<4) == "OggS" { return .ogg(try oggCodec(b)) }
        if let riff = ascii(0..<4), ["RIFF", "RF64", "BW64"].contains(riff), b.count >= 12 {
            switch ascii(8..<12) {
            case "WAVE":
                let container: MediaFamily.WAVContainer = riff == "RIFF" ? .riff : (riff == "RF64" ? .rf64 : .bw64)
                return .wav(container, formatTag: wavFormatTag(b))
            case "AVI ": throw MediaError(.unsupportedFormat, "AVI video, not audio")
            case "WEBP": throw MediaError(.unsupportedFormat, "WebP image, not audio")
            case let other: throw MediaError(.unsupportedFormat, "RIFF file of type '\(printable(other ?? ""))'")
            }
        }
        if ascii(0..<4) == "FORM", b.count >= 12 {
            switch ascii(8..<12) {
            case "AIFF": return .aiff(compressed: false)
            case "AIFC": return .aiff(compressed: true)
            case let other: throw MediaError(.unsupportedFormat, "IFF file of type '\(printable(other ?? ""))'")
            }
        }
        throw MediaError(.unsupportedFormat, describeUnknown(b))
    }

    /// Frame length of an ADTS header at `offset`, when it is one.
    static func adtsFrameLength(_ b: [UInt8], at offset: Int) -> Int? {
        guard offset >= 0, offset + 7 <= b.count else { return nil }
        let h = b[offset..<offset + 7].map(Int.init)
        guard h[0] == 0xFF, h[1] & 0xF6 == 0xF0 else { return nil }  // sync 0xFFF, layer 00
        let samplingIndex = (h[2] >> 2) & 0x0F
        guard samplingIndex < 13 else { return nil }
        let length = (h[3] & 0x03) << 11 | h[4] << 3 | h[5] >> 5
        return length >= 7 ? length : nil
    }

    /// Layer and frame length of an MPEG audio frame header at `offset`, when it is one.
    static func mpegAudioFrame(_ b: [UInt8], at offset: Int) -> (layer: Int, length: Int)? {
        guard offset >= 0, offset + 4 <= b.count else { return nil }
        let h1 = Int(b[offset + 1]), h2 = Int(b[offset + 2])
        guard b[offset] == 0xFF, h1 & 0xE0 == 0xE0 else { return nil }
        let version = (h1 >> 3) & 0x03  // 0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1
        let layerBits = (h1 >> 1) & 0x03
        let bitrateIndex = h2 >> 4
        let rateIndex = (h2 >> 2) & 0x03
        guard version != 1, layerBits != 0, bitrateIndex != 0 && bitrateIndex != 15, rateIndex != 3 else { return nil }
        let layer = 4 - layerBits
        let padding = (h2 >> 1) & 0x01
        let rates = [[11025, 12000, 8000], [0, 0, 0], [22050, 24000, 16000], [44100, 48000, 32000]]
        let sampleRate = rates[version][rateIndex]
        let mpeg1 = version == 3
        let table: [Int]
        switch (mpeg1, layer) {
        case (true, 1): table = [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448]
        case (true, 2): table = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384]
        case (true, _): table = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
        case (false, 1): table = [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256]
        case (false, _): table = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
        }
        let bitrate = table[bitrateIndex] * 1000
        let length: Int
        if layer == 1 {
            length = (12 * bitrate / sampleRate + padding) * 4
        } else if layer == 3 && !mpeg1 {
            length = 72 * bitrate / sampleRate + padding
        } else {
            length = 144 * bitrate / sampleRate + padding
        }
        return length > 4 ? (layer, length) : nil
    }

    /// The codec of the first packet of an Ogg stream.
    static func oggCodec(_ b: [UInt8]) throws(MediaError) -> MediaFamily.OggCodec {
        guard b.count >= 27 else { throw MediaError(.unsupportedFormat, "Ogg page header cut short") }
        let segments = Int(b[26])
        let start = 27 + segments
        guard start < b.count else { throw MediaError(.unsupportedFormat, "Ogg page cut short") }
        let packet = Array(b[start..<min(b.count, start + 16)])
        func has(_ prefix: [UInt8]) -> Bool { packet.starts(with: prefix) }
        if has([0x01] + Array("vorbis".utf8)) { return .vorbis }
        if has(Array("OpusHead".utf8)) { return .opus }
        if has([0x7F] + Array("FLAC".utf8)) { return .flac }
        if has(Array("Speex   ".utf8)) { throw MediaError(.unsupportedFormat, "Ogg Speex") }
        if has([0x80] + Array("theora".utf8)) { throw MediaError(.unsupportedFormat, "Ogg Theora video") }
        throw MediaError(.unsupportedFormat, "Ogg stream of unknown codec (\(hex(packet.prefix(8))))")
    }

    /// The `wFormatTag` of the `fmt ` chunk, when it lies inside the sniffed window.
    static func wavFormatTag(_ b: [UInt8]) -> MediaFamily.WAVFormatTag? {
        var offset = 12
        for _ in 0..<64 {
            guard offset + 8 <= b.count else { return nil }
            let id = String(decoding: b[offset..<offset + 4], as: UTF8.self)
            let size = Int(b[offset + 4]) | Int(b[offset + 5]) << 8 | Int(b[offset + 6]) << 16 | Int(b[offset + 7]) << 24
            if id == "fmt " {
                guard offset + 10 <= b.count else { return nil }
                return .init(rawValue: UInt16(b[offset + 8]) | UInt16(b[offset + 9]) << 8)
            }
            offset += 8 + size + (size & 1)
        }
        return nil
    }

    /// For WAVE and AIFF: the byte offset (from the start of `b`) where the sample data chunk
    /// says it ends, when that chunk header lies inside `b`. A file shorter than this is truncated.
    static func declaredDataEnd(_ b: [UInt8], family: MediaFamily) -> Int64? {
        func le(_ i: Int, _ n: Int) -> Int64 { (0..<n).reduce(Int64(0)) { $0 | Int64(b[i + $1]) << (8 * $1) } }
        func be(_ i: Int, _ n: Int) -> Int64 { (0..<n).reduce(Int64(0)) { $0 << 8 | Int64(b[i + $1]) } }
        var offset = 12
        var ds64DataSize: Int64?
        switch family {
        case .wav:
            for _ in 0..<64 {
                guard offset + 8 <= b.count else { return nil }
                let id = String(decoding: b[offset..<offset + 4], as: UTF8.self)
                let size = le(offset + 4, 4)
                if id == "ds64", offset + 24 <= b.count { ds64DataSize = le(offset + 16, 8) }
                if id == "data" {
                    let payload = size == 0xFFFF_FFFF ? (ds64DataSize ?? size) : size
                    return Int64(offset) + 8 + payload
                }
                offset += 8 + Int(size) + Int(size & 1)
            }
        case .aiff:
            for _ in 0..<64 {
                guard offset + 8 <= b.count else { return nil }
                let id = String(decoding: b[offset..<offset + 4], as: UTF8.self)
                let size = be(offset + 4, 4)
                if id == "SSND" { return Int64(offset) + 8 + size }
                offset += 8 + Int(size) + Int(size & 1)
            }
        default:
            return nil
        }
        return nil
    }

    /// Names common non-audio formats so that a 415 says what was uploaded.
    static func describeUnknown(_ b: [UInt8]) -> String {
        func starts(_ bytes: [UInt8]) -> Bool { b.starts(with: bytes) }
        func startsASCII(_ s: String) -> Bool { b.starts(with: Array(s.utf8)) }
        let known: [(Bool, String)] = [
            (starts([0x89, 0x50, 0x4E, 0x47]), "PNG image"),
            (starts([0xFF, 0xD8, 0xFF]), "JPEG image"),
            (startsASCII("GIF8"), "GIF image"),
            (startsASCII("%PDF"), "PDF document"),
            (starts([0x50, 0x4B, 0x03, 0x04]), "ZIP archive"),
            (starts([0x1F, 0x8B]), "gzip data"),
            (starts([0x1A, 0x45, 0xDF, 0xA3]), "Matroska/WebM"),
            (starts([0x30, 0x26, 0xB2, 0x75]), "ASF/WMA"),
            (startsASCII("MThd"), "MIDI"),
            (startsASCII("caff"), "Core Audio Format (CAF)"),
            (startsASCII("wvpk"), "WavPack"),
            (startsASCII("MAC "), "Monkey's Audio (APE)"),
            (startsASCII("TTA1"), "TTA"),
            (startsASCII(".snd"), "Sun/NeXT audio"),
            (starts([0x7F, 0x45, 0x4C, 0x46]), "ELF executable"),
            (startsASCII("<?xml") || startsASCII("<!DOCTYPE") || startsASCII("<html") || startsASCII("<HTML"), "XML/HTML text"),
            (startsASCII("{") || startsASCII("["), "JSON or other text"),
            (startsASCII("#EXTM3U"), "M3U playlist"),
        ]
        if let name = known.first(where: { $0.0 })?.1 { return name }
        if b.prefix(64).allSatisfy({ $0 == 0 }) { return "data starting with zero bytes" }
        return "unrecognised data starting with \(hex(b.prefix(8)))"
    }

    static func hex(_ bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef")
        return bytes.map { String([digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]]) }.joined(separator: " ")
    }

    static func printable(_ s: String) -> String {
        String(s.unicodeScalars.filter { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init))
    }
}

/// A minimal read-only file used for sniffing (pread; no Foundation in the hot path).
struct ReadOnlyFile: ~Copyable {
    let descriptor: Int32
    let size: Int64

    init(path: String) throws(MediaError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw MediaError(code == ENOENT ? .fileNotFound : .ioError,
                             "cannot open \(path): \(String(cString: strerror(code)))")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw MediaError(.ioError, "\(path) is not a regular file")
        }
        descriptor = fd
        size = Int64(info.st_size)
    }

    deinit { close(descriptor) }

    func read(at offset: Int64, count: Int) -> [UInt8] {
        guard offset < size, count > 0 else { return [] }
        let wanted = Int(min(Int64(count), size - offset))
        return [UInt8](unsafeUninitializedCapacity: wanted) { buffer, initialized in
            var done = 0
            while done < wanted {
                let n = pread(descriptor, buffer.baseAddress! + done, wanted - done, off_t(offset) + off_t(done))
                if n <= 0 { break }
                done += n
            }
            initialized = done
        }
    }
}
