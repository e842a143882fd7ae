/// HTTP-date rendering and parsing (RFC 9110 §5.6.7).
public enum HTTPDate {
    static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let longWeekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The IMF-fixdate form, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (sub-second part dropped).
    public static func render(_ timestamp: Timestamp) -> String {
        let civil = CivilTime(Timestamp(secondsSince1970: timestamp.secondsSince1970))
        return "\(weekdays[civil.weekday]), \(Timestamp.pad(civil.day, 2)) \(months[civil.month - 1]) \(Timestamp.pad(civil.year, 4)) "
            + "\(Timestamp.pad(civil.hour, 2)):\(Timestamp.pad(civil.minute, 2)):\(Timestamp.pad(civil.second, 2)) GMT"
    }

    /// Parses IMF-fixdate, the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
    /// (`Sun Nov  6 08:49:37 1994`). A two-digit RFC 850 year more than 50 years in the future is taken
    /// as the past century (§5.6.7), relative to 2000 here since no clock is read: 00–69 → 20xx, 70–99 → 19xx.
    public static func parse(_ text: String) -> Timestamp? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        func month(_ s: Substring) -> Int? { months.firstIndex(of: String(s)).map { $0 + 1 } }
        func time(_ s: Substring) -> (Int, Int, Int)? {
            let t = s.split(separator: ":", omittingEmptySubsequences: false)
            guard t.count == 3, t.allSatisfy({ $0.count == 2 }), let h = Int(t[0]), let m = Int(t[1]), let sec = Int(t[2]) else { return nil }
            return (h, m, sec)
        }
        func make(_ y: Int, _ mo: Int, _ d: Int, _ t: (Int, Int, Int)) -> Timestamp? {
            guard let civil = CivilTime(year: y, month: mo, day: d, hour: t.0, minute: t.1, second: t.2, millisecond: 0) else { return nil }
            return Timestamp(millisecondsSince1970: civil.millisecondsSince1970)
        }
        if parts.count == 6, parts[0].hasSuffix(","), weekdays.contains(String(parts[0].dropLast())), parts[5] == "GMT",
           parts[1].count == 2, let day = Int(parts[1]), let mo = month(parts[2]), parts[3].count == 4,
           let year = Int(parts[3]), let t = time(parts[4]) {
            return make(year, mo, day, t)
        }
        if parts.count == 4, parts[0].hasSuffix(","), longWeekdays.contains(String(parts[0].dropLast())), parts[3] == "GMT",
           let t = time(parts[2]) {
            let date = parts[1].split(separator: "-", omittingEmptySubsequences: false)
            guard date.count == 3, date[0].count == 2, date[2].count == 2, let day = Int(date[0]), let mo = month(date[1]),
                  let yy = Int(date[2]) else { return nil }
            return make(yy < 70 ? 2000 + yy : 1900 + yy, mo, day, t)
        }
        if parts.count == 5, weekdays.contains(String(parts[0])), let mo = month(parts[1]), let day = Int(parts[2]),
           parts[2].count <= 2, let t = time(parts[3]), parts[4].count == 4, let year = Int(parts[4]) {
            return make(year, mo, day, t)
        }
        return nil
    }
}
