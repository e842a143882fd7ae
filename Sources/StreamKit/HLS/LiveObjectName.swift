/// The objects of one rung of a live presentation, by the names its LL-HLS media playlist and
/// its live MPD give them (relative to the rung's directory): `index.m3u8`, `init.mp4`,
/// `seg-{msn}.m4s` and `part-{msn}.{index}.m4s`.
///
/// Parsing is by hand, not with a `Regex`: a host reads one of these names on every live
/// request, and a regex literal is parsed again each time it is evaluated.
public enum LiveObjectName: Sendable, Hashable {
    /// The media playlist, `index.m3u8`.
    case playlist
    /// The initialization segment, `init.mp4`.
    case initialization
    /// A whole segment, `seg-{sequence}.m4s`.
    case segment(sequence: Int)
    /// A partial segment, `part-{sequence}.{index}.m4s`: part `index` of segment `sequence`.
    case part(sequence: Int, index: Int)

    /// Sequence numbers have at most 9 digits, part indexes at most 2; nothing else (signs,
    /// leading `+`, spaces, other suffixes) is a name.
    public init?(_ name: some StringProtocol) {
        let bytes = Array(name.utf8)
        switch bytes {
        case Array("index.m3u8".utf8): self = .playlist
        case Array("init.mp4".utf8): self = .initialization
        default:
            let suffix = Array(".m4s".utf8)
            guard bytes.count > suffix.count, bytes.suffix(suffix.count).elementsEqual(suffix) else { return nil }
            let stem = bytes.dropLast(suffix.count)
            if stem.starts(with: "seg-".utf8) {
                guard let sequence = Self.number(stem.dropFirst(4), maxDigits: 9) else { return nil }
                self = .segment(sequence: sequence)
            } else if stem.starts(with: "part-".utf8) {
                let rest = stem.dropFirst(5)
                guard let dot = rest.firstIndex(of: UInt8(ascii: ".")),
                      let sequence = Self.number(rest[..<dot], maxDigits: 9),
                      let index = Self.number(rest[(dot + 1)...], maxDigits: 2) else { return nil }
                self = .part(sequence: sequence, index: index)
            } else {
                return nil
            }
        }
    }

    /// The object's name.
    public var fileName: String {
        switch self {
        case .playlist: "index.m3u8"
        case .initialization: "init.mp4"
        case .segment(let sequence): "seg-\(sequence).m4s"
        case .part(let sequence, let index): "part-\(sequence).\(index).m4s"
        }
    }

    /// Part `absolute` of a stream cut into segments of `partsPerSegment` parts.
    public static func part(absolute: Int, partsPerSegment: Int) -> LiveObjectName {
        .part(sequence: absolute / partsPerSegment, index: absolute % partsPerSegment)
    }

    private static func number(_ digits: ArraySlice<UInt8>, maxDigits: Int) -> Int? {
        guard (1...maxDigits).contains(digits.count) else { return nil }
        var value = 0
        for digit in digits {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit) else { return nil }
            value = value * 10 + Int(digit - UInt8(ascii: "0"))
        }
        return value
    }
}
