/// One range-spec of a `Range: bytes=…` header (RFC 9110 §14.1.1).
public enum RangeSpec: Sendable, Hashable {
    /// `first-last` (int-range with a last-pos), both inclusive.
    case bounded(first: Int64, last: Int64)
    /// `first-` (open-ended int-range): from `first` to the end.
    case from(first: Int64)
    /// `-length` (suffix-range): the last `length` bytes.
    case suffix(length: Int64)

    /// The range-spec text (`0-499`, `500-`, `-500`).
    public var rendered: String {
        switch self {
        case .bounded(let first, let last): "\(first)-\(last)"
        case .from(let first): "\(first)-"
        case .suffix(let length): "-\(length)"
        }
    }

    /// The bytes this spec selects in a representation of `length` bytes, or `nil` when the
    /// spec is unsatisfiable against that length (RFC 9110 §14.1.1).
    public func resolved(against length: Int64) -> ClosedRange<Int64>? {
        switch self {
        case .bounded(let first, let last):
            guard first < length else { return nil }
            return first...min(last, length - 1)
        case .from(let first):
            guard first < length else { return nil }
            return first...(length - 1)
        case .suffix(let suffixLength):
            guard suffixLength > 0, length > 0 else { return nil }
            return max(0, length - suffixLength)...(length - 1)
        }
    }
}

/// A parsed `Range` header field whose range unit is `bytes`.
public struct RangeHeader: Sendable, Hashable {
    /// The range-specs in the order the client sent them (never empty).
    public var specs: [RangeSpec]

    /// Creates a header from specs.
    /// - Precondition: `specs` is not empty.
    public init(specs: [RangeSpec]) {
        precondition(!specs.isEmpty, "a Range header has at least one range-spec")
        self.specs = specs
    }

    /// Parses a `Range` field value such as `bytes=0-499, -500`.
    ///
    /// Returns `nil` when the unit is not `bytes` (compared case-insensitively) or the ranges-specifier
    /// is invalid (for example `last < first`, no digits, junk); RFC 9110 §14.2 lets the server then
    /// ignore the header and send 200. Empty list elements (`bytes=0-1,,2-3`) are accepted and ignored
    /// (§5.6.1), optional whitespace around commas is allowed, and positions too large for `Int64` are
    /// clamped to `Int64.max` (they lie beyond any representation).
    public init?(parsing value: String) {
        let utf8 = Array(value.utf8)
        let unit = Array("bytes=".utf8)
        guard utf8.count > unit.count else { return nil }
        for (index, expected) in unit.enumerated() {
            let c = utf8[index]
            let lowered = (c >= 65 && c <= 90) ? c + 32 : c
            guard lowered == expected else { return nil }
        }
        var specs: [RangeSpec] = []
        var element: [UInt8] = []
        func flush() -> Bool {
            // Trim OWS (SP / HTAB).
            var slice = element[...]
            while let f = slice.first, f == 32 || f == 9 { slice = slice.dropFirst() }
            while let l = slice.last, l == 32 || l == 9 { slice = slice.dropLast() }
            element.removeAll(keepingCapacity: true)
            if slice.isEmpty { return true }
            guard let spec = Self.parseSpec(slice) else { return false }
            specs.append(spec)
            return true
        }
        for c in utf8[unit.count...] {
            if c == 44 {
                guard flush() else { return nil }
            } else {
                element.append(c)
            }
        }
        guard flush(), !specs.isEmpty else { return nil }
        self.specs = specs
    }

    private static func parseSpec(_ bytes: ArraySlice<UInt8>) -> RangeSpec? {
        guard let dash = bytes.firstIndex(of: 45) else { return nil }
        let firstPart = bytes[bytes.startIndex..<dash]
        let lastPart = bytes[(dash + 1)...]
        if firstPart.isEmpty {
            guard let length = number(lastPart) else { return nil }
            return .suffix(length: length)
        }
        guard let first = number(firstPart) else { return nil }
        if lastPart.isEmpty { return .from(first: first) }
        guard let last = number(lastPart), last >= first else { return nil }
        return .bounded(first: first, last: last)
    }

    private static func number(_ digits: ArraySlice<UInt8>) -> Int64? {
        guard !digits.isEmpty else { return nil }
        var value: Int64 = 0
        for c in digits {
            guard c >= 48 && c <= 57 else { return nil }
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (plus, o2) = times.addingReportingOverflow(Int64(c - 48))
            value = (o1 || o2) ? Int64.max : plus
            if value == Int64.max { continue }
        }
        return value
    }

    /// The header field value, e.g. `bytes=0-499,-500`.
    public var rendered: String {
        "bytes=" + specs.map(\.rendered).joined(separator: ",")
    }
}

/// How a server answers a request's Range header, given the representation's length.
public enum RangeResolution: Sendable, Hashable {
    /// Send the whole representation with 200 (no Range, a Range that is ignored, or If-Range failed).
    case full
    /// Send 206 with these ranges (one range: a single part; several: multipart/byteranges).
    case partial([ClosedRange<Int64>])
    /// Send 416 with `Content-Range: bytes */<length>`: no range-spec is satisfiable.
    case unsatisfiable
    /// Send 416: the request asked for more ranges than the policy allows.
    case tooManyRanges
}

/// The server's range-handling policy (RFC 9110 §14.2 lets a server coalesce, limit or ignore ranges).
public struct ByteRangePolicy: Sendable, Hashable {
    /// What to do when a request has more than ``maximumRangeCount`` range-specs.
    public enum ExcessPolicy: Sendable, Hashable {
        /// Answer 416 (``RangeResolution/tooManyRanges``): cheapest against denial-of-service.
        case reject
        /// Ignore the Range header and send the full representation with 200.
        case ignoreRangeHeader
    }

    /// The largest number of range-specs accepted in one request (counted as sent, before coalescing).
    public var maximumRangeCount: Int
    /// What to do above the cap.
    public var excess: ExcessPolicy
    /// Merge overlapping and adjacent ranges (and those separated by at most ``coalescingGap`` bytes),
    /// returning them in ascending order. When `false`, satisfiable ranges are returned in request order.
    public var coalesce: Bool
    /// The largest gap, in bytes, that coalescing bridges (0 = only overlapping or adjacent ranges).
    public var coalescingGap: Int64

    /// Creates a policy. The default accepts up to 16 ranges, rejects more with 416, and coalesces.
    public init(maximumRangeCount: Int = 16, excess: ExcessPolicy = .reject, coalesce: Bool = true, coalescingGap: Int64 = 0) {
        self.maximumRangeCount = maximumRangeCount
        self.excess = excess
        self.coalesce = coalesce
        self.coalescingGap = coalescingGap
    }
}

extension RangeHeader {
    /// Resolves the header against a representation of `length` bytes.
    ///
    /// A zero-length representation is served in full (200): RFC 9110 calls a non-zero suffix-range
    /// satisfiable there, but no `Content-Range` can describe an empty range.
    public func resolve(length: Int64, policy: ByteRangePolicy = ByteRangePolicy()) -> RangeResolution {
        if specs.count > policy.maximumRangeCount {
            return policy.excess == .reject ? .tooManyRanges : .full
        }
        if length == 0 {
            return specs.contains { if case .suffix(let n) = $0 { n > 0 } else { false } } ? .full : .unsatisfiable
        }
        let ranges = specs.compactMap { $0.resolved(against: length) }
        guard !ranges.isEmpty else { return .unsatisfiable }
        return .partial(policy.coalesce ? Self.coalesce(ranges, gap: policy.coalescingGap) : ranges)
    }

    /// Sorts ranges and merges those that overlap, touch, or are at most `gap` bytes apart.
    public static func coalesce(_ ranges: [ClosedRange<Int64>], gap: Int64 = 0) -> [ClosedRange<Int64>] {
        let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
        var merged: [ClosedRange<Int64>] = []
        for range in sorted {
            if let last = merged.last, range.lowerBound <= last.upperBound.addingReportingOverflow(1 + gap).partialValue {
                merged[merged.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                merged.append(range)
            }
        }
        return merged
    }
}

/// An HTTP entity tag (RFC 9110 §8.8.3).
public struct EntityTag: Sendable, Hashable, CustomStringConvertible {
    /// The opaque-tag without its quotes.
    public var opaqueTag: String
    /// Whether the tag is weak (`W/` prefix).
    public var isWeak: Bool

    /// Creates an entity tag. The opaque tag must not contain `"`.
    public init(opaqueTag: String, isWeak: Bool = false) {
        self.opaqueTag = opaqueTag
        self.isWeak = isWeak
    }

    /// Parses `"xyz"` or `W/"xyz"` (etagc characters only: `!`, `#`–`~`, and obs-text).
    public init?(parsing text: Substring) {
        var rest = text
        var weak = false
        if rest.hasPrefix("W/") { weak = true; rest = rest.dropFirst(2) }
        guard rest.count >= 2, rest.first == "\"", rest.last == "\"" else { return nil }
        let inner = rest.dropFirst().dropLast()
        guard inner.unicodeScalars.allSatisfy({ $0 == "!" || ($0.value >= 0x23 && $0.value <= 0x7E) || $0.value >= 0x80 }) else {
            return nil
        }
        self.init(opaqueTag: String(inner), isWeak: weak)
    }

    /// The header form, `"xyz"` or `W/"xyz"`.
    public var description: String { (isWeak ? "W/" : "") + "\"\(opaqueTag)\"" }

    /// Strong comparison: both tags strong and their opaque tags identical.
    public func stronglyMatches(_ other: EntityTag) -> Bool {
        !isWeak && !other.isWeak && opaqueTag == other.opaqueTag
    }
}

/// The validator of an `If-Range` header field (RFC 9110 §13.1.5).
public enum IfRangeValidator: Sendable, Hashable {
    /// An entity tag.
    case entityTag(EntityTag)
    /// An HTTP-date.
    case date(Timestamp)

    /// Parses an If-Range value: an entity-tag or any of the three HTTP-date formats.
    public init?(parsing value: String) {
        let trimmed = value.trimmingOWS()
        if trimmed.hasPrefix("\"") || trimmed.hasPrefix("W/") {
            guard let tag = EntityTag(parsing: trimmed) else { return nil }
            self = .entityTag(tag)
        } else {
            guard let date = HTTPDate.parse(String(trimmed)) else { return nil }
            self = .date(date)
        }
    }

    /// Whether the Range header may be honoured (`true`), or the full representation must be sent (`false`).
    ///
    /// - An entity-tag matches only by strong comparison with the current strong ETag (a weak tag never matches).
    /// - A date matches only if it equals Last-Modified exactly and Last-Modified is a strong validator:
    ///   at least one second before the response's Date (RFC 9110 §8.8.2.2).
    public func permitsRange(currentETag: EntityTag?, lastModified: Timestamp?, responseDate: Timestamp) -> Bool {
        switch self {
        case .entityTag(let tag):
            guard let currentETag else { return false }
            return tag.stronglyMatches(currentETag)
        case .date(let date):
            guard let lastModified else { return false }
            let lastModifiedSeconds = lastModified.secondsSince1970
            return date.secondsSince1970 == lastModifiedSeconds
                && lastModifiedSeconds + 1 <= responseDate.secondsSince1970
        }
    }
}

/// The complete decision for a GET with optional `Range` and `If-Range` fields.
public enum RangeRequestEvaluator {
    /// Decides between 200, 206 and 416 (RFC 9110 §13.2.2 step 5 and §14).
    ///
    /// - Parameters:
    ///   - range: the `Range` field value, if present.
    ///   - ifRange: the `If-Range` field value, if present; an unparseable one makes the Range ignored.
    ///   - length: the representation's length in bytes.
    ///   - etag: the representation's current entity tag.
    ///   - lastModified: the representation's Last-Modified.
    ///   - responseDate: the Date the response will carry (passed in: no clock is read).
    ///   - policy: range limits and coalescing.
    public static func evaluate(range: String?, ifRange: String?, length: Int64, etag: EntityTag?,
                                lastModified: Timestamp?, responseDate: Timestamp,
                                policy: ByteRangePolicy = ByteRangePolicy()) -> RangeResolution {
        guard let range, let header = RangeHeader(parsing: range) else { return .full }
        if let ifRange {
            guard let validator = IfRangeValidator(parsing: ifRange),
                  validator.permitsRange(currentETag: etag, lastModified: lastModified, responseDate: responseDate)
            else { return .full }
        }
        return header.resolve(length: length, policy: policy)
    }
}

/// `Content-Range` field values (RFC 9110 §14.4).
public enum ContentRange {
    /// `bytes <first>-<last>/<complete-length>` for a 206 part.
    public static func render(_ range: ClosedRange<Int64>, completeLength: Int64) -> String {
        "bytes \(range.lowerBound)-\(range.upperBound)/\(completeLength)"
    }

    /// `bytes */<complete-length>` for a 416 response.
    public static func unsatisfied(completeLength: Int64) -> String {
        "bytes */\(completeLength)"
    }
}

/// Framing of a `multipart/byteranges` body (RFC 9110 §14.6): the caller writes
/// `header(forPart:)`, then the part's bytes, for each range, then ``closingDelimiter``.
public struct MultipartByteRanges: Sendable, Hashable {
    /// The boundary (1–70 characters from RFC 2046's bcharsnospace set).
    public let boundary: String
    /// The `Content-Type` of the representation, repeated in each part.
    public let partContentType: String
    /// The representation's complete length.
    public let completeLength: Int64
    /// The ranges, in the order they are sent.
    public let ranges: [ClosedRange<Int64>]

    /// Creates the framing; returns `nil` for an invalid boundary or an empty range list.
    public init?(boundary: String, partContentType: String, completeLength: Int64, ranges: [ClosedRange<Int64>]) {
        guard (1...70).contains(boundary.utf8.count), !ranges.isEmpty,
              boundary.unicodeScalars.allSatisfy({ Self.boundaryCharacters.contains($0) })
        else { return nil }
        self.boundary = boundary
        self.partContentType = partContentType
        self.completeLength = completeLength
        self.ranges = ranges
    }

    static let boundaryCharacters: Set<Unicode.Scalar> = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_-./:=?".unicodeScalars)

    /// A random boundary of 32 alphanumeric characters from the given generator (no hidden randomness).
    public static func makeBoundary(using generator: inout some RandomNumberGenerator) -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// The response's `Content-Type`: `multipart/byteranges; boundary=<boundary>`.
    public var contentType: String { "multipart/byteranges; boundary=\(boundary)" }

    /// The delimiter and headers that precede part `index` (CRLF line endings).
    public func header(forPart index: Int) -> String {
        (index == 0 ? "" : "\r\n") + "--\(boundary)\r\nContent-Type: \(partContentType)\r\n"
            + "Content-Range: \(ContentRange.render(ranges[index], completeLength: completeLength))\r\n\r\n"
    }

    /// The final delimiter after the last part.
    public var closingDelimiter: String { "\r\n--\(boundary)--\r\n" }

    /// The exact `Content-Length` of the whole multipart body.
    public var contentLength: Int64 {
        var total = Int64(closingDelimiter.utf8.count)
        for index in ranges.indices {
            total += Int64(header(forPart: index).utf8.count) + (ranges[index].upperBound - ranges[index].lowerBound + 1)
        }
        return total
    }
}

extension StringProtocol {
    func trimmingOWS() -> Substring {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return slice
    }
}
