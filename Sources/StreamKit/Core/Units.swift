/// A bit rate in bits per second (value of BANDWIDTH, AVERAGE-BANDWIDTH, DASH `@bandwidth`).
public struct Bitrate: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Bits per second.
    public var bitsPerSecond: Int64

    /// Creates a bit rate of `bitsPerSecond` bits per second.
    public init(bitsPerSecond: Int64) {
        self.bitsPerSecond = bitsPerSecond
    }

    /// `kilobits * 1000` bits per second.
    public static func kilobitsPerSecond(_ kilobits: Int64) -> Bitrate {
        Bitrate(bitsPerSecond: kilobits * 1000)
    }

    /// The bit rate of `byteCount` bytes delivered in `duration`, rounded up to a whole bit per second.
    /// Returns `nil` when `duration` is not positive.
    public init?(byteCount: Int64, duration: MediaTime) {
        guard duration.value > 0 else { return nil }
        let numerator = Int128(byteCount) * 8 * Int128(duration.timescale)
        let denominator = Int128(duration.value)
        let q = numerator / denominator
        self.bitsPerSecond = Int64(numerator % denominator == 0 ? q : q + 1)
    }

    /// Bits per second as a `Double` (for ABR arithmetic and reports).
    public var doubleValue: Double { Double(bitsPerSecond) }

    /// Orders by bits per second.
    public static func < (lhs: Bitrate, rhs: Bitrate) -> Bool { lhs.bitsPerSecond < rhs.bitsPerSecond }

    /// For example `"128000 b/s"`.
    public var description: String { "\(bitsPerSecond) b/s" }
}

/// An instant in UTC, in milliseconds since 1970-01-01T00:00:00Z (leap seconds ignored, as in POSIX time).
///
/// StreamKit never reads a clock: every "now" is a `Timestamp` parameter.
/// Renders as xs:dateTime / ISO 8601 (EXT-X-PROGRAM-DATE-TIME, DASH `@availabilityStartTime`)
/// and as an HTTP-date (RFC 9110 §5.6.7).
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch.
    public var millisecondsSince1970: Int64

    /// Creates an instant from milliseconds since the Unix epoch.
    public init(millisecondsSince1970: Int64) {
        self.millisecondsSince1970 = millisecondsSince1970
    }

    /// Creates an instant from whole seconds since the Unix epoch.
    public init(secondsSince1970: Int64) {
        self.millisecondsSince1970 = secondsSince1970 * 1000
    }

    /// Whole seconds since the Unix epoch (rounded towards −∞).
    public var secondsSince1970: Int64 {
        let (q, r) = millisecondsSince1970.quotientAndRemainder(dividingBy: 1000)
        return r < 0 ? q - 1 : q
    }

    /// The instant `time` later (time is rounded to whole milliseconds).
    public func adding(_ time: MediaTime) -> Timestamp {
        Timestamp(millisecondsSince1970: millisecondsSince1970 + time.rounded(toUnitsPerSecond: 1000))
    }

    /// Earlier instants first.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool {
        lhs.millisecondsSince1970 < rhs.millisecondsSince1970
    }

    /// The ISO 8601 rendering (see ``iso8601``).
    public var description: String { iso8601 }

    /// ISO 8601 / xs:dateTime in UTC, with milliseconds only when non-zero:
    /// `2026-11-25T12:00:00Z` or `2026-11-25T12:00:00.250Z`.
    public var iso8601: String { iso8601(alwaysMilliseconds: false) }

    /// ISO 8601 in UTC with milliseconds always written (`2026-11-25T12:00:00.000Z`): fixed-width,
    /// as log lines want it.
    public var iso8601WithMilliseconds: String { iso8601(alwaysMilliseconds: true) }

    private func iso8601(alwaysMilliseconds: Bool) -> String {
        let civil = CivilTime(self)
        var text = "\(Self.pad(civil.year, 4))-\(Self.pad(civil.month, 2))-\(Self.pad(civil.day, 2))"
        text += "T\(Self.pad(civil.hour, 2)):\(Self.pad(civil.minute, 2)):\(Self.pad(civil.second, 2))"
        if alwaysMilliseconds || civil.millisecond != 0 { text += "." + Self.pad(civil.millisecond, 3) }
        return text + "Z"
    }

    /// Parses an ISO 8601 date-time with a time zone, as used by EXT-X-PROGRAM-DATE-TIME and xs:dateTime:
    /// `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)`. Fractions beyond milliseconds are truncated.
    public init?(iso8601 text: Substring) {
        let chars = Array(text.utf8)
        guard chars.count >= 20 else { return nil }
        func number(_ start: Int, _ count: Int) -> Int? {
            guard start + count <= chars.count else { return nil }
            var v = 0
            for c in chars[start..<(start + count)] {
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = number(0, 4), chars[4] == 45, let month = number(5, 2), chars[7] == 45,
              let day = number(8, 2), chars[10] == 84 || chars[10] == 116,
              let hour = number(11, 2), chars[13] == 58, let minute = number(14, 2), chars[16] == 58,
              let second = number(17, 2)
        else { return nil }
        var index = 19
        var millis = 0
        if index < chars.count, chars[index] == 46 {
            index += 1
            var digits = 0
            let startDigits = index
            while index < chars.count, chars[index] >= 48, chars[index] <= 57 {
                if digits < 3 { millis = millis * 10 + Int(chars[index] - 48) }
                digits += 1
                index += 1
            }
            guard index > startDigits else { return nil }
            for _ in min(digits, 3)..<3 { millis *= 10 }
        }
        guard index < chars.count else { return nil }
        var offsetMinutes = 0
        if chars[index] == 90 || chars[index] == 122 {
            index += 1
        } else if chars[index] == 43 || chars[index] == 45 {
            let sign = chars[index] == 45 ? -1 : 1
            guard let oh = number(index + 1, 2), index + 3 < chars.count, chars[index + 3] == 58,
                  let om = number(index + 4, 2), oh < 24, om < 60
            else { return nil }
            offsetMinutes = sign * (oh * 60 + om)
            index += 6
        } else {
            return nil
        }
        guard index == chars.count else { return nil }
        guard let civil = CivilTime(year: year, month: month, day: day, hour: hour, minute: minute,
                                    second: second, millisecond: millis)
        else { return nil }
        self = Timestamp(millisecondsSince1970: civil.millisecondsSince1970 - Int64(offsetMinutes) * 60_000)
    }

    static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}

/// Proleptic Gregorian calendar fields in UTC (Howard Hinnant's days-from-civil algorithms).
struct CivilTime {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int
    /// 0 = Sunday.
    var weekday: Int

    init(_ timestamp: Timestamp) {
        let ms = timestamp.millisecondsSince1970
        var days = ms / 86_400_000
        var msOfDay = ms % 86_400_000
        if msOfDay < 0 { msOfDay += 86_400_000; days -= 1 }
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        year = Int(yoe + era * 400 + (m <= 2 ? 1 : 0))
        month = Int(m)
        day = Int(d)
        hour = Int(msOfDay / 3_600_000)
        minute = Int(msOfDay / 60_000 % 60)
        second = Int(msOfDay / 1000 % 60)
        millisecond = Int(msOfDay % 1000)
        let wd = (days % 7 + 11) % 7 // 1970-01-01 was a Thursday (4)
        weekday = Int(wd)
    }

    init?(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int) {
        guard (1...12).contains(month), day >= 1, day <= CivilTime.daysIn(month: month, year: year),
              (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second),
              (0...999).contains(millisecond)
        else { return nil }
        self.year = year; self.month = month; self.day = day
        self.hour = hour; self.minute = minute; self.second = min(second, 59); self.millisecond = millisecond
        self.weekday = 0
        self.weekday = CivilTime(Timestamp(millisecondsSince1970: millisecondsSince1970)).weekday
    }

    var millisecondsSince1970: Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 24 + Int64(hour)) * 60 + Int64(minute)) * 60_000 + Int64(second) * 1000 + Int64(millisecond)
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
