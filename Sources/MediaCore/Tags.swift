/// Descriptive tags of a track, sanitised for display and storage.
///
/// Every field is valid UTF-8 (bytes that are not valid UTF-8 are read as ISO-8859-1, as
/// ID3v1 and many old taggers wrote them), has control and bidirectional-override
/// characters removed, tabs and line breaks folded into spaces, surrounding white space
/// trimmed, and is cut at a character boundary to at most ``Limits`` UTF-8 bytes.
/// An empty result is `nil`.
public struct Tags: Sendable, Hashable, Codable {
    public var title: String?
    public var artist: String?
    public var album: String?
    public var albumArtist: String?
    /// Track number within the disc (`TRCK`, `TRACKNUMBER`, `trkn`).
    public var trackNumber: Int?
    /// Total tracks, when the tag says (`3/12` → 12).
    public var trackTotal: Int?
    public var discNumber: Int?
    public var discTotal: Int?
    /// Release date as tagged (free form, usually `YYYY` or `YYYY-MM-DD`).
    public var date: String?
    public var genre: String?
    /// International Standard Recording Code, normalised to 12 characters without hyphens;
    /// a value that is not a well-formed ISRC is dropped.
    public var isrc: String?
    public var comment: String?

    public init() {}

    /// Length caps in UTF-8 bytes.
    public enum Limits {
        /// Title, artist, album, album artist, genre.
        public static let name = 512
        /// Date.
        public static let date = 64
        /// Comment.
        public static let comment = 2048
    }

    /// True when no field is set.
    public var isEmpty: Bool { self == Tags() }
}

/// Cleans raw tag bytes into the text rules documented on ``Tags``.
public enum TagSanitizer {
    /// Decodes `bytes` as UTF-8, falling back to ISO-8859-1, then cleans and caps it.
    public static func clean(_ bytes: some Collection<UInt8>, maxBytes: Int) -> String? {
        let text: String
        if let utf8 = String(validating: bytes, as: UTF8.self) {
            text = utf8
        } else {
            text = String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        }
        return clean(text, maxBytes: maxBytes)
    }

    /// Cleans a string and caps it at `maxBytes` UTF-8 bytes on a character boundary.
    public static func clean(_ text: String, maxBytes: Int) -> String? {
        var scalars = String.UnicodeScalarView()
        var lastWasSpace = true
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x09, 0x0A, 0x0D, 0x20:
                if !lastWasSpace { scalars.append(" ") }
                lastWasSpace = true
                continue
            case 0x00...0x1F, 0x7F...0x9F,  // C0 and C1 controls
                 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069,  // bidi marks and overrides
                 0xFEFF, 0xFFFE, 0xFFFF:  // BOM, non-characters
                continue
            default:
                scalars.append(scalar)
                lastWasSpace = false
            }
        }
        var result = String(scalars)
        while result.last == " " { result.removeLast() }
        if result.utf8.count > maxBytes {
            var capped = ""
            var used = 0
            for character in result {
                let size = character.utf8.count
                if used + size > maxBytes { break }
                capped.append(character)
                used += size
            }
            result = capped
            while result.last == " " { result.removeLast() }
        }
        return result.isEmpty ? nil : result
    }

    /// Parses `"3"`, `"3/12"` or `"03 of 12"`-like values into (number, total).
    static func numberAndTotal(_ text: String?) -> (Int?, Int?) {
        guard let text else { return (nil, nil) }
        let parts = text.split(whereSeparator: { !$0.isNumber }).prefix(2)
        func value(_ s: Substring?) -> Int? {
            guard let s, s.count <= 6, let n = Int(s), n > 0 else { return nil }
            return n
        }
        return (value(parts.first), parts.count > 1 ? value(parts.dropFirst().first) : nil)
    }

    /// Normalises an ISRC (`CC-XXX-YY-NNNNN` with or without hyphens); nil if malformed.
    static func isrc(_ text: String?) -> String? {
        guard let text else { return nil }
        let compact = text.uppercased().filter { $0 != "-" && $0 != " " }
        let chars = Array(compact.unicodeScalars)
        guard chars.count == 12 else { return nil }
        let letters = chars[0..<2].allSatisfy { ("A"..."Z").contains($0) }
        let registrant = chars[2..<5].allSatisfy { ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
        let digits = chars[5..<12].allSatisfy { ("0"..."9").contains($0) }
        return letters && registrant && digits ? compact : nil
    }
}
