public import Hummingbird
import Foundation
import Logging
import MediaCore
import HTTPTypes
import NIOCore
import StreamKit

/// The `/v1/tracks` API over HTTP: upload, status, list, delete, token revocation. What a
/// route does beyond reading its request is in ``TrackOperations``, which gRPC calls too.
public struct TrackRoutes: Sendable {
    let operations: TrackOperations
    var catalog: any Catalog { operations.catalog }
    var configuration: HostConfiguration { operations.configuration }
    var auth: HostAuth { operations.auth }

    public init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, temporaryDirectory: String,
                auth: HostAuth, onEnqueue: @escaping @Sendable () -> Void, onDelete: @escaping @Sendable (String) async -> Void = { _ in }) {
        operations = TrackOperations(catalog: catalog, storage: storage, configuration: configuration, temporaryDirectory: temporaryDirectory,
                                     auth: auth, manifests: ManifestCache(), onEnqueue: onEnqueue, onDelete: onDelete)
    }

    init(operations: TrackOperations) {
        self.operations = operations
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        router.post("/v1/tracks") { request, context in
            try await self.auth.require(.upload, request)
            return try await self.upload(request, context: context)
        }
        router.get("/v1/tracks") { request, _ in
            let principal = try await self.auth.requireAny([.stream, .admin], request)
            return try await self.list(request, principal: principal)
        }
        router.get("/v1/tracks/:id") { request, context in
            let id = try context.parameters.require("id")
            let principal = try await self.auth.requireAny([.stream, .upload, .admin], request, track: id)
            return try await self.operations.resource(id: id, for: principal, listener: try Self.listener(request))
        }
        router.post("/v1/tokens/revoke") { request, context in
            try await self.auth.require(.admin, request)
            let body = try await request.decode(as: Revocation.self, context: context)
            switch (body.jti, body.playbackToken) {
            case (let jti?, nil):
                guard !jti.isEmpty, jti.utf8.count <= 200 else { throw APIError(.badRequest, code: "bad_request", "jti must be 1–200 bytes") }
                let expires = body.exp.map { Date(timeIntervalSince1970: $0) } ?? Date().addingTimeInterval(HostAuth.revocationWithoutExpiry)
                try await self.catalog.revoke(tokenID: jti, expiresAt: expires)
                context.logger.info("token revoked", metadata: ["jti": "\(jti)"])
            case (nil, let token?):
                // A playback session: its keys stop at once (its clear segments, if any, play until it expires).
                guard token.utf8.count <= 8192, let session = self.auth.playbackSession(of: token) else {
                    throw APIError(.badRequest, code: "bad_request", "playbackToken is not a playback token this host signed with a session")
                }
                try await self.catalog.revoke(tokenID: HostAuth.revokedSessionID(session.id), expiresAt: session.expires)
                context.logger.info("playback session revoked", metadata: ["session": "\(session.id)"])
            default:
                throw APIError(.badRequest, code: "bad_request", "give exactly one of jti and playbackToken")
            }
            return Response(status: .noContent)
        }
        router.delete("/v1/tracks/:id") { request, context in
            try await self.auth.require(.admin, request)
            try await self.operations.delete(id: try context.parameters.require("id"))
            return Response(status: .noContent)
        }
    }

    private func list(_ request: Request, principal: Principal) async throws -> TrackPage {
        let limit = try request.integerQuery("limit", default: 50, range: 1...500)
        let after = request.uri.queryParameters.get("after")
        return try await operations.page(limit: limit, after: after,
                                         subject: principal.allows(.admin) ? try Self.listener(request) ?? principal.subject : principal.subject)
    }

    /// `?listener=`: who the playback URLs are for (a platform's own user id; admin tokens
    /// only), counted as one listener in analytics and deleted with
    /// `DELETE /v1/analytics/subjects/{listener}`; only a keyed hash of it is kept. Without it,
    /// the access token's subject.
    static func listener(_ request: Request) throws(APIError) -> String? {
        guard let value = request.uri.queryParameters.get("listener") else { return nil }
        guard (1...256).contains(value.utf8.count) else { throw APIError(.badRequest, code: "bad_request", "listener must be 1–256 bytes") }
        return String(value)
    }

    /// `?protection=none|aes-128`: how the upload's segments are encrypted (absent: the host's
    /// `protection.default`). Checked before the body is read.
    static func protection(_ request: Request) throws(APIError) -> ProtectionConfiguration.Method? {
        guard let value = request.uri.queryParameters.get("protection") else { return nil }
        guard let method = ProtectionConfiguration.Method(rawValue: String(value)) else {
            throw APIError(.badRequest, code: "bad_request",
                           "protection must be one of \(ProtectionConfiguration.Method.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return method
    }

    /// `?watermark=on|off`: whether the upload gets forensic A/B watermarks (absent: the
    /// host's `protection.watermark`). Checked before the body is read.
    static func watermark(_ request: Request) throws(APIError) -> Bool? {
        switch request.uri.queryParameters.get("watermark") {
        case nil: return nil
        case "on"?: return true
        case "off"?: return false
        default: throw APIError(.badRequest, code: "bad_request", "watermark must be on or off")
        }
    }

    // MARK: Upload

    private func upload(_ request: Request, context: some RequestContext) async throws -> Response {
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!].map { String($0.prefix(200)) }
        _ = try Self.protection(request)
        _ = try Self.watermark(request)
        if let existing = try await operations.existing(idempotencyKey: idempotencyKey) {
            return try accepted(existing, context: context)
        }
        try await operations.checkQueueDepth()
        let receiver = UploadReceiver(limit: configuration.maxUploadBytes)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }) { try receiver.checkDeclared(length: length) }

        let temporary = operations.temporaryDirectory + "/upload-\(UUID().uuidString)"
        defer { unlink(temporary) }
        let received = try await receiver.receive(request.body, contentType: request.headers[.contentType] ?? "", to: temporary)

        let priority = request.uri.queryParameters.get("priority") == "background" ? JobPriority.backCatalogue : .interactive
        let record = try await operations.intake.accept(file: temporary, byteCount: received, idempotencyKey: idempotencyKey, priority: priority,
                                                        protection: try Self.protection(request), watermark: try Self.watermark(request))
        context.logger.info("upload accepted", metadata: ["track": "\(record.id)", "bytes": "\(received)"])
        return try accepted(record, context: context)
    }

    private func accepted(_ record: TrackRecord, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder().encode(Accepted(id: record.id, jobId: record.jobID, status: record.status))
        return Response(status: .accepted,
                        headers: [.contentType: "application/json; charset=utf-8", .location: "/v1/tracks/\(record.id)"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A sortable, URL-safe id: milliseconds since 1970 in base 36, then 10 random characters.
    static func newID() -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        let millis = UInt64(Date().timeIntervalSince1970 * 1000)
        var time = String(millis, radix: 36)
        time = String(repeating: "0", count: max(0, 9 - time.count)) + time
        return time + String((0..<10).map { _ in alphabet.randomElement()! })
    }
}

/// The upload's 202 body.
private struct Accepted: Encodable {
    var id: String
    var jobId: String
    var status: TrackStatus
}
