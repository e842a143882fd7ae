/// Adding a query parameter (for example a signed-URL token) to every URI a playlist references.
public enum QueryRewriter {
    /// Which URIs are rewritten.
    public enum Scope: Sendable, Hashable {
        /// Only relative references (no scheme): the token never leaks to another origin. Default.
        case relativeOnly
        /// Every URI except those with a scheme other than http/https (`skd:`, `data:` …).
        case relativeAndHTTP
    }

    /// Returns `uri` with `name=value` in its query: an existing parameter of that name is replaced,
    /// other parameters and a `#fragment` are preserved. Name and value are percent-encoded
    /// (everything but RFC 3986 unreserved characters).
    public static func adding(name: String, value: String, to uri: String) -> String {
        var base = Substring(uri)
        var fragment: Substring = ""
        if let hash = base.firstIndex(of: "#") {
            fragment = base[hash...]
            base = base[..<hash]
        }
        let item = percentEncode(name) + "=" + percentEncode(value)
        guard let question = base.firstIndex(of: "?") else {
            return base + "?" + item + fragment
        }
        let path = base[..<question]
        let query = base[base.index(after: question)...]
        let encodedName = percentEncode(name)
        var items = query.isEmpty ? [] : query.split(separator: "&", omittingEmptySubsequences: false).map(String.init)
        items.removeAll { $0 == encodedName || $0.hasPrefix(encodedName + "=") }
        items.append(item)
        return path + "?" + items.joined(separator: "&") + fragment
    }

    static func percentEncode(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in text.utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 3986 unreserved characters (`A–Z a–z 0–9 - . _ ~`): a value made only of them is
    /// added to a query unchanged.
    public static func isUnreserved(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "~")
    }

    static func inScope(_ uri: String, _ scope: Scope) -> Bool {
        // A scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) followed by ":" before any "/", "?" or "#".
        var scheme = ""
        for ch in uri {
            if ch == ":" {
                guard !scheme.isEmpty else { return true }
                switch scope {
                case .relativeOnly: return false
                case .relativeAndHTTP: return ["http", "https"].contains(scheme.lowercased())
                }
            }
            if ch == "/" || ch == "?" || ch == "#" { return true }
            guard ch.isASCII, ch.isLetter || (!scheme.isEmpty && (ch.isNumber || ch == "+" || ch == "-" || ch == ".")) else {
                return true
            }
            scheme.append(ch)
        }
        return true
    }

    static func rewrite(_ uri: String, _ name: String, _ value: String, _ scope: Scope) -> String {
        inScope(uri, scope) ? adding(name: name, value: value, to: uri) : uri
    }
}

extension MasterPlaylist {
    /// The playlist with `name=value` added to every variant URI and EXT-X-MEDIA URI in `scope`
    /// (EXT-X-SESSION-KEY URIs are left alone: keys are authorised separately).
    public func addingQueryItem(name: String, value: String, scope: QueryRewriter.Scope = .relativeOnly) -> MasterPlaylist {
        var copy = self
        for index in copy.variants.indices {
            copy.variants[index].uri = QueryRewriter.rewrite(copy.variants[index].uri, name, value, scope)
        }
        for index in copy.renditions.indices {
            copy.renditions[index].uri = copy.renditions[index].uri.map { QueryRewriter.rewrite($0, name, value, scope) }
        }
        return copy
    }
}

extension MediaPlaylist {
    /// The playlist with `name=value` added to every segment, EXT-X-MAP, EXT-X-PART, EXT-X-PRELOAD-HINT
    /// and EXT-X-RENDITION-REPORT URI in `scope` (EXT-X-KEY URIs are left alone).
    public func addingQueryItem(name: String, value: String, scope: QueryRewriter.Scope = .relativeOnly) -> MediaPlaylist {
        var copy = self
        func rewrite(_ uri: String) -> String { QueryRewriter.rewrite(uri, name, value, scope) }
        func rewrite(_ parts: [PartialSegment]) -> [PartialSegment] {
            parts.map { part in
                var part = part
                part.uri = rewrite(part.uri)
                return part
            }
        }
        for index in copy.segments.indices {
            copy.segments[index].uri = rewrite(copy.segments[index].uri)
            if let map = copy.segments[index].map {
                copy.segments[index].map = MediaInitialization(uri: rewrite(map.uri), byteRange: map.byteRange)
            }
            copy.segments[index].parts = rewrite(copy.segments[index].parts)
        }
        copy.trailingParts = rewrite(copy.trailingParts)
        for index in copy.preloadHints.indices { copy.preloadHints[index].uri = rewrite(copy.preloadHints[index].uri) }
        for index in copy.renditionReports.indices {
            copy.renditionReports[index].uri = rewrite(copy.renditionReports[index].uri)
        }
        return copy
    }
}

extension Playlist {
    /// The playlist with `name=value` added to every URI it references in `scope`
    /// (see ``MasterPlaylist/addingQueryItem(name:value:scope:)`` and ``MediaPlaylist/addingQueryItem(name:value:scope:)``).
    public func addingQueryItem(name: String, value: String, scope: QueryRewriter.Scope = .relativeOnly) -> Playlist {
        switch self {
        case .master(let playlist): .master(playlist.addingQueryItem(name: name, value: value, scope: scope))
        case .media(let playlist): .media(playlist.addingQueryItem(name: name, value: value, scope: scope))
        }
    }
}
