public import Hummingbird
import Foundation
import Logging
import MediaCore
import MultipartKit
import HTTPTypes
import NIOCore
import StreamKit

/// The `/v1/tracks` API: upload, status, list, delete.
public struct TrackRoutes: Sendable {
    let catalog: any Catalog
    let storage: any ObjectStorage
    let configuration: HostConfiguration
    let temporaryDirectory: String
    let auth: HostAuth
    let manifests: ManifestCache
    /// Called after a job is enqueued (wakes an idle worker).
    let onEnqueue: @Sendable () -> Void
    /// Called with a track id once the track is deleted (drops cached objects, purges the CDN).
    let onDelete: @Sendable (String) async -> Void

    public init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, temporaryDirectory: String,
                auth: HostAuth, onEnqueue: @escaping @Sendable () -> Void, onDelete: @escaping @Sendable (String) async -> Void = { _ in }) {
        self.init(catalog: catalog, storage: storage, configuration: configuration, temporaryDirectory: temporaryDirectory,
                  auth: auth, manifests: ManifestCache(), onEnqueue: onEnqueue, onDelete: onDelete)
    }

    init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, temporaryDirectory: String,
         auth: HostAuth, manifests: ManifestCache, onEnqueue: @escaping @Sendable () -> Void,
         onDelete: @escaping @Sendable (String) async -> Void) {
        self.manifests = manifests
        self.auth = auth
        self.onDelete = onDelete
        self.catalog = catalog
        self.storage = storage
        self.configuration = configuration
        self.temporaryDirectory = temporaryDirectory
        self.onEnqueue = onEnqueue
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        router.post("/v1/tracks") { request, context in
            try await self.auth.require(.upload, request)
            return try await self.upload(request, context: context)
        }
        router.get("/v1/tracks") { request, _ in
            try await self.auth.requireAny([.stream, .admin], request)
            return try await self.list(request)
        }
        router.get("/v1/tracks/:id") { request, context in
            let id = try context.parameters.require("id")
            let principal = try await self.auth.requireAny([.stream, .upload, .admin], request, track: id)
            guard let record = try await self.catalog.track(id: id) else { throw APIError.notFound("no track \(id)") }
            let resource = TrackResource(record, manifest: self.manifests.published(record))
            return principal.allows(.stream, track: id) ? resource.withPlayback(auth: self.auth, now: Date()) : resource
        }
        router.post("/v1/tokens/revoke") { request, context in
            try await self.auth.require(.admin, request)
            let body = try await request.decode(as: Revocation.self, context: context)
            guard !body.jti.isEmpty, body.jti.utf8.count <= 200 else { throw APIError(.badRequest, code: "bad_request", "jti must be 1–200 bytes") }
            // Without the token's expiry, keep the entry for a year (longer than any token we mint).
            let expires = body.exp.map { Date(timeIntervalSince1970: $0) } ?? Date().addingTimeInterval(365 * 86400)
            try await self.catalog.revoke(tokenID: body.jti, expiresAt: expires)
            context.logger.info("token revoked", metadata: ["jti": "\(body.jti)"])
            return Response(status: .noContent)
        }
        router.delete("/v1/tracks/:id") { request, context in
            try await self.auth.require(.admin, request)
            let id = try context.parameters.require("id")
            guard try await self.catalog.deleteTrack(id: id) else { throw APIError.notFound("no track \(id)") }
            do {
                try await self.storage.delete(prefix: TrackLayout(track: id).prefix)
            } catch {
                await self.onDelete(id)
                throw APIError(.internalServerError, code: "storage_error", "the track is deleted but some objects remain: \(error)")
            }
            await self.onDelete(id)
            return Response(status: .noContent)
        }
    }

    private var intake: TrackIntake {
        TrackIntake(catalog: catalog, storage: storage, configuration: configuration, onEnqueue: onEnqueue)
    }

    private func list(_ request: Request) async throws -> TrackPage {
        let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 50, 1), 500)
        let after = request.uri.queryParameters.get("after")
        let records = try await catalog.tracks(limit: limit + 1, after: after)
        let now = Date()
        let page = records.prefix(limit).map { TrackResource($0, manifest: manifests.published($0)).withPlayback(auth: auth, now: now) }
        return TrackPage(tracks: Array(page), next: records.count > limit ? page.last?.id : nil)
    }

    // MARK: Upload

    private func upload(_ request: Request, context: some RequestContext) async throws -> Response {
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!].map { String($0.prefix(200)) }
        if let idempotencyKey, let existing = try await catalog.track(idempotencyKey: idempotencyKey) {
            return try accepted(existing, context: context)
        }
        let depth = try await catalog.activeJobCount()
        guard depth < configuration.maxQueueDepth else {
            throw IntakeError(.queueFull, "the transcode queue is full (\(depth) jobs); retry later")
        }
        let receiver = UploadReceiver(limit: configuration.maxUploadBytes)
        if let length = request.headers[.contentLength].flatMap({ Int($0) }) { try receiver.checkDeclared(length: length) }

        let temporary = temporaryDirectory + "/upload-\(UUID().uuidString)"
        defer { unlink(temporary) }
        let received = try await receiver.receive(request.body, contentType: request.headers[.contentType] ?? "", to: temporary)

        let priority = request.uri.queryParameters.get("priority") == "background" ? JobPriority.backCatalogue : .interactive
        let record = try await intake.accept(file: temporary, byteCount: received, idempotencyKey: idempotencyKey, priority: priority)
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
