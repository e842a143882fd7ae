public import Foundation
public import Hummingbird
public import HTTPTypes
import Crypto
import JWTKit
import StreamKit
import Synchronization

/// Authentication and authorisation for the host: JWT bearer tokens (jwt-kit; HS256 and, with
/// configured keys, ES256 and RS256) for the API, signed URLs (StreamKit's `URLSigner`) for
/// playback, and a revocation list by `jti` kept in the catalog.
///
/// A token's header must name a configured key (`kid`, or the only key) and exactly that key's
/// algorithm: `alg: none` and algorithm confusion (an HS256 token "signed" with an RSA public
/// key) are refused before jwt-kit verifies the signature.
public struct HostAuth: Sendable {
    /// How long a revocation is kept when the token's expiry is not given: a year and a day,
    /// longer than any token the host mints (HTTP `POST /v1/tokens/revoke` and gRPC `RevokeToken`).
    public static let revocationWithoutExpiry: TimeInterval = 366 * 86_400
    /// Public mode: every request is allowed and playback URLs are not signed. For demos only.
    public let isPublic: Bool
    public let audience: String
    /// How long the playback URLs the API hands out stay valid.
    public let playbackTTL: Double
    let keys: JWTKeyCollection
    /// Key id → the algorithm its tokens must name.
    let algorithms: [String: String]
    /// The key id `mint` uses by default (the HS256 key).
    let defaultKeyID: String
    let signer: URLSigner
    /// Keys the subject tags of playback sessions (``PlaybackSessionLabel``): the URL-signing secret.
    let subjectKey: [UInt8]
    let catalog: (any Catalog)?
    /// Grants of signed playback tokens already verified.
    let grants = VerifiedGrants()
    /// Rate limits per token subject (set by ``StreamHostServer``; nil: none).
    var rateLimits: RateLimitPolicy?

    /// Query parameter carrying a signed playback token.
    public static let tokenParameter = "token"

    /// Builds the key set from `configuration.auth`, falling back to `secrets` for the HS256
    /// and URL-signing keys.
    public init(configuration: AuthConfiguration, secrets: HostSecrets, catalog: (any Catalog)?) async throws {
        isPublic = configuration.isPublic
        audience = configuration.audience
        playbackTTL = configuration.playbackTTL
        self.catalog = catalog
        let keys = JWTKeyCollection()
        var algorithms: [String: String] = [:]
        let hsSecret = configuration.hs256Secret.map { Array($0.utf8) } ?? Array(Data(base64Encoded: secrets.jwtHS256) ?? Data())
        guard hsSecret.count >= 32 else { throw AuthSetupError(message: "auth.hs256Secret must be at least 32 bytes") }
        await keys.add(hmac: HMACKey(key: SymmetricKey(data: hsSecret)), digestAlgorithm: .sha256, kid: "hs256")
        algorithms["hs256"] = "HS256"
        func read(_ path: String) throws -> String {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw AuthSetupError(message: "cannot read key file \(path)")
            }
            return text
        }
        do {
            if let path = configuration.es256PrivateKeyFile {
                await keys.add(ecdsa: try ES256PrivateKey(pem: try read(path)), kid: "es256")
                algorithms["es256"] = "ES256"
            } else if let path = configuration.es256PublicKeyFile {
                await keys.add(ecdsa: try ES256PublicKey(pem: try read(path)), kid: "es256")
                algorithms["es256"] = "ES256"
            }
            if let path = configuration.rs256PrivateKeyFile {
                await keys.add(rsa: try Insecure.RSA.PrivateKey(pem: try read(path)), digestAlgorithm: .sha256, kid: "rs256")
                algorithms["rs256"] = "RS256"
            } else if let path = configuration.rs256PublicKeyFile {
                await keys.add(rsa: try Insecure.RSA.PublicKey(pem: try read(path)), digestAlgorithm: .sha256, kid: "rs256")
                algorithms["rs256"] = "RS256"
            }
        } catch let error as AuthSetupError {
            throw error
        } catch {
            throw AuthSetupError(message: "bad key file: \(error)")
        }
        self.keys = keys
        self.algorithms = algorithms
        defaultKeyID = "hs256"
        let urlSecret = configuration.urlSigningSecret.map { Array($0.utf8) } ?? Array(Data(base64Encoded: secrets.urlSigning) ?? Data())
        subjectKey = urlSecret
        do {
            signer = try URLSigner(keys: ["k1": urlSecret], activeKeyID: "k1")
        } catch {
            throw AuthSetupError(message: "auth.urlSigningSecret: \(error)")
        }
    }

    /// Mints an access token. `keyID` is `hs256` (default), `es256` or `rs256` (a private key
    /// must be configured for the last two).
    public func mint(_ claims: AccessClaims, keyID: String? = nil) async throws -> String {
        let kid = keyID ?? defaultKeyID
        guard let alg = algorithms[kid] else { throw AuthSetupError(message: "no key \(kid) is configured") }
        var header = JWTHeader()
        header.alg = alg
        header.typ = "JWT"
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid), header: header)
    }

    // MARK: Bearer tokens

    /// The principal of the request's `Authorization: Bearer` token, or nil when there is none.
    /// Throws 401 for a token that is malformed, tampered, expired, not yet valid, for another
    /// audience, or revoked.
    public func authenticate(_ request: Request) async throws(APIError) -> Principal? {
        try await authenticate(authorization: request.headers[.authorization])
    }

    /// The principal of an `Authorization` value (`Bearer <token>`; gRPC's `authorization`
    /// metadata too), or nil when there is none; throws as ``authenticate(_:)``.
    public func authenticate(authorization field: String?) async throws(APIError) -> Principal? {
        if isPublic { return .everyone }
        guard let field else { return nil }
        let parts = field.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw APIError.unauthorized("the Authorization field must be `Bearer <token>`", error: "invalid_request")
        }
        return try await verify(token: String(parts[1]).trimmingCharacters(in: .whitespaces))
    }

    /// Verifies an access token and returns its principal.
    public func verify(token: String) async throws(APIError) -> Principal {
        guard token.utf8.count <= 8192 else { throw APIError.unauthorized("token too long") }
        let segments = token.split(separator: ".", omittingEmptySubsequences: false)
        guard segments.count == 3, let headerBytes = Base64URL.decode(segments[0]),
              let header = try? JSONDecoder().decode(HeaderFields.self, from: Data(headerBytes)) else {
            throw APIError.unauthorized("malformed token")
        }
        let kid: String
        if let named = header.kid {
            kid = named
        } else if algorithms.count == 1, let only = algorithms.keys.first {
            kid = only
        } else {
            throw APIError.unauthorized("the token names no key (kid)")
        }
        guard let expected = algorithms[kid] else { throw APIError.unauthorized("unknown key \(kid)") }
        guard header.alg == expected else {
            throw APIError.unauthorized("algorithm \(header.alg ?? "none") is not allowed for key \(kid)")
        }
        let claims: AccessClaims
        do {
            claims = try await keys.verify(token, as: AccessClaims.self)
        } catch let error as JWTError {
            switch error.errorType {
            case .claimVerificationFailure: throw APIError.unauthorized("token expired or not yet valid")
            default: throw APIError.unauthorized("invalid token")
            }
        } catch {
            throw APIError.unauthorized("invalid token")
        }
        guard claims.aud.value.contains(audience) else { throw APIError.unauthorized("token is for another audience") }
        if let catalog {
            let revoked: Bool
            do {
                revoked = try await catalog.isRevoked(tokenID: claims.jti.value)
            } catch {
                throw APIError(.serviceUnavailable, code: "catalog_unavailable", "cannot check revocation: \(error)", retryAfter: 5)
            }
            if revoked { throw APIError.unauthorized("token revoked") }
        }
        return Principal(subject: claims.sub.value, scopes: claims.scopes, track: claims.trk, tokenID: claims.jti.value)
    }

    /// The principal, which must allow `scope` (on `track`, when given): 401 without a token,
    /// 403 when the token does not allow it.
    @discardableResult
    public func require(_ scope: AccessScope, _ request: Request, track: String? = nil) async throws(APIError) -> Principal {
        try await requireAny([scope], request, track: track)
    }

    /// The principal if it allows any of `scopes`.
    @discardableResult
    public func requireAny(_ scopes: [AccessScope], _ request: Request, track: String? = nil) async throws(APIError) -> Principal {
        let principal = try authorize(try await authenticate(request), anyOf: scopes, track: track)
        try limitRate(of: principal, method: request.method, path: request.uri.path)
        return principal
    }

    /// Takes a token from `principal`'s own bucket in the class of `method` `path` (uploads,
    /// media, the rest of the API; `limits.…`), beside the per-address buckets: one subject
    /// behind many addresses is still limited. 429 when the bucket is empty. gRPC calls pass the
    /// HTTP route they mirror.
    public func limitRate(of principal: Principal, method: HTTPRequest.Method, path: String) throws(APIError) {
        if !isPublic, let rateLimits, !principal.subject.isEmpty,
           let verdict = rateLimits.check(method: method, path: path, key: "subject:" + principal.subject),
           verdict.retryAfter != nil {
            throw rateLimits.refusal(verdict, who: "token subject")
        }
    }

    /// `principal` if it allows any of `scopes` (on `track`, when given): 401 when there is no
    /// principal, 403 when it does not allow them.
    public func authorize(_ principal: Principal?, anyOf scopes: [AccessScope], track: String? = nil) throws(APIError) -> Principal {
        let names = scopes.map(\.rawValue).joined(separator: " or ")
        guard let principal else {
            throw APIError.unauthorized("a bearer token with scope \(names) is required", error: "invalid_request")
        }
        guard scopes.contains(where: { principal.allows($0, track: track) }) else {
            throw APIError.forbidden(track.map { "the token does not allow \(names) on track \($0)" } ?? "the token lacks scope \(names)")
        }
        return principal
    }

    // MARK: Signed playback URLs

    /// The path prefixes one playback token opens: the track's playlists, MPD, media and waveform.
    public static func playbackPrefixes(track: String) -> [String] {
        ["/hls/\(track)/", "/dash/\(track)/", "/media/\(track)/", "/v1/tracks/\(track)/waveform.json"]
    }

    /// A signed token opening every playback path of `track` until `now + playbackTTL`
    /// (nil in public mode), for a new playback session: the token carries a random session id
    /// and, when `subject` is given (the API token's subject), a keyed hash of it
    /// (``subjectTag(_:)``), so that listening is counted per session and can be deleted per
    /// subject without the subject appearing in URLs.
    public func playbackToken(track: String, now: Date, subject: String? = nil) -> String? {
        guard !isPublic else { return nil }
        return token(opening: Self.playbackPrefixes(track: track), now: now, session: newSessionLabel(subject: subject))
    }

    /// A new session label: 12 random bytes, and the subject's tag.
    func newSessionLabel(subject: String?) -> PlaybackSessionLabel {
        PlaybackSessionLabel(id: PlaybackSessionLabel.randomID(), subjectTag: subject.map(subjectTag))
    }

    /// The tag standing for a token subject in playback sessions and stored listening: the
    /// first 8 bytes of HMAC-SHA256(URL-signing secret, subject), base64url (11 characters).
    public func subjectTag(_ subject: String) -> String {
        Base64URL.encode(Array(HMAC<SHA256>.authenticationCode(for: Array(("veza-subject-v1\n" + subject).utf8),
                                                                using: SymmetricKey(data: subjectKey)).prefix(8)))
    }

    /// A signed token opening `prefixes` until `now + playbackTTL`.
    private func token(opening prefixes: [String], now: Date, session: PlaybackSessionLabel? = nil) -> String? {
        let expires = Timestamp(millisecondsSince1970: Int64((now.timeIntervalSince1970 + playbackTTL) * 1000))
        return try? signer.sign(pathPrefixes: prefixes, expires: expires, session: session?.label)
    }

    /// `path` with a new playback session's token for `track` in its query (unchanged in
    /// public mode).
    public func signedPath(_ path: String, track: String, now: Date, subject: String? = nil) -> String {
        signedPath(path, token: playbackToken(track: track, now: now, subject: subject))
    }

    /// `path` with `token` in its query (unchanged when nil): the URLs of one session share one token.
    public func signedPath(_ path: String, token: String?) -> String {
        guard let token else { return path }
        return QueryRewriter.adding(name: Self.tokenParameter, value: token, to: path)
    }

    /// Authorises a playback request for `track` and returns the token to carry into the URIs
    /// of a playlist (nil in public mode).
    ///
    /// Accepted: a signed URL (`?token=`) covering the request's path; or a bearer token with
    /// scope `stream` for the track, in which case a fresh playback token is minted. 401 when
    /// there is neither or the signature is expired, malformed or wrong; 403 when a valid token
    /// does not cover this path (another track). `client` is the request's client address (behind
    /// a trusted proxy, the one it forwarded), checked against a token bound to a client.
    public func authorizePlayback(_ request: Request, track: String, now: Date, client: IPAddress? = nil) async throws(APIError) -> String? {
        try await authorizeSigned(request, path: request.uri.path, now: now, client: client, scopes: [.stream], track: track,
                                  prefixes: Self.playbackPrefixes(track: track))
    }

    /// The revocation-list entry of playback session `id` (beside access tokens' `jti`s).
    public static func revokedSessionID(_ id: String) -> String { "session:" + id }

    /// The session id and expiry of a playback token this host signed (expired or not): what
    /// revoking it records. Nil for a token that is not the host's, or carries no session.
    public func playbackSession(of token: String) -> (id: String, expires: Date)? {
        guard case .success(let grant) = signer.grant(for: token), let label = PlaybackSessionLabel.of(token: token) else { return nil }
        return (label.id, Date(timeIntervalSince1970: Double(grant.expires.millisecondsSince1970) / 1000))
    }

    // MARK: Live mounts

    /// The path prefix one live token opens: everything under `/live/{mount}/` (LL-HLS, DASH,
    /// the ladder's ICY streams); the relay itself (`/live/{mount}`, `/live/{mount}.mp3` …) is
    /// checked as that prefix (see ``authorizeLive(_:mount:relay:now:client:)``).
    public static func livePrefixes(mount: String) -> [String] {
        ["/live/\(mount)/"]
    }

    /// `path` with a live token for `mount` in its query (unchanged in public mode).
    public func signedLivePath(_ path: String, mount: String, now: Date) -> String {
        guard !isPublic, let token = token(opening: Self.livePrefixes(mount: mount), now: now) else { return path }
        return QueryRewriter.adding(name: Self.tokenParameter, value: token, to: path)
    }

    /// Authorises listening to a live mount, as ``authorizePlayback(_:track:now:client:)`` does
    /// for a track: a signed URL covering the path, or a bearer token with scope `stream` (or
    /// `live`) not bound to a track, for which a live token is minted. Returns the token to carry
    /// into playlist URIs (nil in public mode). `relay`: the request is for the relay
    /// (`/live/{mount}` or `/live/{mount}.ext`), checked as `/live/{mount}/`.
    public func authorizeLive(_ request: Request, mount: String, relay: Bool = false, now: Date, client: IPAddress? = nil) async throws(APIError) -> String? {
        try await authorizeSigned(request, path: relay ? "/live/\(mount)/" : request.uri.path, now: now, client: client,
                                  scopes: [.stream, .live], track: nil, prefixes: Self.livePrefixes(mount: mount))
    }

    /// One check for every signed object: the `?token=` for `path`, else a bearer token with one
    /// of `scopes` (for `track`), for which a token opening `prefixes` is minted.
    private func authorizeSigned(_ request: Request, path: String, now: Date, client: IPAddress?, scopes: [AccessScope], track: String?,
                                 prefixes: [String]) async throws(APIError) -> String? {
        if isPublic { return nil }
        if let token = request.uri.queryParameters.get(Self.tokenParameter) {
            return try verifySignedPath(path, token: token, now: now, client: client)
        }
        if request.headers[.authorization] != nil {
            let principal = try await requireAny(scopes, request, track: track)
            // A bearer token playing a track starts a playback session of its subject.
            return token(opening: prefixes, now: now, session: track == nil ? nil : newSessionLabel(subject: principal.subject))
        }
        throw APIError.unauthorized("a signed URL or a bearer token with scope \(scopes.map(\.rawValue).joined(separator: " or ")) is required",
                                    error: "invalid_request")
    }

    /// The signed-URL half of ``authorizePlayback(_:track:now:)``, synchronous (it runs on the
    /// event loop in the fast path): `token` for `path` when valid, else 401 or 403.
    ///
    /// A token's grant (its prefixes and expiry, see ``URLSigner/grant(for:)``) is kept after its
    /// MAC is checked once, so a session's further requests skip the HMAC (8 % of the host's CPU
    /// with 10,000 listeners). Keys are the token strings: a tampered token is another key.
    func verifySignedPath(_ path: String, token: String, now: Date, client: IPAddress? = nil) throws(APIError) -> String {
        let stamp = Timestamp(millisecondsSince1970: Int64(now.timeIntervalSince1970 * 1000))
        let verdict: TokenVerification
        if let grant = grants.grant(token) {
            verdict = grant.verify(path: path, now: stamp)
        } else {
            switch signer.grant(for: token) {
            case .failure(let refusal):
                verdict = refusal.verification
            case .success(let grant) where grant.isClientBound:
                // Bound to a client identity: the client's address as the proxy chain resolved it.
                verdict = signer.verify(path: path, token: token, now: stamp, client: client?.description)
            case .success(let grant):
                grants.remember(token, grant)
                verdict = grant.verify(path: path, now: stamp)
            }
        }
        switch verdict {
        case .valid: return token
        case .expired: throw APIError.unauthorized("the signed URL has expired")
        case .pathOutsidePrefix: throw APIError.forbidden("the signed URL does not open this path")
        case .clientMismatch: throw APIError.forbidden("the signed URL is bound to another client")
        case .badSignature, .unknownKey, .malformed: throw APIError.unauthorized("invalid signed URL")
        }
    }

    private struct HeaderFields: Decodable {
        var alg: String?
        var kid: String?
    }
}
