public import Foundation
public import Hummingbird
import MediaCore
import StreamKit

/// What the track API does, whatever carries the call: the HTTP routes (``TrackRoutes``) and the
/// gRPC services (`StreamRPC`) both call these, after their own authentication. Refusals are the
/// host's domain errors (``APIError``, ``IntakeError``, ``CatalogError``, ``StorageError``), which
/// each transport maps once (``APIError/init(mapping:)``).
public struct TrackOperations: Sendable {
    let catalog: any Catalog
    let storage: any ObjectStorage
    let configuration: HostConfiguration
    let temporaryDirectory: String
    let auth: HostAuth
    let manifests: ManifestCache
    /// Called after a job is enqueued (wakes an idle worker and the webhook dispatcher).
    let onEnqueue: @Sendable () -> Void
    /// Called with a track id once the track is deleted (drops cached objects, purges the CDN).
    let onDelete: @Sendable (String) async -> Void
    /// Content keys of protected uploads (nil: protection is refused).
    var keys: KeyService?
    /// Records the playback sessions of watermarked tracks (nil: none is recorded).
    var watermarks: WatermarkService?

    init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, temporaryDirectory: String,
         auth: HostAuth, manifests: ManifestCache, onEnqueue: @escaping @Sendable () -> Void,
         onDelete: @escaping @Sendable (String) async -> Void) {
        self.catalog = catalog
        self.storage = storage
        self.configuration = configuration
        self.temporaryDirectory = temporaryDirectory
        self.auth = auth
        self.manifests = manifests
        self.onEnqueue = onEnqueue
        self.onDelete = onDelete
    }

    var intake: TrackIntake {
        TrackIntake(catalog: catalog, storage: storage, configuration: configuration, keys: keys, onEnqueue: onEnqueue)
    }

    /// The track as `principal` may see it: with signed playback URLs when it may stream it,
    /// for one new playback session of `listener` (honoured for admin tokens: a platform's
    /// backend naming its user; default: the principal's subject).
    /// 404 when there is no such track.
    public func resource(id: String, for principal: Principal, now: Date = Date(), listener: String? = nil) async throws -> TrackResource {
        guard let record = try await catalog.track(id: id) else { throw APIError.notFound("no track \(id)") }
        let manifest = manifests.published(record)
        let resource = TrackResource(record, manifest: manifest)
        guard principal.allows(.stream, track: id) else { return resource }
        return try await withPlayback(resource, manifest: manifest, now: now,
                                      subject: (principal.allows(.admin) ? listener : nil) ?? (principal.subject.isEmpty ? nil : principal.subject))
    }

    /// `resource` with a new playback session's URLs, issued to `subject`; for a watermarked
    /// track the session is recorded (with its subject) before its URLs are handed out.
    func withPlayback(_ resource: TrackResource, manifest: TrackManifest?, now: Date, subject: String?) async throws -> TrackResource {
        guard resource.status == .ready else { return resource }
        let token = auth.playbackToken(track: resource.id, now: now, subject: subject)
        if manifest?.watermark != nil, let watermarks, let token, let label = PlaybackSessionLabel.of(token: token) {
            try await watermarks.register(track: resource.id, session: label, subject: subject)
        }
        return resource.withPlayback(auth: auth, now: now, token: token)
    }

    /// A page of tracks, newest first, after the cursor `after` (the previous page's `next`);
    /// playback URLs are issued to `subject` when given.
    public func page(limit: Int, after: String?, now: Date = Date(), subject: String? = nil) async throws -> TrackPage {
        let records = try await catalog.tracks(limit: limit + 1, after: after)
        var page: [TrackResource] = []
        for record in records.prefix(limit) {
            let manifest = manifests.published(record)
            page.append(try await withPlayback(TrackResource(record, manifest: manifest), manifest: manifest, now: now, subject: subject))
        }
        return TrackPage(tracks: Array(page), next: records.count > limit ? page.last?.id : nil)
    }

    /// Deletes the track and every object under its prefix. 404 when there is none; a typed 500
    /// when the catalog row is gone but some objects remain.
    public func delete(id: String) async throws {
        guard try await catalog.deleteTrack(id: id) else { throw APIError.notFound("no track \(id)") }
        do {
            try await storage.delete(prefix: TrackLayout(track: id).prefix)
        } catch {
            await onDelete(id)
            throw APIError(.internalServerError, code: "storage_error", "the track is deleted but some objects remain: \(error)")
        }
        await onDelete(id)
    }

    /// The track an earlier request with `idempotencyKey` created, if any.
    func existing(idempotencyKey: String?) async throws -> TrackRecord? {
        guard let idempotencyKey else { return nil }
        return try await catalog.track(idempotencyKey: idempotencyKey)
    }

    /// Refuses new work while the queue holds ``HostConfiguration/maxQueueDepth`` active jobs.
    func checkQueueDepth() async throws {
        let depth = try await catalog.activeJobCount()
        guard depth < configuration.maxQueueDepth else {
            throw IntakeError(.queueFull, "the transcode queue is full (\(depth) jobs); retry later")
        }
    }

    /// Accepts an object already in storage (uploaded there by the platform, for example straight
    /// to the S3 bucket) as a new track, with the same checks as an upload: the object is copied
    /// to the track's own `source/` key, so the staged object may be removed afterwards.
    ///
    /// Refused: a key that is not a plain relative path, a key under `tracks/` (the host's own
    /// objects, 400), a missing object (404), one over ``HostConfiguration/maxUploadBytes`` (413).
    public func accept(storedObject key: String, idempotencyKey: String?, priority: JobPriority) async throws -> TrackRecord {
        guard !key.isEmpty, key.utf8.count <= 1024, isPlainRelativePath(key) else {
            throw APIError(.badRequest, code: "bad_request", "source_key must be a relative object key (no `..`, no leading `/`)")
        }
        guard !key.hasPrefix(TrackLayout.root) else {
            throw APIError(.badRequest, code: "bad_request", "source_key must not be one of the host's own objects (\(TrackLayout.root)…)")
        }
        if let existing = try await existing(idempotencyKey: idempotencyKey) { return existing }
        try await checkQueueDepth()
        guard let size = try await storage.size(of: key) else { throw APIError.notFound("no object \(key) in storage") }
        let receiver = UploadReceiver(limit: configuration.maxUploadBytes)
        try receiver.checkDeclared(length: size)
        let temporary = temporaryDirectory + "/stored-\(UUID().uuidString)"
        defer { unlink(temporary) }
        try await storage.fetch(key, to: temporary)
        return try await intake.accept(file: temporary, byteCount: size, idempotencyKey: idempotencyKey, priority: priority)
    }
}

/// A page of `GET /v1/tracks` (and of gRPC `ListTracks`).
public struct TrackPage: Codable, Sendable, ResponseEncodable {
    /// Newest first, with signed playback URLs for the ready ones.
    public var tracks: [TrackResource]
    /// Pass as `after` for the next page; absent on the last page.
    public var next: String?
}
