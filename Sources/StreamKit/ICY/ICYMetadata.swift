/// Where ICY metadata goes in a listener's stream (the SHOUTCAST/Icecast convention): a client
/// that sends `Icy-MetaData: 1` gets `icy-metaint: N`, and after every N bytes of audio one
/// metadata block: a length byte L, then L × 16 bytes holding `StreamTitle='…';` padded with
/// zeros. A block with L = 0 means "no change", so the title is sent only when it changes.
///
/// The interleaver plans the pieces of one stream: the audio stays in the caller's buffers
/// (``Piece/audio(_:)`` gives a range of the bytes passed in, to slice without copying).
public struct ICYMetadataInterleaver: Sendable, Hashable {
    /// Audio bytes between two metadata blocks.
    public let interval: Int
    private var untilMetadata: Int
    private var sentTitle: String?

    /// The longest metadata a block can carry: 255 × 16 bytes.
    public static let maximumBlock = 255 * 16

    public init(interval: Int) {
        precondition(interval > 0, "the ICY metadata interval must be positive")
        self.interval = interval
        untilMetadata = interval
    }

    /// One piece of the listener's stream, in order.
    public enum Piece: Sendable, Hashable {
        /// These bytes of the audio passed in.
        case audio(Range<Int>)
        /// A metadata block, whole.
        case metadata([UInt8])
    }

    /// The pieces that carry `count` bytes of audio, with a metadata block (holding `title`
    /// if it changed since the last block) wherever the interval falls.
    public mutating func interleave(count: Int, title: String?) -> [Piece] {
        var pieces: [Piece] = []
        var offset = 0
        while offset < count {
            let run = min(untilMetadata, count - offset)
            pieces.append(.audio(offset..<(offset + run)))
            offset += run
            untilMetadata -= run
            if untilMetadata == 0 {
                pieces.append(.metadata(block(title: title)))
                untilMetadata = interval
            }
        }
        return pieces
    }

    private mutating func block(title: String?) -> [UInt8] {
        guard let title, title != sentTitle else { return [0] }
        sentTitle = title
        return Self.block(title: title)
    }

    /// The block for `title`: `StreamTitle='…';`, cut to fit 4,080 bytes at a character boundary.
    public static func block(title: String) -> [UInt8] {
        // A quote would end the value early for most clients: Icecast sends it as is, players
        // then cut the title; a typographic apostrophe keeps it whole.
        let cleaned = String(title.map { $0 == "'" ? "’" : ($0.isNewline ? " " : $0) })
        var text = Array("StreamTitle='".utf8)
        let suffix = Array("';".utf8)
        var value = Array(cleaned.utf8)
        let room = maximumBlock - text.count - suffix.count
        if value.count > room {
            var cut = room
            // Not in the middle of a UTF-8 sequence.
            while cut > 0, value[cut] & 0xC0 == 0x80 { cut -= 1 }
            value = Array(value[..<cut])
        }
        text += value + suffix
        let blocks = (text.count + 15) / 16
        return [UInt8(blocks)] + text + [UInt8](repeating: 0, count: blocks * 16 - text.count)
    }

    /// Reads the title out of a metadata block's content (the bytes after the length byte), as a
    /// listener would: the value of `StreamTitle='…';`.
    public static func title(inBlock content: some Collection<UInt8>) -> String? {
        let text = String(decoding: content.prefix { $0 != 0 }, as: UTF8.self)
        guard let start = text.firstRange(of: "StreamTitle='") else { return nil }
        let rest = text[start.upperBound...]
        guard let end = rest.firstRange(of: "';") else { return nil }
        return String(rest[..<end.lowerBound])
    }
}
