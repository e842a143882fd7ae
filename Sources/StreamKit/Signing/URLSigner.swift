internal import Crypto

/// Why a token could not be issued.
public struct URLSigningError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public enum Kind: Sendable, Hashable {
        /// The key id is not in the key set.
        case unknownKey(String)
        /// A key id with characters outside `[A-Za-z0-9_-]`, or longer than 64.
        case invalidKeyID(String)
        /// A secret shorter than 16 bytes.
        case secretTooShort(keyID: String)
        /// A path prefix that is not absolute, contains `.`/`..` segments, encoded slashes, or controls.
        case invalidPathPrefix(String)
        /// No path prefix given.
        case noPathPrefix
        /// An expiry before the Unix epoch.
        case invalidExpiry
        /// A session label with characters outside `[A-Za-z0-9_-]`, or longer than 64.
        case invalidSession(String)
    }

    /// What is wrong.
    public var kind: Kind

    /// Creates an error.
    public init(_ kind: Kind) { self.kind = kind }

    /// The kind, described.
    public var description: String { "\(kind)" }
}

/// The outcome of ``URLSigner/verify(path:token:now:client:)``.
public enum TokenVerification: Sendable, Hashable {
    /// The token is authentic, unexpired, covers the path and (if bound) the client.
    case valid(keyID: String, expires: Timestamp)
    /// Authentic, but `now` is at or after its expiry.
    case expired
    /// The MAC does not match: the token was altered or forged.
    case badSignature
    /// The token names a key id that is not in the key set (for example a retired key).
    case unknownKey
    /// Authentic, but the requested path is outside every signed prefix (or could not be normalised).
    case pathOutsidePrefix
    /// Authentic, but bound to another client (or bound and no client was given).
    case clientMismatch
    /// Not a well-formed StreamKit token.
    case malformed

    /// Whether access is granted.
    public var isValid: Bool {
        if case .valid = self { true } else { false }
    }
}

/// Why a token grants nothing: ``TokenVerification/malformed``, ``TokenVerification/unknownKey``
/// or ``TokenVerification/badSignature`` (from ``URLSigner/grant(for:)``).
public struct TokenRefusal: Error, Sendable, Hashable {
    public let verification: TokenVerification

    init(_ verification: TokenVerification) { self.verification = verification }
}

/// Issues and verifies signed-URL tokens with HMAC-SHA256.
///
/// ## Token format, version 1
///
/// `v1.<kid>.<expires>.<prefixes>.<binding>.<mac>`, all URL-safe (no escaping needed in a query):
/// - `kid`: the key id (`[A-Za-z0-9_-]{1,64}`),
/// - `expires`: Unix time in whole seconds, decimal; the token is valid while `now < expires`,
/// - `prefixes`: unpadded base64url of the normalised path prefixes joined by LF,
/// - `binding`: `-` when unbound, else unpadded base64url of the first 16 bytes of
///   HMAC-SHA256(secret, `"veza-bind-v1\n" + client`) (the client value itself is not revealed),
/// - `mac`: unpadded base64url of HMAC-SHA256(secret, the token text before the last `.`).
///
/// ## Version 2: a playback session
///
/// `v2.<kid>.<expires>.<prefixes>.<binding>.<session>.<mac>`: as version 1, with `session`, an
/// opaque label (`[A-Za-z0-9_-]{1,64}`) the signer vouches for, such as a playback session id.
/// A server reads it from the verified ``Grant/session`` to tell one listening session's
/// requests from another's. Tokens are issued as version 2 only when a session is given, and
/// both versions verify.
///
/// Verification order: shape → key id → MAC (constant time, via swift-crypto) → expiry → path → client,
/// so nothing but `malformed`/`unknownKey`/`badSignature` is revealed about an unauthentic token.
///
/// Several keys can be valid at once (rotation): sign with the new key while tokens signed with the
/// old one keep verifying until it is removed from the set.
public struct URLSigner: Sendable {
    // Raw secrets: swift-crypto's SymmetricKey is not Sendable, so keys are made per operation.
    private let keys: [String: [UInt8]]
    /// The key id used when ``sign(pathPrefixes:expires:clientBinding:session:keyID:)`` is given none.
    public let activeKeyID: String

    /// Creates a signer.
    /// - Parameters:
    ///   - keys: key id → secret (at least 16 bytes each; 32 random bytes recommended).
    ///   - activeKeyID: the key new tokens are signed with by default.
    public init(keys: [String: [UInt8]], activeKeyID: String) throws(URLSigningError) {
        for (id, secret) in keys {
            guard Self.isValidKeyID(id) else { throw URLSigningError(.invalidKeyID(id)) }
            guard secret.count >= 16 else { throw URLSigningError(.secretTooShort(keyID: id)) }
        }
        guard keys[activeKeyID] != nil else { throw URLSigningError(.unknownKey(activeKeyID)) }
        self.keys = keys
        self.activeKeyID = activeKeyID
    }

    /// The key ids currently accepted.
    public var keyIDs: [String] { keys.keys.sorted() }

    static func isValidKeyID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count) && id.utf8.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95
        }
    }

    /// Issues a token for one path prefix (for example `/hls/{trackId}/`).
    public func sign(pathPrefix: String, expires: Timestamp, clientBinding: String? = nil, session: String? = nil,
                     keyID: String? = nil) throws(URLSigningError) -> String {
        try sign(pathPrefixes: [pathPrefix], expires: expires, clientBinding: clientBinding, session: session, keyID: keyID)
    }

    /// Issues a token valid for every path under any of `pathPrefixes`, until `expires`.
    ///
    /// A prefix ending in `/` covers the paths below it; one that does not covers itself and the
    /// paths below `prefix + "/"` (so `/hls/abc` never covers `/hls/abcd`). Prefixes are normalised
    /// like request paths (percent-decoding); those with `.`/`..` segments, encoded `/` or `\`,
    /// encoded `%` or control characters are refused.
    ///
    /// With a `session` (`[A-Za-z0-9_-]{1,64}`), the token is version 2 and its grant names the
    /// session (``Grant/session``).
    public func sign(pathPrefixes: [String], expires: Timestamp, clientBinding: String? = nil, session: String? = nil,
                     keyID: String? = nil) throws(URLSigningError) -> String {
        guard !pathPrefixes.isEmpty else { throw URLSigningError(.noPathPrefix) }
        let kid = keyID ?? activeKeyID
        guard let secret = keys[kid] else { throw URLSigningError(.unknownKey(kid)) }
        let key = SymmetricKey(data: secret)
        guard expires.millisecondsSince1970 >= 0 else { throw URLSigningError(.invalidExpiry) }
        var normalised: [String] = []
        for prefix in pathPrefixes {
            guard let path = PathNormalizer.normalize(prefix), !path.isEmpty else {
                throw URLSigningError(.invalidPathPrefix(prefix))
            }
            normalised.append(path)
        }
        if let session, !Self.isValidKeyID(session) { throw URLSigningError(.invalidSession(session)) }
        let binding = clientBinding.map { Base64URL.encode(Self.bindingTag(client: $0, key: key)) } ?? "-"
        let fields = "\(kid).\(expires.secondsSince1970).\(Base64URL.encode(Array(normalised.joined(separator: "\n").utf8))).\(binding)"
        let body = session.map { "v2." + fields + "." + $0 } ?? "v1." + fields
        let mac = HMAC<SHA256>.authenticationCode(for: Array(body.utf8), using: key)
        return body + "." + Base64URL.encode(Array(mac))
    }

    /// Checks a token for a request path at `now`, for an optional client identity (the same kind of
    /// value that was bound at signing, e.g. a session id or a client network prefix).
    ///
    /// `path` is the request's path (anything from `?` on is ignored); it is normalised first and
    /// refused (``TokenVerification/pathOutsidePrefix``) if it has `.`/`..` segments, empty segments,
    /// encoded `/`, `\` or `%`, or control characters.
    public func verify(path: String, token: String, now: Timestamp, client: String? = nil) -> TokenVerification {
        let granted: Grant
        switch self.grant(for: token) {
        case .success(let result): granted = result
        case .failure(let refusal): return refusal.verification
        }
        let verdict = granted.verify(path: path, now: now)
        guard verdict.isValid else { return verdict }
        if let bindingTag = granted.bindingTag {
            guard let client, let secret = keys[granted.keyID],
                  Self.constantTimeEquals(Self.bindingTag(client: client, key: SymmetricKey(data: secret)), bindingTag) else {
                return .clientMismatch
            }
        }
        return verdict
    }

    /// What an authentic token grants, once its format and MAC are checked: the prefixes it opens
    /// and until when. A server can keep it for the session and check each further path with
    /// ``Grant/verify(path:now:)`` without computing the MAC again; tokens bound to a client
    /// (``Grant/isClientBound``) still need ``verify(path:token:now:client:)``.
    ///
    /// Fails with ``TokenVerification/malformed``, ``TokenVerification/unknownKey`` or
    /// ``TokenVerification/badSignature`` (as ``TokenRefusal``).
    public func grant(for token: String) -> Result<Grant, TokenRefusal> {
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 6 || parts.count == 7, token.utf8.count <= 8192 else { return .failure(.init(.malformed)) }
        let field = { (index: Int) -> Substring in Substring(parts[index]) }
        guard field(0) == (parts.count == 6 ? "v1" : "v2") else { return .failure(.init(.malformed)) }
        let kid = String(field(1))
        guard Self.isValidKeyID(kid) else { return .failure(.init(.malformed)) }
        let expiresText = field(2)
        guard (1...18).contains(expiresText.utf8.count), expiresText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let expiresSeconds = Int64(expiresText) else { return .failure(.init(.malformed)) }
        guard let prefixBytes = Base64URL.decode(field(3)), !prefixBytes.isEmpty,
              let prefixText = String(validating: prefixBytes, as: UTF8.self) else { return .failure(.init(.malformed)) }
        let bindingField = field(4)
        var bindingTag: [UInt8]?
        if bindingField != "-" {
            guard let tag = Base64URL.decode(bindingField), tag.count == 16 else { return .failure(.init(.malformed)) }
            bindingTag = tag
        }
        var session: String?
        if parts.count == 7 {
            let label = String(field(5))
            guard Self.isValidKeyID(label) else { return .failure(.init(.malformed)) }
            session = label
        }
        let macPart = parts[parts.count - 1]
        guard let mac = Base64URL.decode(Substring(macPart)), mac.count == 32 else { return .failure(.init(.malformed)) }
        guard let secret = keys[kid] else { return .failure(.init(.unknownKey)) }
        let bodyLength = token.utf8.count - macPart.count - 1
        let body = Array(token.utf8.prefix(bodyLength))
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: secret)) else {
            return .failure(.init(.badSignature))
        }
        return .success(Grant(keyID: kid, expires: Timestamp(secondsSince1970: expiresSeconds),
                              prefixes: prefixText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init),
                              bindingTag: bindingTag, session: session))
    }

    /// What an authentic token opens (see ``URLSigner/grant(for:)``).
    public struct Grant: Sendable, Hashable {
        /// The key that signed it.
        public let keyID: String
        /// Valid while `now < expires`.
        public let expires: Timestamp
        /// The normalised path prefixes it opens.
        public let prefixes: [String]
        let bindingTag: [UInt8]?
        /// The session label a version-2 token carries (nil for version 1).
        public let session: String?

        /// Whether the token is bound to a client identity.
        public var isClientBound: Bool { bindingTag != nil }

        /// ``TokenVerification/valid(keyID:expires:)``, ``TokenVerification/expired`` or
        /// ``TokenVerification/pathOutsidePrefix`` for `path` at `now` (the client binding is not
        /// checked here).
        public func verify(path: String, now: Timestamp) -> TokenVerification {
            guard now < expires else { return .expired }
            guard let requestPath = PathNormalizer.normalize(path) else { return .pathOutsidePrefix }
            guard prefixes.contains(where: { PathNormalizer.covers(prefix: $0, path: requestPath) }) else {
                return .pathOutsidePrefix
            }
            return .valid(keyID: keyID, expires: expires)
        }
    }

    static func bindingTag(client: String, key: SymmetricKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(("veza-bind-v1\n" + client).utf8), using: key).prefix(16))
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// Request-path normalisation for signed URLs.
public enum PathNormalizer {
    /// The percent-decoded path, or `nil` when it must be refused.
    ///
    /// Anything from the first `?` or `#` is dropped. The path must start with `/`. Refused:
    /// malformed `%` escapes; encoded `/` (`%2F`), `\` (`%5C`) or `%` (`%25`, to stop double-decoding
    /// tricks); raw `\`; control characters (raw or encoded); invalid UTF-8 after decoding; empty
    /// segments (`//`); and `.` or `..` segments (raw or encoded). A trailing `/` is kept.
    public static func normalize(_ path: String) -> String? {
        // Nearly every path is printable ASCII without escapes: checked in one pass over the
        // bytes, with no copy (this runs for every signed request).
        var path = path
        let plain = path.withUTF8 { plainLength($0) }
        if let plain {
            return plain == path.utf8.count ? path : String(decoding: path.utf8.prefix(plain), as: UTF8.self)
        }
        return normalizeDecoding(path)
    }

    /// The length of `bytes` up to its first `?` or `#` when that part is a path ``normalize(_:)``
    /// returns unchanged: it starts with `/`, its bytes are printable ASCII other than `%` and
    /// `\`, and no segment is empty (but the last), `.` or `..`; `nil` for any other path,
    /// which ``normalizeDecoding(_:)`` decides on.
    static func plainLength(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        guard bytes.first == slash else { return nil }
        func isDotSegment(_ start: Int, _ end: Int) -> Bool {
            let length = end - start
            return (length == 1 && bytes[start] == dot) || (length == 2 && bytes[start] == dot && bytes[start + 1] == dot)
        }
        var segmentStart = 1
        var index = 1
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "?") || c == UInt8(ascii: "#") { break }
            if c == slash {
                guard index > segmentStart, !isDotSegment(segmentStart, index) else { return nil }
                segmentStart = index + 1
            } else if c <= 0x20 || c >= 0x7F || c == UInt8(ascii: "%") || c == UInt8(ascii: "\\") {
                return nil
            }
            index += 1
        }
        return isDotSegment(segmentStart, index) ? nil : index
    }

    /// ``normalize(_:)`` for any path: percent-decoded byte by byte, then checked.
    static func normalizeDecoding(_ path: String) -> String? {
        var bytes = Array(path.utf8)
        if let cut = bytes.firstIndex(where: { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
            bytes.removeSubrange(cut...)
        }
        guard bytes.first == UInt8(ascii: "/") else { return nil }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 65...70: c - 55
            case 97...102: c - 87
            default: nil
            }
        }
        while index < bytes.count {
            let c = bytes[index]
            if c == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, let high = hex(bytes[index + 1]), let low = hex(bytes[index + 2]) else { return nil }
                let value = high << 4 | low
                guard value != UInt8(ascii: "/"), value != UInt8(ascii: "\\"), value != UInt8(ascii: "%"),
                      value >= 0x20, value != 0x7F else { return nil }
                decoded.append(value)
                index += 3
            } else {
                guard c != UInt8(ascii: "\\"), c >= 0x20, c != 0x7F else { return nil }
                decoded.append(c)
                index += 1
            }
        }
        guard let text = String(validating: decoded, as: UTF8.self) else { return nil }
        let segments = text.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for (position, segment) in segments.enumerated() {
            let isLast = position == segments.count - 1
            if segment.isEmpty && !isLast { return nil }
            if segment.elementsEqual(".".utf8) || segment.elementsEqual("..".utf8) { return nil }
        }
        return text
    }

    /// Whether a normalised `prefix` covers a normalised `path`, compared byte by byte
    /// (never with Unicode equivalence) and on segment boundaries.
    public static func covers(prefix: some StringProtocol, path: String) -> Bool {
        let p = Array(prefix.utf8)
        let q = Array(path.utf8)
        guard q.starts(with: p) else { return false }
        if p.last == UInt8(ascii: "/") || q.count == p.count { return true }
        return q[p.count] == UInt8(ascii: "/")
    }
}
