/// An exact rational point or span of media time: `value / timescale` seconds.
///
/// StreamKit never stores media time as `Double`. Durations of CMAF segments are
/// kept in the track's own timescale (for example 48 000 for 48 kHz audio), so
/// sums, ceilings (value of EXT-X-TARGETDURATION) and DASH `SegmentTimeline`
/// entries are exact. Decimal renderings (EXTINF, xs:duration) are derived from
/// the rational at the last moment, with round-half-up.
///
/// Equality and hashing are *by value*: `MediaTime(value: 6000, timescale: 1000)`
/// equals `MediaTime(value: 288_000, timescale: 48_000)`.
public struct MediaTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The numerator, in units of `1 / timescale` seconds.
    public var value: Int64
    /// Units per second; always greater than zero.
    public var timescale: Int32

    /// Creates a time of `value / timescale` seconds.
    /// - Precondition: `timescale > 0`.
    public init(value: Int64, timescale: Int32) {
        precondition(timescale > 0, "MediaTime timescale must be positive")
        self.value = value
        self.timescale = timescale
    }

    /// A whole number of seconds.
    public static func seconds(_ seconds: Int64) -> MediaTime {
        MediaTime(value: seconds, timescale: 1)
    }

    /// A whole number of milliseconds.
    public static func milliseconds(_ milliseconds: Int64) -> MediaTime {
        MediaTime(value: milliseconds, timescale: 1000)
    }

    /// Zero seconds.
    public static let zero = MediaTime(value: 0, timescale: 1)

    /// The smallest whole number of seconds that is greater than or equal to this time
    /// (for example the value of EXT-X-TARGETDURATION for the longest segment).
    public var ceilingSeconds: Int64 {
        let ts = Int64(timescale)
        let q = value / ts
        let r = value % ts
        return r > 0 ? q + 1 : q
    }

    /// This time rounded half-up to the nearest whole number of seconds.
    public var roundedSeconds: Int64 {
        rounded(toUnitsPerSecond: 1)
    }

    /// The time expressed in `unitsPerSecond`, rounded half-up (towards +∞ on ties).
    public func rounded(toUnitsPerSecond unitsPerSecond: Int64) -> Int64 {
        // floor((value * units * 2 + timescale) / (2 * timescale)), computed in 128 bits.
        let ts = Int64(timescale)
        let numerator = Int128(value) * Int128(unitsPerSecond) * 2 + Int128(ts)
        let denominator = Int128(ts) * 2
        return Int64(Self.floorDivide(numerator, denominator))
    }

    /// Converts to another timescale, rounding half-up.
    public func converted(to newTimescale: Int32) -> MediaTime {
        MediaTime(value: rounded(toUnitsPerSecond: Int64(newTimescale)), timescale: newTimescale)
    }

    /// The time in seconds as a `Double`, for reporting only (never for arithmetic that must be exact).
    public var seconds: Double { Double(value) / Double(timescale) }

    /// A decimal rendering with exactly `fractionDigits` digits after the point
    /// (round half-up), e.g. `"6.016"` for EXTINF.
    public func decimalString(fractionDigits: Int) -> String {
        precondition((0...9).contains(fractionDigits))
        var scale: Int64 = 1
        for _ in 0..<fractionDigits { scale *= 10 }
        let scaled = rounded(toUnitsPerSecond: scale)
        let negative = scaled < 0
        let magnitude = scaled.magnitude
        let whole = magnitude / UInt64(scale)
        let fraction = magnitude % UInt64(scale)
        var text = negative ? "-" : ""
        text += String(whole)
        if fractionDigits > 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: fractionDigits - digits.count) + digits
        }
        return text
    }

    /// A decimal rendering with at most `maximumFractionDigits` digits, without trailing zeros
    /// (e.g. `"1"`, `"1.5"`, `"0.333"`).
    public func compactDecimalString(maximumFractionDigits: Int = 3) -> String {
        var text = decimalString(fractionDigits: maximumFractionDigits)
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text == "-0" ? "0" : text
    }

    /// Parses a decimal number of seconds such as `"6"`, `"6.016"` or `"-0.5"` exactly.
    ///
    /// Up to 9 fractional digits are kept exactly; further digits are rounded half-up.
    /// Returns `nil` for anything that is not `-?[0-9]+(\.[0-9]+)?`.
    public init?(decimalSeconds text: Substring) {
        var rest = text[...]
        var negative = false
        if rest.first == "-" { negative = true; rest = rest.dropFirst() }
        let parts = rest.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholePart = parts.first, !wholePart.isEmpty,
              wholePart.allSatisfy({ $0.isASCII && $0.isNumber }),
              wholePart.count <= 12
        else { return nil }
        var fractionPart = parts.count == 2 ? parts[1] : ""
        if parts.count == 2 {
            guard !fractionPart.isEmpty, fractionPart.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        }
        var roundUp = false
        if fractionPart.count > 9 {
            roundUp = fractionPart[fractionPart.index(fractionPart.startIndex, offsetBy: 9)] >= "5"
            fractionPart = fractionPart.prefix(9)
        }
        var timescale: Int64 = 1
        for _ in 0..<fractionPart.count { timescale *= 10 }
        guard let whole = Int64(wholePart) else { return nil }
        let fraction = fractionPart.isEmpty ? 0 : Int64(fractionPart)!
        var value = whole * timescale + fraction + (roundUp ? 1 : 0)
        if negative { value = -value }
        self.init(value: value, timescale: Int32(timescale))
    }

    /// Parses a decimal number of seconds; see ``init(decimalSeconds:)-(Substring)``.
    public init?(decimalSeconds text: String) {
        self.init(decimalSeconds: text[...])
    }

    /// Equality by value (cross-multiplication, exact).
    public static func == (lhs: MediaTime, rhs: MediaTime) -> Bool {
        Int128(lhs.value) * Int128(rhs.timescale) == Int128(rhs.value) * Int128(lhs.timescale)
    }

    /// Ordering by value (cross-multiplication, exact).
    public static func < (lhs: MediaTime, rhs: MediaTime) -> Bool {
        Int128(lhs.value) * Int128(rhs.timescale) < Int128(rhs.value) * Int128(lhs.timescale)
    }

    /// Hashes the reduced fraction, consistently with by-value equality.
    public func hash(into hasher: inout Hasher) {
        let divisor = Self.gcd(value.magnitude, UInt64(timescale))
        hasher.combine(value / Int64(divisor))
        hasher.combine(Int64(timescale) / Int64(divisor))
    }

    /// Sum of two times, exact: the result uses the larger timescale when one divides the other,
    /// otherwise the least common multiple of the two timescales.
    /// - Precondition: the common timescale fits in `Int32`.
    public static func + (lhs: MediaTime, rhs: MediaTime) -> MediaTime {
        if lhs.timescale == rhs.timescale {
            return MediaTime(value: lhs.value + rhs.value, timescale: lhs.timescale)
        }
        let common = lcm(Int64(lhs.timescale), Int64(rhs.timescale))
        precondition(common <= Int64(Int32.max), "MediaTime: common timescale overflows Int32")
        return MediaTime(
            value: lhs.value * (common / Int64(lhs.timescale)) + rhs.value * (common / Int64(rhs.timescale)),
            timescale: Int32(common)
        )
    }

    /// Difference of two times, exact (see ``+(_:_:)``).
    public static func - (lhs: MediaTime, rhs: MediaTime) -> MediaTime {
        lhs + MediaTime(value: -rhs.value, timescale: rhs.timescale)
    }

    /// `value/timescale` (for example `"288768/48000"`).
    public var description: String { "\(value)/\(timescale)" }

    static func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a == 0 ? 1 : a
    }

    static func lcm(_ a: Int64, _ b: Int64) -> Int64 {
        a / Int64(gcd(UInt64(a), UInt64(b))) * b
    }

    static func floorDivide(_ a: Int128, _ b: Int128) -> Int128 {
        let q = a / b
        return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q
    }
}
