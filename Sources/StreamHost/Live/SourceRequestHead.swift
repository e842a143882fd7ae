import Foundation

/// The head of a live source's request, read before any HTTP codec sees the connection: an
/// Icecast source sends `PUT /live/{mount}` with no `Content-Length` (the body lasts as long as
/// the show) or the legacy `SOURCE /{mount} ICE/1.0`, neither of which an HTTP/1.1 request
/// parser accepts as a streaming body.
struct SourceRequestHead: Sendable, Hashable {
    enum Method: String, Sendable {
        case put = "PUT"
        case source = "SOURCE"
    }

    var method: Method
    /// The request target's path, without its query.
    var path: String
    /// `HTTP/1.1`, `HTTP/1.0` or `ICE/1.0`.
    var version: String
    /// Header fields, names lowercased, in order.
    var fields: [(name: String, value: String)]

    static func == (a: Self, b: Self) -> Bool {
        a.method == b.method && a.path == b.path && a.version == b.version
            && a.fields.map(\.name) == b.fields.map(\.name) && a.fields.map(\.value) == b.fields.map(\.value)
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(method.rawValue)
        hasher.combine(path)
    }

    func field(_ name: String) -> String? {
        fields.first { $0.name == name }?.value
    }

    /// The mount the path names: `/live/{mount}` (either method) or `/{mount}` (`SOURCE`).
    var mountName: String? {
        let trimmed = path.hasPrefix("/live/") ? String(path.dropFirst(6)) : (method == .source ? String(path.dropFirst()) : "")
        return LiveMountConfiguration.isValidName(trimmed) ? trimmed : nil
    }

    /// Whether the first bytes of a connection are (or may still become) a source's request line.
    enum Recognition {
        case source
        case notSource
        case undecided
    }

    static let prefixes: [[UInt8]] = [Array("SOURCE /".utf8), Array("PUT /live/".utf8)]

    static func recognise(_ bytes: some Collection<UInt8>) -> Recognition {
        var undecided = false
        for prefix in prefixes {
            if bytes.count >= prefix.count {
                if bytes.prefix(prefix.count).elementsEqual(prefix) { return .source }
            } else if prefix.starts(with: bytes) {
                undecided = true
            }
        }
        return undecided ? .undecided : .notSource
    }

    /// Most bytes a head may take.
    static let maximumLength = 16 << 10

    enum ParseError: Error, Equatable {
        case malformed(String)
    }

    /// Parses a head (the bytes before the blank line, without it).
    static func parse(_ bytes: some Collection<UInt8>) throws(ParseError) -> SourceRequestHead {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { throw .malformed("empty request") }
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard requestLine.count == 3, let method = Method(rawValue: requestLine[0]) else {
            throw .malformed("the request line must be `PUT /live/{mount} HTTP/1.1` or `SOURCE /{mount} ICE/1.0`")
        }
        guard ["HTTP/1.1", "HTTP/1.0", "ICE/1.0"].contains(requestLine[2]) else { throw .malformed("unknown protocol version \(requestLine[2].prefix(16))") }
        let target = requestLine[1]
        guard target.hasPrefix("/") else { throw .malformed("the request target must be a path") }
        let path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        var fields: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else { throw .malformed("a header line has no name") }
            let name = line[..<colon].lowercased()
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else { throw .malformed("a header name is not a token") }
            fields.append((name, line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        return SourceRequestHead(method: method, path: path, version: requestLine[2], fields: fields)
    }

    /// Credentials of the `Authorization` field.
    enum Credentials: Equatable {
        case basic(user: String, password: String)
        case bearer(String)
    }

    var credentials: Credentials? {
        guard let field = field("authorization") else { return nil }
        let parts = field.split(separator: " ", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return nil }
        switch parts[0].lowercased() {
        case "basic":
            guard let data = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces)),
                  let decoded = String(data: data, encoding: .utf8), let colon = decoded.firstIndex(of: ":") else { return nil }
            return .basic(user: String(decoded[..<colon]), password: String(decoded[decoded.index(after: colon)...]))
        case "bearer":
            return .bearer(parts[1].trimmingCharacters(in: .whitespaces))
        default:
            return nil
        }
    }
}
