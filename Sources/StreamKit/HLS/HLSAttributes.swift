/// Builds an attribute-list (RFC 8216 §4.2) in the order attributes are added.
struct AttributeWriter {
    private(set) var parts: [String] = []

    mutating func quoted(_ name: String, _ value: String?) {
        guard let value else { return }
        parts.append("\(name)=\"\(HLSText.quotable(value))\"")
    }

    mutating func quotedURI(_ name: String, _ value: String?) {
        guard let value else { return }
        parts.append("\(name)=\"\(HLSText.uri(value))\"")
    }

    mutating func enumerated(_ name: String, _ value: String?) {
        guard let value else { return }
        parts.append("\(name)=\(value)")
    }

    mutating func integer(_ name: String, _ value: Int64?) {
        guard let value else { return }
        parts.append("\(name)=\(value)")
    }

    mutating func integer(_ name: String, _ value: Int?) {
        integer(name, value.map(Int64.init))
    }

    mutating func decimal(_ name: String, _ value: MediaTime?) {
        guard let value else { return }
        parts.append("\(name)=\(value.compactDecimalString(maximumFractionDigits: 5))")
    }

    mutating func yes(_ name: String, _ flag: Bool) {
        if flag { parts.append("\(name)=YES") }
    }

    mutating func yesNo(_ name: String, _ flag: Bool) {
        parts.append("\(name)=\(flag ? "YES" : "NO")")
    }

    var text: String { parts.joined(separator: ",") }
}

/// Escaping rules for text written into a playlist.
enum HLSText {
    /// A quoted-string may not contain `"`, CR or LF; those are replaced by `'` and spaces.
    static func quotable(_ value: String) -> String {
        guard value.contains(where: { $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else { return value }
        var out = ""
        for ch in value {
            switch ch {
            case "\"": out.append("'")
            case "\r", "\n", "\r\n": out.append(" ")
            default: out.append(ch)
            }
        }
        return out
    }

    /// URIs percent-encode `"`, CR, LF, and a leading `#` (which would make a URI line a comment).
    static func uri(_ value: String) -> String {
        guard value.contains(where: { $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) || value.hasPrefix("#")
        else { return value }
        var out = ""
        for (index, ch) in value.enumerated() {
            switch ch {
            case "\"": out += "%22"
            case "\r": out += "%0D"
            case "\n": out += "%0A"
            case "\r\n": out += "%0D%0A"
            case "#" where index == 0: out += "%23"
            default: out.append(ch)
            }
        }
        return out
    }

    /// An EXTINF title cannot contain a line break.
    static func title(_ value: String) -> String {
        String(value.map { ($0 == "\r" || $0 == "\n" || $0 == "\r\n") ? " " : $0 })
    }
}

/// One parsed attribute value.
enum AttributeValue: Equatable {
    case quoted(String)
    case unquoted(Substring)
}

/// A parsed attribute-list with consumption tracking, so unknown attributes can be rejected.
struct AttributeReader {
    let tag: String
    let line: Int
    private var values: [(name: Substring, value: AttributeValue)]
    private var used: Set<Int> = []

    init(tag: String, text: Substring, line: Int) throws(HLSParseError) {
        self.tag = tag
        self.line = line
        self.values = try Self.split(text, tag: tag, line: line)
    }

    private static func split(_ text: Substring, tag: String, line: Int) throws(HLSParseError) -> [(name: Substring, value: AttributeValue)] {
        var result: [(name: Substring, value: AttributeValue)] = []
        var index = text.startIndex
        func fail(_ reason: String) -> HLSParseError {
            HLSParseError(line: line, kind: .malformedAttributeList(tag: tag, reason: reason))
        }
        guard !text.isEmpty else { throw fail("empty attribute list") }
        while true {
            let nameStart = index
            while index < text.endIndex, text[index] != "=" {
                let c = text[index]
                guard ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "-" else {
                    throw fail("invalid character \(String(reflecting: String(c))) in attribute name")
                }
                index = text.index(after: index)
            }
            let name = text[nameStart..<index]
            guard !name.isEmpty else { throw fail("empty attribute name") }
            guard index < text.endIndex else { throw fail("attribute \(name) has no value") }
            index = text.index(after: index) // '='
            let value: AttributeValue
            if index < text.endIndex, text[index] == "\"" {
                let contentStart = text.index(after: index)
                guard let close = text[contentStart...].firstIndex(of: "\"") else {
                    throw fail("unterminated quoted string for \(name)")
                }
                value = .quoted(String(text[contentStart..<close]))
                index = text.index(after: close)
                guard index == text.endIndex || text[index] == "," else {
                    throw fail("unexpected text after quoted value of \(name)")
                }
            } else {
                let valueStart = index
                while index < text.endIndex, text[index] != "," {
                    let c = text[index]
                    guard c != "\"", !c.isWhitespace else {
                        throw fail("invalid character in value of \(name)")
                    }
                    index = text.index(after: index)
                }
                let raw = text[valueStart..<index]
                guard !raw.isEmpty else { throw fail("attribute \(name) has an empty value") }
                value = .unquoted(raw)
            }
            guard !result.contains(where: { $0.name == name }) else {
                throw HLSParseError(line: line, kind: .duplicateAttribute(tag: tag, name: String(name)))
            }
            result.append((name, value))
            if index == text.endIndex { break }
            index = text.index(after: index) // ','
            guard index < text.endIndex else { throw fail("trailing comma") }
        }
        return result
    }

    private mutating func raw(_ name: String) -> AttributeValue? {
        guard let position = values.firstIndex(where: { $0.name == name }) else { return nil }
        used.insert(position)
        return values[position].value
    }

    private func invalid(_ name: String, _ value: AttributeValue) -> HLSParseError {
        let text: String
        switch value {
        case .quoted(let s): text = "\"\(s)\""
        case .unquoted(let s): text = String(s)
        }
        return HLSParseError(line: line, kind: .invalidAttributeValue(tag: tag, name: name, value: text))
    }

    private func missing(_ name: String) -> HLSParseError {
        HLSParseError(line: line, kind: .missingAttribute(tag: tag, name: name))
    }

    mutating func quoted(_ name: String) throws(HLSParseError) -> String? {
        guard let value = raw(name) else { return nil }
        guard case .quoted(let text) = value else { throw invalid(name, value) }
        return text
    }

    mutating func requiredQuoted(_ name: String) throws(HLSParseError) -> String {
        guard let value = try quoted(name) else { throw missing(name) }
        return value
    }

    mutating func enumerated(_ name: String) throws(HLSParseError) -> Substring? {
        guard let value = raw(name) else { return nil }
        guard case .unquoted(let text) = value else { throw invalid(name, value) }
        return text
    }

    mutating func enumerated<E: RawRepresentable<String>>(_ name: String, as type: E.Type) throws(HLSParseError) -> E? {
        guard let text = try enumerated(name) else { return nil }
        guard let value = E(rawValue: String(text)) else { throw invalid(name, .unquoted(text)) }
        return value
    }

    mutating func integer(_ name: String) throws(HLSParseError) -> Int64? {
        guard let text = try enumerated(name) else { return nil }
        guard text.count <= 20, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(text) else {
            throw invalid(name, .unquoted(text))
        }
        return value
    }

    mutating func requiredInteger(_ name: String) throws(HLSParseError) -> Int64 {
        guard let value = try integer(name) else { throw missing(name) }
        return value
    }

    mutating func decimal(_ name: String) throws(HLSParseError) -> MediaTime? {
        guard let text = try enumerated(name) else { return nil }
        guard !text.hasPrefix("-"), let value = MediaTime(decimalSeconds: text) else {
            throw invalid(name, .unquoted(text))
        }
        return value
    }

    mutating func requiredDecimal(_ name: String) throws(HLSParseError) -> MediaTime {
        guard let value = try decimal(name) else { throw missing(name) }
        return value
    }

    /// `YES` / `NO`; absent means `false`.
    mutating func flag(_ name: String) throws(HLSParseError) -> Bool {
        guard let text = try enumerated(name) else { return false }
        switch text {
        case "YES": return true
        case "NO": return false
        default: throw invalid(name, .unquoted(text))
        }
    }

    mutating func byteRange(_ name: String) throws(HLSParseError) -> HLSByteRange? {
        guard let text = try quoted(name) else { return nil }
        guard let range = HLSByteRange(parsing: text[...]) else { throw invalid(name, .quoted(text)) }
        return range
    }

    mutating func hexBytes(_ name: String, count: Int) throws(HLSParseError) -> [UInt8]? {
        guard let text = try enumerated(name) else { return nil }
        guard text.hasPrefix("0x") || text.hasPrefix("0X") else { throw invalid(name, .unquoted(text)) }
        let digits = Array(text.dropFirst(2).utf8)
        guard digits.count == count * 2 else { throw invalid(name, .unquoted(text)) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        for pair in stride(from: 0, to: digits.count, by: 2) {
            guard let high = Self.hexValue(digits[pair]), let low = Self.hexValue(digits[pair + 1]) else {
                throw invalid(name, .unquoted(text))
            }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 65...70: c - 55
        case 97...102: c - 87
        default: nil
        }
    }

    /// Fails on attributes no accessor asked for (strict mode).
    func finish(rejectUnknown: Bool) throws(HLSParseError) {
        guard rejectUnknown else { return }
        for (position, entry) in values.enumerated() where !used.contains(position) {
            throw HLSParseError(line: line, kind: .unknownAttribute(tag: tag, name: String(entry.name)))
        }
    }
}

extension HLSByteRange {
    /// Parses `<length>[@<offset>]`.
    init?(parsing text: Substring) {
        let pieces = text.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
        func number(_ s: Substring) -> Int64? {
            guard !s.isEmpty, s.count <= 19, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int64(s)
        }
        guard let length = number(pieces[0]) else { return nil }
        if pieces.count == 2 {
            guard let offset = number(pieces[1]) else { return nil }
            self.init(length: length, offset: offset)
        } else {
            self.init(length: length)
        }
    }
}
