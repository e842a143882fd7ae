public import Hummingbird
import Foundation
import HTTPTypes
import Logging
import MediaCore
import NIOCore
import StreamKit

/// Key delivery: `GET /hls/{id}/key/{keyId}` answers the 16 bytes of a protected track's
/// content key (HLS `METHOD=AES-128`), and `POST /dash/{id}/clearkey` a W3C ClearKey licence
/// (a `cenc` track's key as a JSON Web Key set), to a playback session entitled to the track.
///
/// The routes sit under `/hls/{id}/` and `/dash/{id}/`, which the session's signed token opens, so the
/// token that plays the track fetches its key and no other track's. Refused: no token or a bad
/// one (401), another track's token (403), a revoked session (403, `POST /v1/tokens/revoke` with its `playbackToken`),
/// too many fetches in the session (429, `protection.keyRate`), an unknown key (404). Every
/// fetch is logged with the track, key id and session id, never the key, and counted in
/// `veza_key_requests_total{result}`. The answer is `Cache-Control: no-store`: no shared
/// cache may keep it.
public struct KeyRoutes: Sendable {
    let keys: KeyService
    let auth: HostAuth
    let catalog: any Catalog
    let limiter: RateLimiter
    let metrics: HostMetrics?

    public init(keys: KeyService, auth: HostAuth, catalog: any Catalog, metrics: HostMetrics?) {
        self.keys = keys
        self.auth = auth
        self.catalog = catalog
        self.metrics = metrics
        limiter = RateLimiter(capacity: 65_536)
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        router.get("/hls/:id/key/:keyId") { request, context in
            let id = try context.parameters.require("id")
            let keyID = try context.parameters.require("keyId")
            return try await self.counted {
                let session = try await self.admit(track: id, request: request, client: DeliveryRoutes.client(context))
                let key = try await self.key(track: id, keyID: keyID)
                self.delivered(track: id, keyID: keyID, session: session, logger: context.logger)
                return Response(status: .ok, headers: [.contentType: "application/octet-stream", .contentLength: "16",
                                                       .cacheControl: "private, no-store"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: key.bytes)))
            }
        }
        // W3C ClearKey licence (EME, Encrypted Media Extensions §9.1.3 and §9.1.4): the request
        // names the KIDs wanted (base64url), the answer is a JSON Web Key set.
        router.post("/dash/:id/clearkey") { request, context in
            let id = try context.parameters.require("id")
            return try await self.counted {
                let session = try await self.admit(track: id, request: request, client: DeliveryRoutes.client(context))
                let body = try await request.decode(as: ClearKeyRequest.self, context: context)
                guard (1...16).contains(body.kids.count) else { throw APIError(.badRequest, code: "bad_request", "kids must list 1–16 key ids") }
                var keys: [ClearKeyResponse.Key] = []
                for kid in body.kids {
                    guard let bytes = Base64URL.decode(Substring(kid)), bytes.count == 16 else {
                        throw APIError(.badRequest, code: "bad_request", "a kid is the base64url of 16 bytes")
                    }
                    let keyID = Hex.encode(bytes)
                    let key = try await self.key(track: id, keyID: keyID)
                    self.delivered(track: id, keyID: keyID, session: session, logger: context.logger)
                    keys.append(.init(kty: "oct", kid: kid, k: Base64URL.encode(key.bytes)))
                }
                let json = try JSONEncoder().encode(ClearKeyResponse(keys: keys, type: body.type ?? "temporary"))
                return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "private, no-store"],
                                body: ResponseBody(byteBuffer: ByteBuffer(bytes: json)))
            }
        }
    }

    /// Runs `body`, counting a refusal by its result.
    private func counted(_ body: () async throws -> Response) async throws -> Response {
        do {
            return try await body()
        } catch {
            metrics?.keyRequest(Self.result(of: error))
            throw error
        }
    }

    /// Admits a key request for `track`: a playback token of the track, a session not revoked,
    /// within the session's rate. Returns the session.
    private func admit(track id: String, request: Request, client: IPAddress?) async throws -> PlaybackSessionLabel? {
        let token = try await auth.authorizePlayback(request, track: id, now: Date(), client: client)
        let session = token.flatMap(PlaybackSessionLabel.of(token:))
        if let session, try await catalog.isRevoked(tokenID: HostAuth.revokedSessionID(session.id)) {
            throw APIError(.forbidden, code: "session_revoked", "this playback session was revoked")
        }
        if !auth.isPublic {
            // Per session of a signed URL; a bearer token mints a new session each time, so its
            // requests count per client address instead.
            let signed = request.uri.queryParameters.get(HostAuth.tokenParameter) != nil
            let bucket = signed ? session.map { "session:" + $0.id } ?? "token" : "client:" + (client?.description ?? "unknown")
            let (retryAfter, _) = limiter.acquire(bucket, limit: keys.configuration.keyRequests, now: Double(DispatchTime.now().uptimeNanoseconds) / 1e9)
            if let retryAfter {
                throw APIError(.tooManyRequests, code: "rate_limited", "too many key requests in this session", retryAfter: max(1, Int(retryAfter.rounded(.up))))
            }
        }
        return session
    }

    /// The key of `track` named `keyID` (32 lowercase hex digits); 404 when there is none.
    private func key(track id: String, keyID: String) async throws -> ContentKey {
        guard keyID.utf8.count == 32, keyID.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
              let key = try await keys.key(track: id, keyID: keyID) else {
            throw APIError.notFound("track \(id) has no key \(keyID.prefix(64))")
        }
        return key
    }

    private func delivered(track id: String, keyID: String, session: PlaybackSessionLabel?, logger: Logger) {
        metrics?.keyRequest("delivered")
        logger.info("content key delivered", metadata: ["track": "\(id)", "keyId": "\(keyID)", "session": "\(session?.id ?? "-")"])
    }

    /// The metrics label of a refusal.
    static func result(of error: any Error) -> String {
        guard let error = error as? APIError else { return error is ProtectionError ? "unavailable" : "error" }
        switch error.status.code {
        case 401: return "unauthorized"
        case 403: return error.code == "session_revoked" ? "revoked" : "forbidden"
        case 404: return "not_found"
        case 429: return "rate_limited"
        default: return "unavailable"
        }
    }
}

/// A W3C ClearKey licence request: `{"kids": ["…"], "type": "temporary"}`.
struct ClearKeyRequest: Decodable {
    var kids: [String]
    var type: String?
}

/// A W3C ClearKey licence: a JSON Web Key set.
struct ClearKeyResponse: Encodable {
    struct Key: Encodable {
        var kty: String
        var kid: String
        var k: String
    }
    var keys: [Key]
    var type: String
}
