public import Foundation
public import Logging
import PostgresNIO
public import ServiceLifecycle
import Synchronization

/// The ``Catalog`` for many hosts and workers: tracks and the job queue in PostgreSQL
/// (postgres-nio's pooled `PostgresClient`).
///
/// Jobs are claimed with `SELECT … FOR UPDATE SKIP LOCKED` under a lease, so any number of
/// `streamhost worker` processes on any machines share one queue and a crashed worker's job is
/// claimed again when its lease expires; an enqueue sends `NOTIFY veza_jobs` so idle workers
/// wake at once instead of at their next poll. The schema is created and upgraded at start-up by
/// versioned migrations (table `veza_schema_migrations`), serialised by an advisory lock so that
/// hosts starting together do not race. Times are seconds since 1970 (`DOUBLE PRECISION`), as in
/// ``SQLiteCatalog``, so both stores answer the same questions the same way.
public final class PostgresCatalog: Catalog, Service {
    let client: PostgresClient
    let logger: Logger
    private let startup = StartupGate(what: "the PostgreSQL catalog")
    private let listeners = Mutex<[@Sendable () -> Void]>([])

    /// The NOTIFY channel of the job queue.
    static let channel = "veza_jobs"

    /// Configures the pool for `url` (`postgres://user:password@host:port/database`); nothing
    /// connects yet. ``run()`` (a ServiceLifecycle `Service`, run by the host's service group)
    /// runs the pool, applies the migrations and listens for job notifications; queries made
    /// before the migrations are applied wait for them.
    public init(url: String, logger: Logger = Logger(label: "veza.postgres")) throws(CatalogError) {
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
              let host = components.host, let user = components.user else {
            throw CatalogError(.database, "postgres.url must look like postgres://user:password@host:port/database")
        }
        let database = String(components.path.drop { $0 == "/" })
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user, password: components.password,
            database: database.isEmpty ? nil : database, tls: .disable)
        configuration.options.maximumConnections = 8
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
    }

    /// Runs the connection pool, applies the migrations (queries wait until they are), then
    /// listens for job notifications until graceful shutdown. Put it before the services that
    /// use the catalog in a `ServiceGroup` (``StreamHostServer/services`` does) so that it stops
    /// after them. Throws when the database cannot be reached or migrated at start-up.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.client.run() }
            do {
                try await migrate()
            } catch {
                let failure = CatalogError(.database, "cannot open the PostgreSQL catalog: \(String(reflecting: error))")
                startup.fail(failure)
                throw failure
            }
            startup.open()
            group.addTask { await self.relayJobNotifications() }
            // Stop when the group shuts down gracefully (the services that use the catalog are
            // stopped first) or is cancelled.
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    // MARK: Helpers

    /// Runs one database call once the catalog is migrated, as the catalog's typed error.
    func perform<T: Sendable>(_ body: () async throws -> T) async throws(CatalogError) -> T {
        try await startup.wait()
        do {
            return try await body()
        } catch let error as CatalogError {
            throw error
        } catch {
            throw CatalogError(.database, String(reflecting: error))
        }
    }

    private static let trackColumns = "id, status, progress, created_at, updated_at, source_key, source_bytes, probe_json, version, manifest_json, failure_reason, job_id"
    private static let jobColumns = "id, track_id, priority, state, attempts, max_attempts, run_after, lease_owner, lease_expires_at, last_error, target_version, created_at"

    private static func track(_ row: PostgresRow) throws -> TrackRecord {
        let r = row.makeRandomAccess()
        return TrackRecord(
            id: try r["id"].decode(String.self), status: TrackStatus(rawValue: try r["status"].decode(String.self)) ?? .failed,
            progress: try r["progress"].decode(Double.self),
            createdAt: Date(timeIntervalSince1970: try r["created_at"].decode(Double.self)),
            updatedAt: Date(timeIntervalSince1970: try r["updated_at"].decode(Double.self)),
            sourceKey: try r["source_key"].decode(String.self), sourceBytes: try r["source_bytes"].decode(Int.self),
            probeJSON: try r["probe_json"].decode(String.self), version: try r["version"].decode(Int.self),
            manifestJSON: try r["manifest_json"].decode(String?.self), failureReason: try r["failure_reason"].decode(String?.self),
            jobID: try r["job_id"].decode(String.self))
    }

    private static func job(_ row: PostgresRow) throws -> JobRecord {
        let r = row.makeRandomAccess()
        return JobRecord(
            id: try r["id"].decode(String.self), trackID: try r["track_id"].decode(String.self),
            priority: JobPriority(rawValue: try r["priority"].decode(Int.self)),
            state: JobState(rawValue: try r["state"].decode(String.self)) ?? .dead,
            attempts: try r["attempts"].decode(Int.self), maxAttempts: try r["max_attempts"].decode(Int.self),
            runAfter: Date(timeIntervalSince1970: try r["run_after"].decode(Double.self)),
            leaseOwner: try r["lease_owner"].decode(String?.self),
            leaseExpiresAt: try r["lease_expires_at"].decode(Double?.self).map(Date.init(timeIntervalSince1970:)),
            lastError: try r["last_error"].decode(String?.self), targetVersion: try r["target_version"].decode(Int.self),
            createdAt: Date(timeIntervalSince1970: try r["created_at"].decode(Double.self)))
    }

    static func first<T>(_ rows: PostgresRowSequence, _ map: (PostgresRow) throws -> T) async throws -> T? {
        for try await row in rows { return try map(row) }
        return nil
    }

    static func all<T>(_ rows: PostgresRowSequence, _ map: (PostgresRow) throws -> T) async throws -> [T] {
        var out: [T] = []
        for try await row in rows { out.append(try map(row)) }
        return out
    }

    // MARK: Catalog

    public func insert(track: TrackRecord, job: JobRecord, idempotencyKey: String?, maxQueueDepth: Int) async throws(CatalogError) -> InsertOutcome {
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> InsertOutcome in
                // Serialise enqueues so the depth limit and the idempotency key hold across hosts.
                try await connection.query("SELECT pg_advisory_xact_lock(7446012)", logger: logger)
                if let idempotencyKey,
                   let existing = try await Self.first(try await connection.query(
                       "SELECT \(unescaped: Self.trackColumns) FROM track WHERE idempotency_key = \(idempotencyKey)", logger: logger), Self.track) {
                    return .existing(existing)
                }
                let active = try await Self.first(try await connection.query(
                    "SELECT COUNT(*)::BIGINT FROM job WHERE state IN ('queued', 'running')", logger: logger)) { try $0.decode(Int.self) } ?? 0
                guard active < maxQueueDepth else {
                    throw CatalogError(.queueFull, "\(active) jobs are queued or running (limit \(maxQueueDepth))")
                }
                try await connection.query("""
                    INSERT INTO track (id, status, progress, created_at, updated_at, source_key, source_bytes, probe_json, version, job_id, idempotency_key)
                    VALUES (\(track.id), \(track.status.rawValue), 0, \(track.createdAt.timeIntervalSince1970), \(track.updatedAt.timeIntervalSince1970),
                            \(track.sourceKey), \(track.sourceBytes), \(track.probeJSON), 0, \(job.id), \(idempotencyKey))
                    """, logger: logger)
                try await connection.query("""
                    INSERT INTO job (id, track_id, priority, state, attempts, max_attempts, run_after, target_version, created_at)
                    VALUES (\(job.id), \(track.id), \(job.priority.rawValue), 'queued', 0, \(job.maxAttempts), \(job.runAfter.timeIntervalSince1970),
                            \(job.targetVersion), \(job.createdAt.timeIntervalSince1970))
                    """, logger: logger)
                try await Self.enqueue(.trackCreated(track, at: track.createdAt), connection, logger)
                try await connection.query("NOTIFY \(unescaped: Self.channel)", logger: logger)
                return .created(track)
            }
        }
    }

    public func track(idempotencyKey: String) async throws(CatalogError) -> TrackRecord? {
        try await perform {
            try await Self.first(try await client.query(
                "SELECT \(unescaped: Self.trackColumns) FROM track WHERE idempotency_key = \(idempotencyKey)", logger: logger), Self.track)
        }
    }

    public func track(id: String) async throws(CatalogError) -> TrackRecord? {
        try await perform {
            try await Self.first(try await client.query("SELECT \(unescaped: Self.trackColumns) FROM track WHERE id = \(id)", logger: logger), Self.track)
        }
    }

    public func tracks(limit: Int, after cursor: String?) async throws(CatalogError) -> [TrackRecord] {
        try await perform {
            if let cursor {
                return try await Self.all(try await client.query("""
                    SELECT \(unescaped: Self.trackColumns) FROM track t
                    WHERE EXISTS (SELECT 1 FROM track a WHERE a.id = \(cursor))
                      AND (t.created_at, t.id) < (SELECT a.created_at, a.id FROM track a WHERE a.id = \(cursor))
                    ORDER BY t.created_at DESC, t.id DESC LIMIT \(limit)
                    """, logger: logger), Self.track)
            }
            return try await Self.all(try await client.query(
                "SELECT \(unescaped: Self.trackColumns) FROM track ORDER BY created_at DESC, id DESC LIMIT \(limit)", logger: logger), Self.track)
        }
    }

    public func deleteTrack(id: String) async throws(CatalogError) -> Bool {
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> Bool in
                try await connection.query("DELETE FROM job WHERE track_id = \(id)", logger: logger)
                let deleted = try await Self.first(try await connection.query(
                    "DELETE FROM track WHERE id = \(id) RETURNING id", logger: logger)) { try $0.decode(String.self) }
                guard deleted != nil else { return false }
                try await connection.query("DELETE FROM content_key WHERE track_id = \(id)", logger: logger)
                try await connection.query("DELETE FROM watermark_track WHERE track_id = \(id)", logger: logger)
                try await connection.query("DELETE FROM watermark_session WHERE track_id = \(id)", logger: logger)
                try await Self.enqueue(.trackDeleted(id: id, at: Date()), connection, logger)
                return true
            }
        }
    }

    public func activeJobCount() async throws(CatalogError) -> Int {
        try await perform {
            try await Self.first(try await client.query(
                "SELECT COUNT(*)::BIGINT FROM job WHERE state IN ('queued', 'running')", logger: logger)) { try $0.decode(Int.self) } ?? 0
        }
    }

    public func job(id: String) async throws(CatalogError) -> JobRecord? {
        try await perform {
            try await Self.first(try await client.query("SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(id)", logger: logger), Self.job)
        }
    }

    public func claimJob(owner: String, leaseSeconds: Double, now: Date) async throws(CatalogError) -> JobRecord? {
        let t = now.timeIntervalSince1970
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> JobRecord? in
                guard let job = try await Self.first(try await connection.query("""
                    WITH next AS (
                        SELECT id FROM job
                        WHERE (state = 'queued' AND run_after <= \(t)) OR (state = 'running' AND lease_expires_at < \(t))
                        ORDER BY priority DESC, created_at, id
                        LIMIT 1
                        FOR UPDATE SKIP LOCKED
                    )
                    UPDATE job SET state = 'running', attempts = job.attempts + 1, lease_owner = \(owner), lease_expires_at = \(t + leaseSeconds)
                    FROM next WHERE job.id = next.id
                    RETURNING \(unescaped: Self.jobColumns.split(separator: ",").map { "job." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
                    """, logger: logger), Self.job) else { return nil }
                try await connection.query(
                    "UPDATE track SET status = 'processing', progress = 0, updated_at = \(t) WHERE id = \(job.trackID)", logger: logger)
                return job
            }
        }
    }

    public func heartbeat(jobID: String, owner: String, progress: Double, leaseSeconds: Double, now: Date) async throws(CatalogError) -> Bool {
        let t = now.timeIntervalSince1970
        let clamped = min(max(progress, 0), 100)
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> Bool in
                let held = try await Self.first(try await connection.query("""
                    UPDATE job SET lease_expires_at = \(t + leaseSeconds) WHERE id = \(jobID) AND lease_owner = \(owner) AND state = 'running'
                    RETURNING id
                    """, logger: logger)) { try $0.decode(String.self) } != nil
                guard held else { return false }
                try await connection.query("""
                    UPDATE track SET progress = \(clamped), updated_at = \(t) WHERE job_id = \(jobID) AND status = 'processing'
                    """, logger: logger)
                return true
            }
        }
    }

    public func complete(jobID: String, owner: String, version: Int, manifestJSON: String, now: Date) async throws(CatalogError) -> Bool {
        let t = now.timeIntervalSince1970
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> Bool in
                let done = try await Self.first(try await connection.query("""
                    UPDATE job SET state = 'done', lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = \(jobID) AND lease_owner = \(owner) AND state = 'running' RETURNING id
                    """, logger: logger)) { try $0.decode(String.self) } != nil
                guard done else { return false }
                guard let track = try await Self.first(try await connection.query("""
                    UPDATE track SET status = 'ready', progress = 100, version = \(version), manifest_json = \(manifestJSON),
                           failure_reason = NULL, updated_at = \(t)
                    WHERE job_id = \(jobID) RETURNING id
                    """, logger: logger), { try $0.decode(String.self) }) else { return false }
                try await Self.enqueue(.trackReady(id: track, version: version, at: now), connection, logger)
                return true
            }
        }
    }

    public func fail(jobID: String, owner: String, error: String, retryAt: Date?, now: Date) async throws(CatalogError) -> JobState {
        let t = now.timeIntervalSince1970
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> JobState in
                guard let job = try await Self.first(try await connection.query(
                    "SELECT \(unescaped: Self.jobColumns) FROM job WHERE id = \(jobID) AND lease_owner = \(owner) FOR UPDATE", logger: logger), Self.job)
                else { return .queued }   // The lease moved on: someone else owns the job now.
                if let retryAt, job.attempts < job.maxAttempts {
                    try await connection.query("""
                        UPDATE job SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, last_error = \(error),
                               run_after = \(retryAt.timeIntervalSince1970) WHERE id = \(jobID)
                        """, logger: logger)
                    try await connection.query(
                        "UPDATE track SET status = 'queued', progress = 0, updated_at = \(t) WHERE job_id = \(jobID)", logger: logger)
                    return .queued
                }
                try await connection.query("""
                    UPDATE job SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL, last_error = \(error) WHERE id = \(jobID)
                    """, logger: logger)
                let failed = try await Self.first(try await connection.query("""
                    UPDATE track SET status = 'failed', failure_reason = \(error), updated_at = \(t) WHERE job_id = \(jobID) RETURNING id
                    """, logger: logger)) { try $0.decode(String.self) }
                if let failed { try await Self.enqueue(.trackFailed(id: failed, reason: error, at: now), connection, logger) }
                return .dead
            }
        }
    }

    public func release(jobID: String, owner: String) async throws(CatalogError) {
        let logger = self.logger
        try await perform {
            try await client.withTransaction(logger: logger) { connection in
                let released = try await Self.first(try await connection.query("""
                    UPDATE job SET state = 'queued', attempts = GREATEST(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = \(jobID) AND lease_owner = \(owner) AND state = 'running' RETURNING id
                    """, logger: logger)) { try $0.decode(String.self) } != nil
                if released {
                    try await connection.query("UPDATE track SET status = 'queued', progress = 0 WHERE job_id = \(jobID)", logger: logger)
                    try await connection.query("NOTIFY \(unescaped: Self.channel)", logger: logger)
                }
            }
        }
    }

    public func check() async throws(CatalogError) {
        _ = try await perform { try await Self.first(try await client.query("SELECT 1::BIGINT", logger: logger)) { try $0.decode(Int.self) } }
    }

    public func revoke(tokenID: String, expiresAt: Date) async throws(CatalogError) {
        let expires = expiresAt.timeIntervalSince1970
        let now = Date().timeIntervalSince1970
        let logger = self.logger
        try await perform {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("DELETE FROM revoked_token WHERE expires_at < \(now)", logger: logger)
                try await connection.query("""
                    INSERT INTO revoked_token (jti, expires_at) VALUES (\(tokenID), \(expires))
                    ON CONFLICT (jti) DO UPDATE SET expires_at = GREATEST(revoked_token.expires_at, EXCLUDED.expires_at)
                    """, logger: logger)
            }
        }
    }

    public func isRevoked(tokenID: String) async throws(CatalogError) -> Bool {
        try await perform {
            try await Self.first(try await client.query("SELECT 1::BIGINT FROM revoked_token WHERE jti = \(tokenID)", logger: logger)) { _ in true } ?? false
        }
    }

    /// Calls `handler` whenever a job is enqueued or released anywhere (`LISTEN veza_jobs`,
    /// relayed while the catalog runs).
    public func onJobAvailable(_ handler: @escaping @Sendable () -> Void) {
        listeners.withLock { $0.append(handler) }
    }

    /// Holds one connection listening on ``channel`` and calls the handlers on each
    /// notification; re-established a second after a failure, until cancelled.
    private func relayJobNotifications() async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: Self.channel) { notifications in
                        for try await _ in notifications {
                            for listener in self.listeners.withLock({ $0 }) { listener() }
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("job notifications interrupted; reconnecting", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
