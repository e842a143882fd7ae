import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MediaCore
import NIOCore
import NIOFoundationCompat
@testable import StreamHost
import Testing
import TestSupport

/// The API's routes in process (Hummingbird's router test framework: no socket), with the real
/// storage, catalog and worker pool under a temporary directory: every route, auth decision and
/// error body. The subprocess suites (HostTests, DeliveryTests, …) stay as the end-to-end tests.
@Suite("API routes in process: auth decisions, error bodies, upload to playback")
struct RouteTests {
    /// A host under a fresh data directory, and tokens for each scope.
    struct Setup {
        let server: StreamHostServer
        let directory: String
        var tokens: [AccessScope: String] = [:]

        init(maxUploadBytes: Int = 1 << 30, apiLimit: RateLimit = RateLimit(rate: 0, burst: 0)) async throws {
            directory = Fixtures.directory + "/routes-\(UUID().uuidString.prefix(8))"
            var configuration = HostConfiguration()
            configuration.dataDirectory = directory
            configuration.maxUploadBytes = maxUploadBytes
            configuration.workerCount = 1
            // One test client at full speed is not a real client.
            configuration.limits.api = apiLimit
            configuration.limits.upload = RateLimit(rate: 0, burst: 0)
            configuration.limits.media = RateLimit(rate: 0, burst: 0)
            server = try await StreamHostServer(configuration: configuration)
            let now = Date()
            for scope in AccessScope.allCases {
                tokens[scope] = try await server.auth.mint(AccessClaims(subject: "test-\(scope.rawValue)", audience: configuration.auth.audience,
                                                                        scopes: [scope], issuedAt: now, expires: now.addingTimeInterval(3600)))
            }
        }

        func bearer(_ scope: AccessScope) -> HTTPFields { [.authorization: "Bearer " + (tokens[scope] ?? "")] }
    }

    /// The `error.code` of a JSON error body.
    static func errorCode(_ response: TestResponse) -> String? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any] else { return nil }
        return (json["error"] as? [String: Any])?["code"] as? String
    }

    static func json(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]) ?? [:]
    }

    @Test("auth decisions: no token 401 with a Bearer challenge, wrong scope 403, a bad token 401; every error is the API's JSON")
    func authDecisions() async throws {
        let setup = try await Setup()
        try await setup.server.application().test(.router) { client in
            try await client.execute(uri: "/v1/tracks", method: .get) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(Self.errorCode(response) == "unauthorized")
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
                #expect(response.headers[.cacheControl] == "no-store")
            }
            try await client.execute(uri: "/v1/tracks", method: .get, headers: [.authorization: "Bearer not.a.token"]) { response in
                #expect(response.status == .unauthorized && Self.errorCode(response) == "unauthorized")
            }
            try await client.execute(uri: "/v1/tracks", method: .post, headers: setup.bearer(.stream), body: ByteBuffer(string: "x")) { response in
                #expect(response.status == .forbidden && Self.errorCode(response) == "forbidden")
            }
            try await client.execute(uri: "/v1/tracks/x", method: .delete, headers: setup.bearer(.upload)) { response in
                #expect(response.status == .forbidden)
            }
            try await client.execute(uri: "/v1/tokens/revoke", method: .post, headers: setup.bearer(.stream), body: ByteBuffer(string: #"{"jti":"a"}"#)) { response in
                #expect(response.status == .forbidden)
            }
            for scope in [AccessScope.stream, .admin] {
                try await client.execute(uri: "/v1/tracks", method: .get, headers: setup.bearer(scope)) { response in
                    #expect(response.status == .ok, "\(scope)")
                    #expect((Self.json(response)["tracks"] as? [Any])?.isEmpty == true)
                }
            }
            try await client.execute(uri: "/hls/x/master.m3u8", method: .get) { response in
                #expect(response.status == .unauthorized, "playback needs a signed URL or a stream bearer")
            }
        }
    }

    @Test("errors of the one mapping: 404 not_found, 415, 400 empty_body and bad_multipart, 413 payload_too_large, 400 bad jti")
    func errorBodies() async throws {
        let setup = try await Setup(maxUploadBytes: 4096)
        try await setup.server.application().test(.router) { client in
            try await client.execute(uri: "/v1/tracks/nope", method: .get, headers: setup.bearer(.admin)) { response in
                #expect(response.status == .notFound && Self.errorCode(response) == "not_found")
            }
            try await client.execute(uri: "/v1/tracks/nope", method: .delete, headers: setup.bearer(.admin)) { response in
                #expect(response.status == .notFound && Self.errorCode(response) == "not_found")
            }
            try await client.execute(uri: "/v1/tracks", method: .post, headers: setup.bearer(.upload),
                                     body: ByteBuffer(string: String(repeating: "not audio, ", count: 100))) { response in
                #expect(response.status == .unsupportedMediaType && Self.errorCode(response) == "unsupported_media_type")
            }
            try await client.execute(uri: "/v1/tracks", method: .post, headers: setup.bearer(.upload)) { response in
                #expect(response.status == .badRequest && Self.errorCode(response) == "empty_body")
            }
            var multipart = setup.bearer(.upload)
            multipart[.contentType] = "multipart/form-data"
            try await client.execute(uri: "/v1/tracks", method: .post, headers: multipart, body: ByteBuffer(string: "x")) { response in
                #expect(response.status == .badRequest && Self.errorCode(response) == "bad_multipart")
            }
            try await client.execute(uri: "/v1/tracks", method: .post, headers: setup.bearer(.upload),
                                     body: ByteBuffer(repeating: 0x41, count: 5000)) { response in
                #expect(response.status == .contentTooLarge && Self.errorCode(response) == "payload_too_large")
            }
            try await client.execute(uri: "/v1/tokens/revoke", method: .post, headers: setup.bearer(.admin), body: ByteBuffer(string: #"{"jti":""}"#)) { response in
                #expect(response.status == .badRequest && Self.errorCode(response) == "bad_request")
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("veza_http_requests_total"))
            }
        }
        // Nothing of the refused uploads was kept.
        let left = try await setup.server.storage.list(prefix: "tracks/")
        #expect(left.isEmpty, "\(left)")
    }

    @Test("upload → ready → playback in process: one master per switching set, signed; another track's token and an unknown set refused; delete removes every object")
    func uploadToPlayback() async throws {
        let setup = try await Setup()
        let source = try Fixtures.make("routes-4.wav", source: Fixtures.sourceArguments(seconds: 4), ["-c:a", "pcm_s16le"])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: source))
        try await setup.server.application().test(.router) { client in
            let id = try await client.execute(uri: "/v1/tracks", method: .post, headers: setup.bearer(.upload), body: ByteBuffer(bytes: bytes)) { response in
                #expect(response.status == .accepted)
                return Self.json(response)["id"] as? String ?? ""
            }
            var track: [String: Any] = [:]
            for _ in 0..<600 {
                track = try await client.execute(uri: "/v1/tracks/\(id)", method: .get, headers: setup.bearer(.stream)) { Self.json($0) }
                if track["status"] as? String == "ready" || track["status"] as? String == "failed" { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(track["status"] as? String == "ready", "\(track)")
            let playback = track["playback"] as? [String: Any] ?? [:]
            let byCodec = playback["hlsByCodec"] as? [String: String] ?? [:]
            #expect(Set(byCodec.keys) == ["aac", "opus", "flac"])
            let renditions = track["renditions"] as? [[String: Any]] ?? []
            #expect(renditions.first { $0["id"] as? String == "opus-96" }?["switchingSet"] as? String == "opus")
            #expect(renditions.first { $0["id"] as? String == "mp3-320" }?["switchingSet"] == nil, "progressive only")
            for (set, url) in byCodec {
                try await client.execute(uri: url, method: .get) { response in
                    #expect(response.status == .ok)
                    let text = String(buffer: response.body)
                    let codecs = Set(text.split(separator: "\n").filter { $0.hasPrefix("#EXT-X-STREAM-INF") }
                        .compactMap { $0.components(separatedBy: "CODECS=").last })
                    #expect(codecs.count == 1, "\(set): \(text)")
                }
            }
            // DASH, the waveform, and a progressive file: ranges, validators, HEAD.
            try await client.execute(uri: playback["dash"] as? String ?? "", method: .get) { response in
                #expect(response.status == .ok && String(buffer: response.body).contains("<MPD"))
            }
            try await client.execute(uri: playback["waveform"] as? String ?? "", method: .get) { response in
                #expect(response.status == .ok && Self.json(response)["data"] != nil, "\(String(buffer: response.body).prefix(200))")
            }
            let progressive = (playback["progressive"] as? [[String: Any]] ?? []).first { $0["rendition"] as? String == "mp3-320" }
            let file = progressive?["url"] as? String ?? ""
            #expect(!file.isEmpty, "\(playback)")
            let (etag, length) = try await client.execute(uri: file, method: .get) { response in
                #expect(response.status == .ok && response.headers[.acceptRanges] == "bytes")
                return (response.headers[.eTag] ?? "", response.body.readableBytes)
            }
            #expect(length > 10_000)
            try await client.execute(uri: file, method: .get, headers: [.range: "bytes=100-199"]) { response in
                #expect(response.status == .partialContent && response.body.readableBytes == 100)
                #expect(response.headers[.contentRange] == "bytes 100-199/\(length)")
            }
            try await client.execute(uri: file, method: .get, headers: [.range: "bytes=\(length)-"]) { response in
                #expect(response.status == .rangeNotSatisfiable && response.headers[.contentRange] == "bytes */\(length)")
            }
            try await client.execute(uri: file, method: .get, headers: [.ifNoneMatch: etag]) { response in
                #expect(response.status == .notModified && response.body.readableBytes == 0)
            }
            try await client.execute(uri: file, method: .head) { response in
                #expect(response.status == .ok && response.body.readableBytes == 0 && response.headers[.contentLength] == "\(length)")
            }
            try await client.execute(uri: file.components(separatedBy: "?").first ?? "", method: .get) { response in
                #expect(response.status == .unauthorized, "a media object without its signature")
            }
            let token = (playback["hls"] as? String)?.components(separatedBy: "token=").last ?? ""
            try await client.execute(uri: "/hls/\(id)/master-vorbis.m3u8?token=\(token)", method: .get) { response in
                #expect(response.status == .notFound && Self.errorCode(response) == "not_found")
            }
            try await client.execute(uri: "/hls/other/master.m3u8?token=\(token)", method: .get) { response in
                #expect(response.status == .forbidden, "a token opens its own track only")
            }
            try await client.execute(uri: "/v1/tracks/\(id)", method: .delete, headers: setup.bearer(.admin)) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/v1/tracks/\(id)", method: .get, headers: setup.bearer(.admin)) { #expect($0.status == .notFound) }
        }
        #expect(try await setup.server.storage.list(prefix: "tracks/").isEmpty)
    }

    /// The claims of a JWT (its middle part), for the tests that need its `jti`.
    static func claims(_ token: String) -> [String: Any] {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return [:] }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }

    @Test("listing pages with a cursor; a revoked token is refused at once; the API limit answers 429 with Retry-After; metrics, demo and root answer")
    func listingRevocationAndLimits() async throws {
        let setup = try await Setup(apiLimit: RateLimit(rate: 0.01, burst: 12))
        let source = try Fixtures.make("routes-1.wav", source: Fixtures.sourceArguments(seconds: 1), ["-c:a", "pcm_s16le"])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: source))
        try await setup.server.application().test(.router) { client in
            var ids: [String] = []
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/tracks", method: .post, headers: setup.bearer(.upload), body: ByteBuffer(bytes: bytes)) { response in
                    #expect(response.status == .accepted)
                    ids.append(Self.json(response)["id"] as? String ?? "")
                }
            }
            // Two pages of one, newest first, then the end.
            let first = try await client.execute(uri: "/v1/tracks?limit=1", method: .get, headers: setup.bearer(.admin)) { Self.json($0) }
            let firstIDs = (first["tracks"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            let cursor = first["next"] as? String ?? ""
            #expect(firstIDs == [ids[1]] && cursor == ids[1], "\(first)")
            let second = try await client.execute(uri: "/v1/tracks?limit=1&after=\(cursor)", method: .get, headers: setup.bearer(.admin)) { Self.json($0) }
            #expect((second["tracks"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String } == [ids[0]], "\(second)")
            #expect(second["next"] == nil || second["next"] is NSNull, "\(second)")

            // Revocation: the stream token works, is revoked by an admin, then is refused.
            let stream = setup.tokens[.stream] ?? ""
            let jti = Self.claims(stream)["jti"] as? String ?? ""
            #expect(!jti.isEmpty)
            try await client.execute(uri: "/v1/tracks/\(ids[0])", method: .get, headers: setup.bearer(.stream)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/tokens/revoke", method: .post, headers: setup.bearer(.stream),
                                     body: ByteBuffer(string: #"{"jti":"\#(jti)"}"#)) { #expect($0.status == .forbidden, "revoking needs admin") }
            var adminJSON = setup.bearer(.admin)
            adminJSON[.contentType] = "application/json"
            try await client.execute(uri: "/v1/tokens/revoke", method: .post, headers: adminJSON,
                                     body: ByteBuffer(string: #"{"jti":"\#(jti)"}"#)) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/v1/tracks/\(ids[0])", method: .get, headers: setup.bearer(.stream)) { response in
                #expect(response.status == .unauthorized && Self.errorCode(response) == "unauthorized", "\(String(buffer: response.body))")
            }

            // The API limit is per token subject, 12 at once then one per 100 s (uploads count
            // against the upload limit instead): 14 requests in a row meet a 429, however slowly
            // a loaded machine sends them (CI once took over 4 s for them at one per 2 s).
            var statuses: [HTTPResponse.Status] = []
            var refused: TestResponse?
            for _ in 0..<14 {
                try await client.execute(uri: "/v1/tracks/\(ids[0])", method: .get, headers: setup.bearer(.upload)) { response in
                    statuses.append(response.status)
                    if response.status == .tooManyRequests { refused = response }
                }
            }
            #expect(statuses.prefix(12).allSatisfy { $0 == .ok } && statuses.last == .tooManyRequests, "\(statuses)")
            if let refused {
                #expect(Self.errorCode(refused) == "rate_limited" && refused.headers[.retryAfter].flatMap { Int($0) } ?? 0 >= 1)
            }
            // Another subject has its own allowance.
            try await client.execute(uri: "/v1/tracks/\(ids[0])", method: .get, headers: setup.bearer(.admin)) { #expect($0.status == .ok) }

            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok && String(buffer: response.body).contains("veza_rate_limited_total"))
            }
            try await client.execute(uri: "/demo", method: .get) { response in
                #expect(response.status == .ok && response.headers[.contentType]?.hasPrefix("text/html") == true)
            }
            try await client.execute(uri: "/", method: .get) { #expect([.ok, .found, .seeOther, .temporaryRedirect].contains($0.status)) }
        }
    }

    @Test("the one error mapping: each domain error's status and code")
    func errorMapping() {
        func mapped(_ error: any Error) -> (Int, String, Int?) {
            let api = APIError(mapping: error)
            return (api.status.code, api.code, api.retryAfter)
        }
        #expect(mapped(IntakeError(.unsupportedMedia, "x")) == (415, "unsupported_media_type", nil))
        #expect(mapped(IntakeError(.unusableMedia, "x")) == (422, "unprocessable_media", nil))
        #expect(mapped(IntakeError(.tooLarge(limit: 1), "x")) == (413, "payload_too_large", nil))
        #expect(mapped(IntakeError(.queueFull, "x")) == (503, "queue_full", 30))
        #expect(mapped(IntakeError(.storageUnavailable, "x")) == (503, "storage_unavailable", 10))
        #expect(mapped(MediaError(.unsupportedFormat, "x")) == (415, "unsupported_media_type", nil))
        #expect(mapped(MediaError(.invalidData, "x")) == (422, "unprocessable_media", nil))
        #expect(mapped(MediaError(.ioError, "x")) == (500, "internal_error", nil))
        #expect(mapped(CatalogError(.queueFull, "x")) == (503, "queue_full", 30))
        #expect(mapped(CatalogError(.database, "x")) == (503, "catalog_unavailable", 5))
        #expect(mapped(StorageError(key: "k", "x")) == (503, "storage_unavailable", 5))
        #expect(mapped(CancellationError()) == (503, "shutting_down", 5))
        #expect(mapped(APIError.notFound("x")) == (404, "not_found", nil))
        struct Unexpected: Error { var secret = "do not show" }
        let internalError = APIError(mapping: Unexpected())
        #expect(internalError.status.code == 500 && !internalError.message.contains("do not show"))
    }
}
