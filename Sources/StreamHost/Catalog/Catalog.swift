public import Foundation

/// Where a track is in its life.
public enum TrackStatus: String, Codable, Sendable {
    /// Accepted; its job waits for a worker.
    case queued
    /// A worker is packaging it (see ``TrackRecord/progress``).
    case processing
    /// Published: every rendition and `manifest.json` are in storage.
    case ready
    /// Its job failed every attempt; ``TrackRecord/failureReason`` says why.
    case failed
}

/// A track in the catalog.
public struct TrackRecord: Sendable, Codable, Hashable {
    public var id: String
    public var status: TrackStatus
    /// Packaging progress, 0–100.
    public var progress: Double
    public var createdAt: Date
    public var updatedAt: Date
    /// Storage key of the kept original (`tracks/{id}/source/original.{ext}`).
    public var sourceKey: String
    public var sourceBytes: Int
    /// The probe of the upload, as MediaCore's JSON.
    public var probeJSON: String
    /// Published version `n` (`tracks/{id}/v{n}/`); 0 until the first publish.
    public var version: Int
    /// The published `manifest.json`, once ready.
    public var manifestJSON: String?
    /// Why the track failed, when it did.
    public var failureReason: String?
    /// The job that is packaging (or packaged) it.
    public var jobID: String

    public init(id: String, status: TrackStatus, progress: Double, createdAt: Date, updatedAt: Date, sourceKey: String,
                sourceBytes: Int, probeJSON: String, version: Int, manifestJSON: String?, failureReason: String?, jobID: String) {
        self.id = id
        self.status = status
        self.progress = progress
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.sourceKey = sourceKey
        self.sourceBytes = sourceBytes
        self.probeJSON = probeJSON
        self.version = version
        self.manifestJSON = manifestJSON
        self.failureReason = failureReason
        self.jobID = jobID
    }
}

/// A job's state in the durable queue.
public enum JobState: String, Codable, Sendable {
    /// Waiting (possibly until ``JobRecord/runAfter``, when it is a retry).
    case queued
    /// Leased by a worker until ``JobRecord/leaseExpiresAt``.
    case running
    /// Finished and published.
    case done
    /// Failed ``JobRecord/maxAttempts`` times: kept with its last error, not retried.
    case dead
}

/// How urgent a job is: interactive uploads run before back-catalogue re-transcodes.
public struct JobPriority: RawRepresentable, Sendable, Hashable, Codable, Comparable {
    public var rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// A user is waiting for this upload.
    public static let interactive = JobPriority(rawValue: 100)
    /// Re-transcodes of the back catalogue.
    public static let backCatalogue = JobPriority(rawValue: 0)
    public static func < (a: JobPriority, b: JobPriority) -> Bool { a.rawValue < b.rawValue }
}

/// A packaging job.
public struct JobRecord: Sendable, Codable, Hashable {
    public var id: String
    public var trackID: String
    public var priority: JobPriority
    public var state: JobState
    /// Attempts started so far (a lease taken counts as an attempt).
    public var attempts: Int
    public var maxAttempts: Int
    /// Not to be claimed before this time (retry backoff).
    public var runAfter: Date
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var lastError: String?
    /// The version this job publishes (`v{n}`).
    public var targetVersion: Int
    public var createdAt: Date

    public init(id: String, trackID: String, priority: JobPriority, state: JobState, attempts: Int, maxAttempts: Int, runAfter: Date,
                leaseOwner: String?, leaseExpiresAt: Date?, lastError: String?, targetVersion: Int, createdAt: Date) {
        self.id = id
        self.trackID = trackID
        self.priority = priority
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.runAfter = runAfter
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.lastError = lastError
        self.targetVersion = targetVersion
        self.createdAt = createdAt
    }
}

/// A catalog or queue failure.
public struct CatalogError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// Accepting the job would exceed the queue's depth limit.
        case queueFull = "queue_full"
        /// The database failed.
        case database
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// What ``Catalog/insert(track:job:idempotencyKey:maxQueueDepth:)`` did.
public enum InsertOutcome: Sendable {
    /// The track and its job were recorded.
    case created(TrackRecord)
    /// The idempotency key was already used: the existing track, nothing new recorded.
    case existing(TrackRecord)
}

/// The catalog of tracks and the durable job queue, in one store so that a track and its job
/// change together.
///
/// The embedded default is ``SQLiteCatalog``; a PostgreSQL implementation (leases with
/// `FOR UPDATE SKIP LOCKED`) can stand in without touching the pipeline.
public protocol Catalog: Sendable {
    /// Records a new track and its job atomically, unless `idempotencyKey` was seen (then
    /// the earlier track comes back) or the queue already holds `maxQueueDepth` active jobs.
    func insert(track: TrackRecord, job: JobRecord, idempotencyKey: String?, maxQueueDepth: Int) async throws(CatalogError) -> InsertOutcome
    /// The track whose upload used `idempotencyKey`.
    func track(idempotencyKey: String) async throws(CatalogError) -> TrackRecord?
    func track(id: String) async throws(CatalogError) -> TrackRecord?
    /// Tracks newest first, after the cursor (a track id from the previous page).
    func tracks(limit: Int, after cursor: String?) async throws(CatalogError) -> [TrackRecord]
    /// Removes the track and its jobs; false when there was none.
    func deleteTrack(id: String) async throws(CatalogError) -> Bool
    /// Jobs queued or running.
    func activeJobCount() async throws(CatalogError) -> Int
    func job(id: String) async throws(CatalogError) -> JobRecord?
    /// Leases the most urgent runnable job (queued and due, or running with an expired
    /// lease) to `owner`, counting an attempt, and marks its track processing.
    func claimJob(owner: String, leaseSeconds: Double, now: Date) async throws(CatalogError) -> JobRecord?
    /// Extends the lease and stores progress; false when `owner` no longer holds the lease.
    func heartbeat(jobID: String, owner: String, progress: Double, leaseSeconds: Double, now: Date) async throws(CatalogError) -> Bool
    /// Marks the job done and the track ready at `version`; false when the lease or the
    /// track is gone (the caller then removes what it published).
    func complete(jobID: String, owner: String, version: Int, manifestJSON: String, now: Date) async throws(CatalogError) -> Bool
    /// Records a failed attempt: queued again from `retryAt`, or dead (track failed) when
    /// `retryAt` is nil or the attempts are used up. Returns the new state.
    func fail(jobID: String, owner: String, error: String, retryAt: Date?, now: Date) async throws(CatalogError) -> JobState
    /// Gives the lease back without counting the attempt (graceful shutdown).
    func release(jobID: String, owner: String) async throws(CatalogError)
    /// Proves the store answers (for `/readyz`).
    func check() async throws(CatalogError)
    /// Adds an access-token id to the revocation list until `expiresAt` (after which the token
    /// is refused by its `exp` anyway and the entry may be forgotten).
    func revoke(tokenID: String, expiresAt: Date) async throws(CatalogError)
    /// Whether the token id was revoked.
    func isRevoked(tokenID: String) async throws(CatalogError) -> Bool
    /// Stores a track's content key (wrapped) unless the track has one already; returns the
    /// track's key as stored (the existing one when there was one).
    func saveContentKey(_ record: ContentKeyRecord) async throws(CatalogError) -> ContentKeyRecord
    /// The track's content key, if it has one (the track is protected).
    func contentKey(track: String) async throws(CatalogError) -> ContentKeyRecord?
    /// Forgets the track's content key (an upload that turned out to repeat an earlier one).
    func deleteContentKey(track: String) async throws(CatalogError)
    /// Up to `limit` content keys wrapped by a KEK other than `kekID`.
    func contentKeys(notWrappedBy kekID: String, limit: Int) async throws(CatalogError) -> [ContentKeyRecord]
    /// Replaces the wrapping of `record` (as read) by `wrappedKey` under `kekID`; false when the
    /// row changed meanwhile (another host re-wrapped it).
    func rewrapContentKey(_ record: ContentKeyRecord, wrappedKey: String, kekID: String) async throws(CatalogError) -> Bool

    /// Records that `track` is packaged with forensic watermarks (before its job exists).
    func markWatermarked(track: String, at: Date) async throws(CatalogError)
    /// Whether `track` is packaged with forensic watermarks.
    func isWatermarked(track: String) async throws(CatalogError) -> Bool
    /// Forgets the mark (an upload that turned out to repeat an earlier one).
    func unmarkWatermarked(track: String) async throws(CatalogError)
    /// Records a playback session of a watermarked track, unless it is known; a known session
    /// gains its subject when this record has one and the stored one has none.
    func recordWatermarkSession(_ record: WatermarkSessionRecord) async throws(CatalogError)
    /// Every playback session recorded for `track`: the watermark detector's candidates.
    func watermarkSessions(track: String) async throws(CatalogError) -> [WatermarkSessionRecord]

    /// Calls `handler` when a job may have become available anywhere (PostgreSQL: LISTEN/NOTIFY),
    /// so idle workers wake before their next poll. Stores without notifications do nothing.
    func onJobAvailable(_ handler: @escaping @Sendable () -> Void)

    /// Stores a live mount created through the API (its configuration as JSON), replacing one
    /// of that name: mounts outlive a restart and every host on the catalog knows them.
    func saveLiveMount(name: String, json: String) async throws(CatalogError)
    /// Forgets a stored live mount; false when there was none.
    func deleteLiveMount(name: String) async throws(CatalogError) -> Bool
    /// The stored live mounts (name, configuration JSON), by name.
    func liveMounts() async throws(CatalogError) -> [(name: String, json: String)]
    /// Claims `node` (its advertised URL) as the origin of live mount `mount` until
    /// `now + leaseSeconds`, or renews its claim; false while another node holds a claim that
    /// has not expired.
    func claimLiveOrigin(mount: String, node: String, leaseSeconds: Double, now: Date) async throws(CatalogError) -> Bool
    /// Gives up `node`'s claim on `mount` (the show ended).
    func releaseLiveOrigin(mount: String, node: String) async throws(CatalogError)
    /// The node whose claim on `mount` has not expired at `now`, if any.
    func liveOrigin(mount: String, now: Date) async throws(CatalogError) -> String?

    // Webhooks. ``insert(track:job:idempotencyKey:maxQueueDepth:)``, ``complete(jobID:owner:version:manifestJSON:now:)``,
    // ``fail(jobID:owner:error:retryAt:now:)`` (when the job is dead) and ``deleteTrack(id:)`` write their
    // ``HostEvent`` to the outbox in their own transaction, with a delivery for every endpoint subscribed then.

    /// Records a subscription.
    func createWebhook(_ endpoint: WebhookEndpoint) async throws(CatalogError)
    /// The subscriptions, oldest first.
    func webhooks() async throws(CatalogError) -> [WebhookEndpoint]
    func webhook(id: String) async throws(CatalogError) -> WebhookEndpoint?
    /// Removes a subscription and its deliveries; false when there was none.
    func deleteWebhook(id: String) async throws(CatalogError) -> Bool
    /// Writes an event that no catalog change carries (a live show starting or ending) to the
    /// outbox, with a delivery for every endpoint subscribed to its type.
    func appendEvent(_ event: HostEvent) async throws(CatalogError)
    /// Leases up to `limit` due deliveries to `owner` for `leaseSeconds`, oldest event first. A
    /// delivery waits while an earlier event of the same subject to the same endpoint is still
    /// pending, so each endpoint hears of a resource in order.
    func claimWebhookDeliveries(owner: String, limit: Int, leaseSeconds: Double, now: Date) async throws(CatalogError) -> [PendingWebhookDelivery]
    /// Records attempts' outcomes in one transaction (a dispatcher records them in batches: one
    /// commit, one sync of the database, for many deliveries); each is ignored when `owner` no
    /// longer holds its lease.
    func finishWebhookDeliveries(_ outcomes: [(id: String, outcome: WebhookAttemptOutcome)], owner: String, now: Date) async throws(CatalogError)
    /// An endpoint's deliveries, newest first, optionally in one state.
    func webhookDeliveries(endpoint: String, state: WebhookDeliveryState?, limit: Int) async throws(CatalogError) -> [WebhookDeliveryRecord]
    /// Puts a failed delivery back to pending, due at `now`; false when there is no such failed delivery.
    func retryWebhookDelivery(id: String, endpoint: String, now: Date) async throws(CatalogError) -> Bool
    /// Up to `limit` events of the outbox in commit order after `cursor` (``EventCursor/start``:
    /// from the oldest event still kept). Only events whose transaction has committed, and after
    /// which no earlier-ordered event can still appear, are returned: a reader that follows the
    /// cursor sees every event once.
    func events(after cursor: EventCursor, limit: Int) async throws(CatalogError) -> [LoggedEvent]
    /// The cursor of the newest event ``events(after:limit:)`` can return now (``EventCursor/start``
    /// when there is none): where a stream of events "from now on" begins.
    func latestEventCursor() async throws(CatalogError) -> EventCursor
    /// Forgets delivered deliveries, and events left with none, created before `cutoff`
    /// (failed ones stay until their endpoint is deleted).
    func pruneWebhookHistory(before cutoff: Date) async throws(CatalogError)
}

extension Catalog {
    public func onJobAvailable(_ handler: @escaping @Sendable () -> Void) {}
}

/// A playback session of a watermarked track, as the watermark detector names it: its session id
/// (which fixes the sequence of A/B variants it was served), and the token subject it was issued
/// to, when the session was started by an API token, or at least that subject's tag.
public struct WatermarkSessionRecord: Sendable, Hashable {
    public var trackID: String
    public var sessionID: String
    /// The API token's subject the session was issued to (nil: unknown, e.g. a session started
    /// from a signed URL made elsewhere; see ``subjectTag``).
    public var subject: String?
    /// The subject's tag in the playback token (``HostAuth/subjectTag(_:)``), when it had one.
    public var subjectTag: String?
    public var createdAt: Date

    public init(trackID: String, sessionID: String, subject: String?, subjectTag: String?, createdAt: Date) {
        self.trackID = trackID
        self.sessionID = sessionID
        self.subject = subject
        self.subjectTag = subjectTag
        self.createdAt = createdAt
    }
}

/// A track's content key as the catalog keeps it: wrapped by a key-encryption key, never in
/// the clear. Deleting the track deletes it, which leaves whatever copies of the encrypted
/// segments remain (in caches, on disks) undecryptable.
public struct ContentKeyRecord: Sendable, Hashable {
    public var trackID: String
    /// 32 hex digits naming the key: the last component of its HLS key URI.
    public var keyID: String
    /// The protection method (`aes-128`).
    public var method: String
    /// The wrapped key (``KeyService``): base64 of AES-256-GCM nonce, ciphertext and tag.
    public var wrappedKey: String
    /// The id of the KEK that wrapped it.
    public var kekID: String
    public var createdAt: Date

    public init(trackID: String, keyID: String, method: String, wrappedKey: String, kekID: String, createdAt: Date) {
        self.trackID = trackID
        self.keyID = keyID
        self.method = method
        self.wrappedKey = wrappedKey
        self.kekID = kekID
        self.createdAt = createdAt
    }
}
