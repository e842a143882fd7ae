/// The delivery directives a client puts in the query of an LL-HLS media playlist request
/// (RFC 8216bis §6.2.5): `_HLS_msn` and `_HLS_part` ask to block until that segment or part
/// exists (a blocking playlist reload), `_HLS_skip` asks for a delta update.
///
/// Parsed from the raw query values, strictly: the numbers are decimal, without sign, of at most
/// 9 digits for a sequence number and 2 for a part index (the same bounds as
/// ``LiveObjectName``), so that arithmetic on them cannot overflow.
public struct PlaylistDirectives: Sendable, Hashable {
    /// A delta update's kind (`_HLS_skip`).
    public enum Skip: String, Sendable, Hashable {
        /// `YES`: skip the older media segments.
        case segments = "YES"
        /// `v2`: skip the older media segments and date ranges.
        case segmentsAndDateRanges = "v2"
    }

    /// `_HLS_msn`: the media sequence number to wait for.
    public var mediaSequence: Int?
    /// `_HLS_part`: the part of ``mediaSequence`` to wait for.
    public var part: Int?
    /// `_HLS_skip`.
    public var skip: Skip?

    /// Directives given directly.
    public init(mediaSequence: Int? = nil, part: Int? = nil, skip: Skip? = nil) {
        self.mediaSequence = mediaSequence
        self.part = part
        self.skip = skip
    }

    /// Parses the query values (nil when the parameter is absent).
    ///
    /// - Throws: ``PlaylistDirectiveError`` naming the parameter, for a value that is not a
    ///   number in range, `_HLS_part` without `_HLS_msn` (§6.2.5.2), or an unknown skip kind.
    public init(msn: String?, part: String?, skip: String?) throws(PlaylistDirectiveError) {
        func number(_ text: String?, _ name: String, maxDigits: Int) throws(PlaylistDirectiveError) -> Int? {
            guard let text else { return nil }
            let utf8 = text.utf8
            guard (1...maxDigits).contains(utf8.count), utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                  let value = Int(text) else {
                throw PlaylistDirectiveError(parameter: name, reason: "must be a decimal number of at most \(maxDigits) digits")
            }
            return value
        }
        mediaSequence = try number(msn, "_HLS_msn", maxDigits: 9)
        self.part = try number(part, "_HLS_part", maxDigits: 2)
        if self.part != nil, mediaSequence == nil {
            throw PlaylistDirectiveError(parameter: "_HLS_part", reason: "needs _HLS_msn")
        }
        if let skip {
            guard let kind = Skip(rawValue: skip) else { throw PlaylistDirectiveError(parameter: "_HLS_skip", reason: "must be YES or v2") }
            self.skip = kind
        }
    }
}

/// A delivery directive that cannot be honoured: the request is malformed (HTTP 400).
public struct PlaylistDirectiveError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The query parameter at fault (`_HLS_msn`, `_HLS_part`, `_HLS_skip`).
    public var parameter: String
    /// What is wrong with it.
    public var reason: String

    /// An error naming `parameter`.
    public init(parameter: String, reason: String) {
        self.parameter = parameter
        self.reason = reason
    }

    public var description: String { "\(parameter) \(reason)" }
}
