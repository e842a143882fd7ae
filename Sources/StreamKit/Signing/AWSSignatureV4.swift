internal import Crypto

/// Why a request could not be signed.
public struct AWSSigningError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public enum Kind: Sendable, Hashable {
        /// An empty access key id, or one with `/`, whitespace or control characters.
        case invalidAccessKeyID
        /// An empty secret access key.
        case emptySecretAccessKey
        /// A session token with whitespace or control characters.
        case invalidSessionToken
        /// An empty region, or one with `/`, whitespace or control characters.
        case invalidRegion(String)
        /// An empty service name, or one with `/`, whitespace or control characters.
        case invalidService(String)
        /// A method that is not an HTTP token.
        case invalidMethod(String)
        /// A path that does not start with `/` or is not URI-encoded the S3 way (see ``AWSSignatureV4/uriEncode(_:encodeSlash:)``).
        case invalidPath(String)
        /// A header name that is not an HTTP token.
        case invalidHeaderName(String)
        /// A header value with control characters (CR, LF, NUL…); the value itself is not repeated here.
        case invalidHeaderValue(name: String)
        /// A header the signer sets itself (`authorization`, `x-amz-date`, `x-amz-security-token`, and
        /// `x-amz-content-sha256` when ``AWSSignatureV4/sendsContentSHA256`` is on).
        case reservedHeader(String)
        /// No `host` header among the headers to sign.
        case missingHost
        /// An empty host, or one with whitespace or control characters.
        case invalidHost(String)
        /// A query parameter a presigned URL sets itself (`X-Amz-Algorithm`, `X-Amz-Signature`, …).
        case reservedQueryParameter(String)
        /// An empty payload hash, or one with whitespace or control characters.
        case invalidPayloadHash(String)
        /// A presigned-URL lifetime outside 1 s ... 7 days.
        case invalidExpiry(seconds: Int)
        /// An instant before 1970 or after 9999 (not representable as `yyyyMMdd'T'HHmmss'Z'`).
        case dateOutOfRange(Timestamp)
    }

    /// What is wrong.
    public var kind: Kind

    /// Creates an error.
    public init(_ kind: Kind) { self.kind = kind }

    /// The kind, described.
    public var description: String { "\(kind)" }
}

/// AWS credentials: an access key pair and, for temporary credentials, a session token.
///
/// Descriptions, debug descriptions and mirrors redact the secret and the token.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The access key id, for example `AKIAIOSFODNN7EXAMPLE` (not secret: it is sent in every request).
    public var accessKeyID: String
    /// The secret access key (never sent; only used to derive the signing key).
    public var secretAccessKey: String
    /// The session token of temporary (STS) credentials, sent as `x-amz-security-token`.
    public var sessionToken: String?

    /// Creates credentials.
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// The access key id, with the secret and the token redacted.
    public var description: String {
        "AWSCredentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>, sessionToken: \(sessionToken == nil ? "nil" : "<redacted>"))"
    }

    /// Same as ``description``.
    public var debugDescription: String { description }

    /// A mirror with the secret and the token redacted (so `dump` does not print them).
    public var customMirror: Mirror {
        Mirror(self, children: [
            "accessKeyID": accessKeyID,
            "secretAccessKey": "<redacted>",
            "sessionToken": sessionToken == nil ? "nil" : "<redacted>",
        ])
    }
}

/// The outcome of ``AWSSignatureV4/sign(method:path:query:headers:payloadHash:date:)``.
public struct AWSSignedRequest: Sendable {
    /// The headers to add to the request, in this order: `Authorization`, `x-amz-date`, then
    /// `x-amz-content-sha256` (when ``AWSSignatureV4/sendsContentSHA256`` is on) and
    /// `x-amz-security-token` (with temporary credentials).
    public var headers: [(name: String, value: String)]
    /// The `Authorization` header value.
    public var authorization: String
    /// The `x-amz-date` value, `yyyyMMdd'T'HHmmss'Z'`.
    public var amzDate: String
    /// The query string to send (without `?`; empty when there is none): the parameters encoded
    /// and sorted exactly as signed. Send this, not a re-encoding of the parameters.
    public var canonicalQuery: String
    /// The signed header names, lowercase, `;`-separated.
    public var signedHeaders: String
    /// The canonical request (for tests and for diagnosing `SignatureDoesNotMatch`).
    public var canonicalRequest: String
    /// The string to sign.
    public var stringToSign: String
    /// The signature, 64 lowercase hex digits.
    public var signature: String
}

/// The outcome of ``AWSSignatureV4/presignedQuery(method:path:query:host:expires:date:)``.
public struct AWSPresignedQuery: Sendable {
    /// The complete query string (without `?`): the caller's parameters and the `X-Amz-*` ones,
    /// encoded and sorted as signed, then `X-Amz-Signature`. Append it to the path as is.
    public var queryString: String
    /// The same parameters, not encoded, in the same order (for inspection; send ``queryString``).
    public var parameters: [(name: String, value: String)]
    /// The canonical request (for tests and diagnostics).
    public var canonicalRequest: String
    /// The string to sign.
    public var stringToSign: String
    /// The signature, 64 lowercase hex digits (also the `X-Amz-Signature` value).
    public var signature: String
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for Amazon S3 and S3-compatible stores: the
/// `Authorization` header and presigned URLs. Pure: the caller passes the time; nothing is sent.
///
/// ## S3 rules, not the generic ones
///
/// Paths are signed the S3 way: the canonical URI is the request path **as sent**, already
/// URI-encoded once (``uriEncode(_:encodeSlash:)`` with `encodeSlash: false` on the object key),
/// never encoded a second time and never normalised (`.`/`..` and `//` are part of S3 keys). Other
/// AWS services double-encode and normalise paths; this type does not, so use it with those only
/// for the path `/` (as the AWS test suite's `get-vanilla` family does).
///
/// ## Canonicalisation
///
/// - Query: each name and value is URI-encoded (RFC 3986 unreserved characters kept, everything
///   else `%XX` of its UTF-8 bytes, uppercase hex, `/` encoded too); pairs are sorted by encoded name,
///   then encoded value (byte order); a parameter without a value is `name=`.
/// - Headers: names lowercased; values trimmed of leading and trailing spaces and tabs, runs of
///   spaces and tabs inside folded to one space; repeated names joined with `,` in the order given;
///   sorted by name. Every header passed in is signed, so pass only the ones sent unchanged (a proxy
///   that rewrites `user-agent` or `accept-encoding` would break the signature).
/// - Dates: `x-amz-date` is `yyyyMMdd'T'HHmmss'Z'` in UTC (milliseconds dropped) and the scope date
///   `yyyyMMdd`, computed from the ``Timestamp`` with integer arithmetic.
///
/// Signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, yyyyMMdd), region), service), "aws4_request")`.
public struct AWSSignatureV4: Sendable, CustomStringConvertible {
    /// The algorithm name, first word of the `Authorization` header.
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// SHA-256 of the empty payload, in hex: the payload hash of a `GET`, `HEAD` or `DELETE`.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// The payload hash of a request whose body is not signed (S3 only; always used by presigned URLs).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// The longest presigned-URL lifetime S3 accepts: 7 days.
    public static let maximumPresignedExpiry = 604_800

    /// The credentials requests are signed with.
    public let credentials: AWSCredentials
    /// The region of the scope, for example `us-east-1` (`auto` for Cloudflare R2).
    public let region: String
    /// The service of the scope, `s3` for S3 and S3-compatible stores.
    public let service: String
    /// Whether ``sign(method:path:query:headers:payloadHash:date:)`` adds and signs an
    /// `x-amz-content-sha256` header carrying the payload hash. S3 requires it; the generic AWS
    /// services do not use it. Defaults to `service == "s3"`.
    public let sendsContentSHA256: Bool

    /// Creates a signer.
    /// - Parameters:
    ///   - credentials: the access key pair (and session token, for temporary credentials).
    ///   - region: the region (visible ASCII, no `/`).
    ///   - service: the service name (visible ASCII, no `/`), `s3` for S3.
    ///   - sendsContentSHA256: see ``sendsContentSHA256``; `nil` means `service == "s3"`.
    public init(credentials: AWSCredentials, region: String, service: String = "s3",
                sendsContentSHA256: Bool? = nil) throws(AWSSigningError) {
        guard Self.isScopeComponent(credentials.accessKeyID) else { throw AWSSigningError(.invalidAccessKeyID) }
        guard !credentials.secretAccessKey.isEmpty else { throw AWSSigningError(.emptySecretAccessKey) }
        if let token = credentials.sessionToken {
            guard !token.isEmpty, token.utf8.allSatisfy(Self.isVisible) else { throw AWSSigningError(.invalidSessionToken) }
        }
        guard Self.isScopeComponent(region) else { throw AWSSigningError(.invalidRegion(region)) }
        guard Self.isScopeComponent(service) else { throw AWSSigningError(.invalidService(service)) }
        self.credentials = credentials
        self.region = region
        self.service = service
        self.sendsContentSHA256 = sendsContentSHA256 ?? (service == "s3")
    }

    /// Region and service (the credentials are left out).
    public var description: String { "AWSSignatureV4(region: \(region), service: \(service))" }

    // MARK: Authorization header

    /// Signs a request for the `Authorization` header.
    ///
    /// - Parameters:
    ///   - method: the HTTP method, as sent (`GET`, `PUT`, …).
    ///   - path: the request path as sent, starting with `/` and already URI-encoded once: only
    ///     unreserved characters, `/` and `%XX` escapes with uppercase hex (build it with
    ///     ``uriEncode(_:encodeSlash:)``, `encodeSlash: false`). Not re-encoded (S3 rule).
    ///   - query: the query parameters, **not** encoded, in any order (a valueless sub-resource such
    ///     as `?lifecycle` is `("lifecycle", "")`). Send ``AWSSignedRequest/canonicalQuery``.
    ///   - headers: the headers to sign, including `Host` (with the port when it is not the default
    ///     one), in any case and order. Not `Authorization`, `x-amz-date`, `x-amz-security-token`,
    ///     nor `x-amz-content-sha256` when ``sendsContentSHA256`` is on: the signer adds those.
    ///   - payloadHash: the lowercase hex SHA-256 of the body (`sha256Hex`, ``emptyPayloadHash``) or ``unsignedPayload``.
    ///   - date: the signing time; S3 refuses requests more than 15 minutes away from its clock.
    /// - Returns: the headers to add, and the intermediate strings.
    public func sign(method: String, path: String, query: [(String, String)] = [], headers: [(String, String)],
                     payloadHash: String, date: Timestamp) throws(AWSSigningError) -> AWSSignedRequest {
        let (amzDate, dateStamp) = try Self.formatDate(date)
        try Self.validate(method: method, path: path)
        guard !payloadHash.isEmpty, payloadHash.utf8.allSatisfy(Self.isVisible) else {
            throw AWSSigningError(.invalidPayloadHash(payloadHash))
        }
        var reserved: Set<String> = ["authorization", "x-amz-date", "x-amz-security-token"]
        if sendsContentSHA256 { reserved.insert("x-amz-content-sha256") }
        var all: [(String, String)] = []
        all.reserveCapacity(headers.count + 3)
        for (name, value) in headers {
            let lower = try Self.canonicalHeaderName(name)
            guard !reserved.contains(lower) else { throw AWSSigningError(.reservedHeader(name)) }
            all.append((lower, value))
        }
        guard all.contains(where: { $0.0 == "host" }) else { throw AWSSigningError(.missingHost) }
        var added: [(name: String, value: String)] = [(name: "x-amz-date", value: amzDate)]
        if sendsContentSHA256 { added.append((name: "x-amz-content-sha256", value: payloadHash)) }
        if let token = credentials.sessionToken { added.append((name: "x-amz-security-token", value: token)) }
        all += added.map { ($0.name, $0.value) }
        let (canonicalHeaders, signedHeaders) = try Self.canonicalHeaders(all)
        let canonicalQuery = Self.canonicalQuery(query)

        let canonicalRequest = [method, path, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].joined(separator: "\n")
        let scope = credentialScope(dateStamp: dateStamp)
        let stringToSign = Self.stringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest)
        let signature = self.signature(stringToSign: stringToSign, dateStamp: dateStamp)
        let authorization = "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return AWSSignedRequest(headers: [(name: "Authorization", value: authorization)] + added, authorization: authorization,
                                amzDate: amzDate, canonicalQuery: canonicalQuery, signedHeaders: signedHeaders,
                                canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature)
    }

    // MARK: Presigned URLs

    /// Signs a URL with query parameters (S3 "presigned URL"): anyone holding it can make this one
    /// request until `date + expires`, without credentials.
    ///
    /// Only `host` is signed and the payload is ``unsignedPayload``. With temporary credentials the
    /// session token is added as `X-Amz-Security-Token` (and signed).
    ///
    /// - Parameters:
    ///   - method: the HTTP method the URL is for.
    ///   - path: the request path as sent, URI-encoded once (see ``sign(method:path:query:headers:payloadHash:date:)``).
    ///   - query: extra parameters to sign, not encoded (for example `response-content-disposition`);
    ///     none may be an `X-Amz-*` authentication parameter.
    ///   - host: the `Host` the URL is fetched from (with the port when it is not the default one).
    ///   - expires: the lifetime in seconds, 1 ... ``maximumPresignedExpiry``.
    ///   - date: the signing time (the start of the lifetime).
    public func presignedQuery(method: String, path: String, query: [(String, String)] = [], host: String,
                               expires: Int, date: Timestamp) throws(AWSSigningError) -> AWSPresignedQuery {
        let (amzDate, dateStamp) = try Self.formatDate(date)
        try Self.validate(method: method, path: path)
        guard (1...Self.maximumPresignedExpiry).contains(expires) else { throw AWSSigningError(.invalidExpiry(seconds: expires)) }
        guard !host.isEmpty, host.utf8.allSatisfy(Self.isVisible) else { throw AWSSigningError(.invalidHost(host)) }
        let authNames: Set<String> = ["x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
                                      "x-amz-signedheaders", "x-amz-signature", "x-amz-security-token"]
        for (name, _) in query where authNames.contains(Self.asciiLowercased(name)) {
            throw AWSSigningError(.reservedQueryParameter(name))
        }
        let scope = credentialScope(dateStamp: dateStamp)
        var parameters: [(String, String)] = query + [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope)"),
            ("X-Amz-Date", amzDate),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if let token = credentials.sessionToken { parameters.append(("X-Amz-Security-Token", token)) }
        let sorted = Self.encodedSorted(parameters)
        let canonicalQuery = sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let canonicalHeaders = "host:\(host)\n"

        let canonicalRequest = [method, path, canonicalQuery, canonicalHeaders, "host", Self.unsignedPayload].joined(separator: "\n")
        let stringToSign = Self.stringToSign(amzDate: amzDate, scope: scope, canonicalRequest: canonicalRequest)
        let signature = self.signature(stringToSign: stringToSign, dateStamp: dateStamp)
        return AWSPresignedQuery(
            queryString: canonicalQuery + "&X-Amz-Signature=" + signature,
            parameters: sorted.map { (name: $0.raw.0, value: $0.raw.1) } + [(name: "X-Amz-Signature", value: signature)],
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature)
    }

    // MARK: Helpers

    /// The lowercase hex SHA-256 of `bytes` (a payload hash).
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        hex(Array(SHA256.hash(data: bytes)))
    }

    /// The lowercase hex SHA-256 of the UTF-8 bytes of `text`.
    public static func sha256Hex(_ text: String) -> String {
        sha256Hex(Array(text.utf8))
    }

    /// URI-encodes `text` the SigV4 way: the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~`
    /// are kept, every other byte of the UTF-8 form becomes `%XX` (uppercase hex), a space is `%20`
    /// (never `+`). `/` is kept unless `encodeSlash` (query names and values encode it; object keys
    /// in paths keep it: `"/" + uriEncode(key, encodeSlash: false)`).
    public static func uriEncode(_ text: String, encodeSlash: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if QueryRewriter.isUnreserved(byte) || (byte == UInt8(ascii: "/") && !encodeSlash) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hexDigitsUpper[Int(byte >> 4)])
                out.append(hexDigitsUpper[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `yyyyMMdd/region/service/aws4_request`.
    func credentialScope(dateStamp: String) -> String {
        "\(dateStamp)/\(region)/\(service)/aws4_request"
    }

    /// The signature of `stringToSign` with the key derived for `dateStamp`.
    func signature(stringToSign: String, dateStamp: String) -> String {
        func mac(_ key: [UInt8], _ message: String) -> [UInt8] {
            Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: SymmetricKey(data: key)))
        }
        var key = Array(("AWS4" + credentials.secretAccessKey).utf8)
        for part in [dateStamp, region, service, "aws4_request"] { key = mac(key, part) }
        return Self.hex(mac(key, stringToSign))
    }

    static func stringToSign(amzDate: String, scope: String, canonicalRequest: String) -> String {
        [algorithm, amzDate, scope, sha256Hex(canonicalRequest)].joined(separator: "\n")
    }

    /// `(yyyyMMdd'T'HHmmss'Z', yyyyMMdd)` in UTC, milliseconds dropped.
    static func formatDate(_ date: Timestamp) throws(AWSSigningError) -> (amzDate: String, dateStamp: String) {
        let seconds = date.secondsSince1970
        // 10000-01-01T00:00:00Z: the first instant with a five-digit year.
        guard seconds >= 0, seconds < 253_402_300_800 else { throw AWSSigningError(.dateOutOfRange(date)) }
        let civil = CivilTime(Timestamp(secondsSince1970: seconds))
        let day = Timestamp.pad(civil.year, 4) + Timestamp.pad(civil.month, 2) + Timestamp.pad(civil.day, 2)
        let time = Timestamp.pad(civil.hour, 2) + Timestamp.pad(civil.minute, 2) + Timestamp.pad(civil.second, 2)
        return (day + "T" + time + "Z", day)
    }

    /// The canonical query string of unencoded parameters.
    static func canonicalQuery(_ parameters: [(String, String)]) -> String {
        encodedSorted(parameters).map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Parameters encoded and sorted by encoded name, then encoded value, byte order.
    static func encodedSorted(_ parameters: [(String, String)]) -> [(name: String, value: String, raw: (String, String))] {
        parameters
            .map { (name: uriEncode($0.0, encodeSlash: true), value: uriEncode($0.1, encodeSlash: true), raw: $0) }
            .sorted { a, b in
                if a.name != b.name { return a.name.utf8.lexicographicallyPrecedes(b.name.utf8) }
                return a.value.utf8.lexicographicallyPrecedes(b.value.utf8)
            }
    }

    /// The canonical header block (each line `name:value\n`) and the signed header list, from
    /// lowercase names. Repeated names are joined with `,`, in order.
    static func canonicalHeaders(_ headers: [(String, String)]) throws(AWSSigningError) -> (block: String, signed: String) {
        var order: [String] = []
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            guard value.utf8.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                throw AWSSigningError(.invalidHeaderValue(name: name))
            }
            if values[name] == nil { order.append(name) }
            values[name, default: []].append(foldWhitespace(value))
        }
        let names = order.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let block = names.map { "\($0):\(values[$0, default: []].joined(separator: ","))\n" }.joined()
        return (block, names.joined(separator: ";"))
    }

    /// `value` without leading or trailing spaces and tabs, each inner run of them one space.
    static func foldWhitespace(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for byte in value.utf8 {
            if byte == 0x20 || byte == 0x09 {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(0x20); pendingSpace = false }
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func canonicalHeaderName(_ name: String) throws(AWSSigningError) -> String {
        guard !name.isEmpty, name.utf8.allSatisfy(isTokenCharacter) else { throw AWSSigningError(.invalidHeaderName(name)) }
        return asciiLowercased(name)
    }

    static func validate(method: String, path: String) throws(AWSSigningError) {
        guard !method.isEmpty, method.utf8.allSatisfy(isTokenCharacter) else { throw AWSSigningError(.invalidMethod(method)) }
        let bytes = Array(path.utf8)
        guard bytes.first == UInt8(ascii: "/") else { throw AWSSigningError(.invalidPath(path)) }
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.count, isUpperHexDigit(bytes[index + 1]), isUpperHexDigit(bytes[index + 2]) else {
                    throw AWSSigningError(.invalidPath(path))
                }
                index += 3
            } else {
                guard QueryRewriter.isUnreserved(byte) || byte == UInt8(ascii: "/") else { throw AWSSigningError(.invalidPath(path)) }
                index += 1
            }
        }
    }

    static let hexDigitsUpper = Array("0123456789ABCDEF".utf8)
    static let hexDigitsLower = Array("0123456789abcdef".utf8)

    static func hex(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(hexDigitsLower[Int(byte >> 4)])
            out.append(hexDigitsLower[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func isUpperHexDigit(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46)
    }

    /// Printable ASCII other than space.
    static func isVisible(_ c: UInt8) -> Bool { c > 0x20 && c < 0x7F }

    /// RFC 9110 `tchar`.
    static func isTokenCharacter(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || (c >= 0x30 && c <= 0x39)
            || "!#$%&'*+-.^_`|~".utf8.contains(c)
    }

    /// Non-empty visible ASCII without `/` (it separates the scope's components).
    static func isScopeComponent(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { isVisible($0) && $0 != UInt8(ascii: "/") }
    }

    static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 + 0x20 : $0 }, as: UTF8.self)
    }
}
