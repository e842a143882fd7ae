public import Foundation
import GRDB

/// The embedded ``Catalog``: one SQLite file in WAL mode (GRDB's `DatabasePool`: concurrent
/// readers, one writer), so tracks and jobs survive a crash of the host at any moment.
///
/// Times are stored as seconds since 1970 (REAL) so that lease and backoff comparisons stay
/// in SQL.
public final class SQLiteCatalog: Catalog {
    private let pool: DatabasePool

    /// Opens (creating and migrating) the database at `path`.
    public init(path: String) throws(CatalogError) {
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            var configuration = Configuration()
            configuration.busyMode = .timeout(10)
            pool = try DatabasePool(path: path, configuration: configuration)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1") { db in
                try db.execute(sql: """
                    CREATE TABLE track (
                        id TEXT PRIMARY KEY,
                        status TEXT NOT NULL,
                        progress REAL NOT NULL DEFAULT 0,
                        created_at REAL NOT NULL,
                        updated_at REAL NOT NULL,
                        source_key TEXT NOT NULL,
                        source_bytes INTEGER NOT NULL,
                        probe_json TEXT NOT NULL,
                        version INTEGER NOT NULL DEFAULT 0,
                        manifest_json TEXT,
                        failure_reason TEXT,
                        job_id TEXT NOT NULL,
                        idempotency_key TEXT UNIQUE
                    );
                    CREATE INDEX track_created ON track(created_at DESC, id DESC);
                    CREATE TABLE job (
                        id TEXT PRIMARY KEY,
                        track_id TEXT NOT NULL,
                        priority INTEGER NOT NULL,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        max_attempts INTEGER NOT NULL,
                        run_after REAL NOT NULL,
                        lease_owner TEXT,
                        lease_expires_at REAL,
                        last_error TEXT,
                        target_version INTEGER NOT NULL,
                        created_at REAL NOT NULL
                    );
                    CREATE INDEX job_runnable ON job(state, priority DESC, created_at);
                    """)
            }
            migrator.registerMigration("v2-revocation") { db in
                try db.execute(sql: "CREATE TABLE revoked_token (jti TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
            }
            migrator.registerMigration("v3-live-mounts") { db in
                try db.execute(sql: "CREATE TABLE live_mount (name TEXT PRIMARY KEY, configuration_json TEXT NOT NULL, updated_at REAL NOT NULL)")
            }
            migrator.registerMigration("v4-live-origins") { db in
                try db.execute(sql: "CREATE TABLE live_origin (mount TEXT PRIMARY KEY, node TEXT NOT NULL, expires_at REAL NOT NULL)")
            }
            migrator.registerMigration("v5-webhooks") { db in
                try db.execute(sql: Self.webhookSchema)
            }
            migrator.registerMigration("v6-listening") { db in
                try db.execute(sql: Self.analyticsSchema)
            }
            migrator.registerMigration("v7-content-keys") { db in
                try db.execute(sql: """
                    CREATE TABLE content_key (track_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, method TEXT NOT NULL,
                        wrapped_key TEXT NOT NULL, kek_id TEXT NOT NULL, created_at REAL NOT NULL)
                    """)
                try db.execute(sql: "CREATE INDEX content_key_kek ON content_key (kek_id)")
            }
            migrator.registerMigration("v8-watermark") { db in
                for statement in Self.watermarkSchema { try db.execute(sql: statement) }
            }
            try migrator.migrate(pool)
        } catch {
            throw CatalogError(.database, "cannot open the catalog at \(path): \(error)")
        }
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(CatalogError) -> T {
        do {
            return try await pool.write(body)
        } catch let error as CatalogError {
            throw error
        } catch {
            throw CatalogError(.database, "\(error)")
        }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(CatalogError) -> T {
        do {
            return try await pool.read(body)
        } catch {
            throw CatalogError(.database, "\(error)")
        }
    }

    private static func track(_ row: Row) -> TrackRecord {
        TrackRecord(
            id: row["id"], status: TrackStatus(rawValue: row["status"]) ?? .failed, progress: row["progress"],
            createdAt: Date(timeIntervalSince1970: row["created_at"]), updatedAt: Date(timeIntervalSince1970: row["updated_at"]),
            sourceKey: row["source_key"], sourceBytes: row["source_bytes"], probeJSON: row["probe_json"], version: row["version"],
            manifestJSON: row["manifest_json"], failureReason: row["failure_reason"], jobID: row["job_id"])
    }

    private static func job(_ row: Row) -> JobRecord {
        JobRecord(
            id: row["id"], trackID: row["track_id"], priority: JobPriority(rawValue: row["priority"]),
            state: JobState(rawValue: row["state"]) ?? .dead, attempts: row["attempts"], maxAttempts: row["max_attempts"],
            runAfter: Date(timeIntervalSince1970: row["run_after"]), leaseOwner: row["lease_owner"],
            leaseExpiresAt: (row["lease_expires_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
            lastError: row["last_error"], targetVersion: row["target_version"], createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }

    public func insert(track: TrackRecord, job: JobRecord, idempotencyKey: String?, maxQueueDepth: Int) async throws(CatalogError) -> InsertOutcome {
        try await write { db in
            if let idempotencyKey, let row = try Row.fetchOne(db, sql: "SELECT * FROM track WHERE idempotency_key = ?", arguments: [idempotencyKey]) {
                return .existing(Self.track(row))
            }
            let active = try Self.activeJobCount(db)
            guard active < maxQueueDepth else {
                throw CatalogError(.queueFull, "\(active) jobs are queued or running (limit \(maxQueueDepth))")
            }
            try db.execute(sql: """
                INSERT INTO track (id, status, progress, created_at, updated_at, source_key, source_bytes, probe_json, version, job_id, idempotency_key)
                VALUES (?, ?, 0, ?, ?, ?, ?, ?, 0, ?, ?)
                """, arguments: [track.id, track.status.rawValue, track.createdAt.timeIntervalSince1970, track.updatedAt.timeIntervalSince1970,
                                 track.sourceKey, track.sourceBytes, track.probeJSON, job.id, idempotencyKey])
            try db.execute(sql: """
                INSERT INTO job (id, track_id, priority, state, attempts, max_attempts, run_after, target_version, created_at)
                VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?)
                """, arguments: [job.id, track.id, job.priority.rawValue, job.maxAttempts, job.runAfter.timeIntervalSince1970,
                                 job.targetVersion, job.createdAt.timeIntervalSince1970])
            try Self.enqueue(.trackCreated(track, at: track.createdAt), db)
            return .created(track)
        }
    }

    public func track(idempotencyKey: String) async throws(CatalogError) -> TrackRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM track WHERE idempotency_key = ?", arguments: [idempotencyKey]).map(Self.track)
        }
    }

    public func track(id: String) async throws(CatalogError) -> TrackRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM track WHERE id = ?", arguments: [id]).map(Self.track)
        }
    }

    public func tracks(limit: Int, after cursor: String?) async throws(CatalogError) -> [TrackRecord] {
        try await read { db in
            if let cursor, let anchor = try Row.fetchOne(db, sql: "SELECT created_at, id FROM track WHERE id = ?", arguments: [cursor]) {
                let created: Double = anchor["created_at"]
                return try Row.fetchAll(db, sql: """
                    SELECT * FROM track WHERE (created_at < ?) OR (created_at = ? AND id < ?)
                    ORDER BY created_at DESC, id DESC LIMIT ?
                    """, arguments: [created, created, cursor, limit]).map(Self.track)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM track ORDER BY created_at DESC, id DESC LIMIT ?", arguments: [limit]).map(Self.track)
        }
    }

    public func deleteTrack(id: String) async throws(CatalogError) -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM job WHERE track_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM track WHERE id = ?", arguments: [id])
            guard db.changesCount > 0 else { return false }
            try db.execute(sql: "DELETE FROM content_key WHERE track_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM watermark_track WHERE track_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM watermark_session WHERE track_id = ?", arguments: [id])
            try Self.enqueue(.trackDeleted(id: id, at: Date()), db)
            return true
        }
    }

    public func activeJobCount() async throws(CatalogError) -> Int {
        try await read { db in try Self.activeJobCount(db) }
    }

    private static func activeJobCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM job WHERE state IN ('queued', 'running')") ?? 0
    }

    public func job(id: String) async throws(CatalogError) -> JobRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ?", arguments: [id]).map(Self.job)
        }
    }

    public func claimJob(owner: String, leaseSeconds: Double, now: Date) async throws(CatalogError) -> JobRecord? {
        let t = now.timeIntervalSince1970
        return try await write { db in
            guard let row = try Row.fetchOne(db, sql: """
                SELECT * FROM job
                WHERE (state = 'queued' AND run_after <= ?) OR (state = 'running' AND lease_expires_at < ?)
                ORDER BY priority DESC, created_at, id LIMIT 1
                """, arguments: [t, t]) else { return nil }
            var job = Self.job(row)
            job.attempts += 1
            job.state = .running
            job.leaseOwner = owner
            job.leaseExpiresAt = Date(timeIntervalSince1970: t + leaseSeconds)
            try db.execute(sql: "UPDATE job SET state = 'running', attempts = ?, lease_owner = ?, lease_expires_at = ? WHERE id = ?",
                           arguments: [job.attempts, owner, t + leaseSeconds, job.id])
            try db.execute(sql: "UPDATE track SET status = 'processing', progress = 0, updated_at = ? WHERE id = ?", arguments: [t, job.trackID])
            return job
        }
    }

    public func heartbeat(jobID: String, owner: String, progress: Double, leaseSeconds: Double, now: Date) async throws(CatalogError) -> Bool {
        let t = now.timeIntervalSince1970
        return try await write { db in
            try db.execute(sql: "UPDATE job SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
                           arguments: [t + leaseSeconds, jobID, owner])
            guard db.changesCount == 1 else { return false }
            try db.execute(sql: "UPDATE track SET progress = ?, updated_at = ? WHERE job_id = ? AND status = 'processing'",
                           arguments: [min(max(progress, 0), 100), t, jobID])
            return true
        }
    }

    public func complete(jobID: String, owner: String, version: Int, manifestJSON: String, now: Date) async throws(CatalogError) -> Bool {
        let t = now.timeIntervalSince1970
        return try await write { db in
            try db.execute(sql: "UPDATE job SET state = 'done', lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ? AND state = 'running'",
                           arguments: [jobID, owner])
            guard db.changesCount == 1 else { return false }
            try db.execute(sql: """
                UPDATE track SET status = 'ready', progress = 100, version = ?, manifest_json = ?, failure_reason = NULL, updated_at = ?
                WHERE job_id = ?
                """, arguments: [version, manifestJSON, t, jobID])
            guard db.changesCount == 1, let track = try String.fetchOne(db, sql: "SELECT id FROM track WHERE job_id = ?", arguments: [jobID]) else {
                return false
            }
            try Self.enqueue(.trackReady(id: track, version: version, at: now), db)
            return true
        }
    }

    public func fail(jobID: String, owner: String, error: String, retryAt: Date?, now: Date) async throws(CatalogError) -> JobState {
        let t = now.timeIntervalSince1970
        return try await write { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM job WHERE id = ? AND lease_owner = ?", arguments: [jobID, owner]) else {
                return .queued   // The lease moved on: someone else owns the job now.
            }
            let job = Self.job(row)
            if let retryAt, job.attempts < job.maxAttempts {
                try db.execute(sql: """
                    UPDATE job SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, last_error = ?, run_after = ? WHERE id = ?
                    """, arguments: [error, retryAt.timeIntervalSince1970, jobID])
                try db.execute(sql: "UPDATE track SET status = 'queued', progress = 0, updated_at = ? WHERE job_id = ?", arguments: [t, jobID])
                return .queued
            }
            try db.execute(sql: "UPDATE job SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL, last_error = ? WHERE id = ?",
                           arguments: [error, jobID])
            try db.execute(sql: "UPDATE track SET status = 'failed', failure_reason = ?, updated_at = ? WHERE job_id = ?", arguments: [error, t, jobID])
            if db.changesCount > 0 { try Self.enqueue(.trackFailed(id: job.trackID, reason: error, at: now), db) }
            return .dead
        }
    }

    public func release(jobID: String, owner: String) async throws(CatalogError) {
        _ = try await write { db in
            try db.execute(sql: """
                UPDATE job SET state = 'queued', attempts = MAX(attempts - 1, 0), lease_owner = NULL, lease_expires_at = NULL
                WHERE id = ? AND lease_owner = ? AND state = 'running'
                """, arguments: [jobID, owner])
            if db.changesCount == 1 {
                try db.execute(sql: "UPDATE track SET status = 'queued', progress = 0 WHERE job_id = ?", arguments: [jobID])
            }
            return true
        }
    }

    public func check() async throws(CatalogError) {
        _ = try await read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    public func revoke(tokenID: String, expiresAt: Date) async throws(CatalogError) {
        let expires = expiresAt.timeIntervalSince1970
        let now = Date().timeIntervalSince1970
        try await write { db in
            try db.execute(sql: "DELETE FROM revoked_token WHERE expires_at < ?", arguments: [now])
            try db.execute(sql: "INSERT INTO revoked_token (jti, expires_at) VALUES (?, ?) ON CONFLICT(jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
                           arguments: [tokenID, expires])
        }
    }

    public func isRevoked(tokenID: String) async throws(CatalogError) -> Bool {
        try await read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM revoked_token WHERE jti = ?", arguments: [tokenID]) ?? false
        }
    }

    public func saveContentKey(_ record: ContentKeyRecord) async throws(CatalogError) -> ContentKeyRecord {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO content_key (track_id, key_id, method, wrapped_key, kek_id, created_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(track_id) DO NOTHING
                """, arguments: [record.trackID, record.keyID, record.method, record.wrappedKey, record.kekID,
                                 record.createdAt.timeIntervalSince1970])
            return try Self.contentKeys(db, "WHERE track_id = ?", [record.trackID]).first ?? record
        }
    }

    public func contentKey(track: String) async throws(CatalogError) -> ContentKeyRecord? {
        try await read { db in try Self.contentKeys(db, "WHERE track_id = ?", [track]).first }
    }

    public func deleteContentKey(track: String) async throws(CatalogError) {
        try await write { db in try db.execute(sql: "DELETE FROM content_key WHERE track_id = ?", arguments: [track]) }
    }

    public func contentKeys(notWrappedBy kekID: String, limit: Int) async throws(CatalogError) -> [ContentKeyRecord] {
        try await read { db in try Self.contentKeys(db, "WHERE kek_id <> ? ORDER BY track_id LIMIT ?", [kekID, limit]) }
    }

    public func rewrapContentKey(_ record: ContentKeyRecord, wrappedKey: String, kekID: String) async throws(CatalogError) -> Bool {
        try await write { db in
            try db.execute(sql: "UPDATE content_key SET wrapped_key = ?, kek_id = ? WHERE track_id = ? AND wrapped_key = ?",
                           arguments: [wrappedKey, kekID, record.trackID, record.wrappedKey])
            return db.changesCount > 0
        }
    }

    private static func contentKeys(_ db: Database, _ clause: String, _ arguments: StatementArguments) throws -> [ContentKeyRecord] {
        try Row.fetchAll(db, sql: "SELECT track_id, key_id, method, wrapped_key, kek_id, created_at FROM content_key " + clause,
                         arguments: arguments).map { row in
            ContentKeyRecord(trackID: row[0], keyID: row[1], method: row[2], wrappedKey: row[3], kekID: row[4],
                             createdAt: Date(timeIntervalSince1970: row[5]))
        }
    }

    /// The watermark tables (SQLite and PostgreSQL alike).
    static let watermarkSchema = [
        "CREATE TABLE watermark_track (track_id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL)",
        """
        CREATE TABLE watermark_session (track_id TEXT NOT NULL, session_id TEXT NOT NULL, subject TEXT, subject_tag TEXT,
            created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (track_id, session_id))
        """,
    ]

    public func markWatermarked(track: String, at date: Date) async throws(CatalogError) {
        try await write { db in
            try db.execute(sql: "INSERT INTO watermark_track (track_id, created_at) VALUES (?, ?) ON CONFLICT(track_id) DO NOTHING",
                           arguments: [track, date.timeIntervalSince1970])
        }
    }

    public func isWatermarked(track: String) async throws(CatalogError) -> Bool {
        try await read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM watermark_track WHERE track_id = ?", arguments: [track]) ?? false }
    }

    public func unmarkWatermarked(track: String) async throws(CatalogError) {
        try await write { db in try db.execute(sql: "DELETE FROM watermark_track WHERE track_id = ?", arguments: [track]) }
    }

    public func recordWatermarkSession(_ record: WatermarkSessionRecord) async throws(CatalogError) {
        try await write { db in
            try db.execute(sql: """
                INSERT INTO watermark_session (track_id, session_id, subject, subject_tag, created_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(track_id, session_id) DO UPDATE SET subject = COALESCE(watermark_session.subject, excluded.subject)
                """, arguments: [record.trackID, record.sessionID, record.subject, record.subjectTag, record.createdAt.timeIntervalSince1970])
        }
    }

    public func watermarkSessions(track: String) async throws(CatalogError) -> [WatermarkSessionRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT track_id, session_id, subject, subject_tag, created_at FROM watermark_session WHERE track_id = ? ORDER BY created_at
                """, arguments: [track]).map { row in
                WatermarkSessionRecord(trackID: row[0], sessionID: row[1], subject: row[2], subjectTag: row[3],
                                       createdAt: Date(timeIntervalSince1970: row[4]))
            }
        }
    }

    public func saveLiveMount(name: String, json: String) async throws(CatalogError) {
        let now = Date().timeIntervalSince1970
        try await write { db in
            try db.execute(sql: """
                INSERT INTO live_mount (name, configuration_json, updated_at) VALUES (?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET configuration_json = excluded.configuration_json, updated_at = excluded.updated_at
                """, arguments: [name, json, now])
        }
    }

    public func deleteLiveMount(name: String) async throws(CatalogError) -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM live_mount WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    public func claimLiveOrigin(mount: String, node: String, leaseSeconds: Double, now: Date) async throws(CatalogError) -> Bool {
        let (at, until) = (now.timeIntervalSince1970, now.timeIntervalSince1970 + leaseSeconds)
        return try await write { db in
            try db.execute(sql: """
                INSERT INTO live_origin (mount, node, expires_at) VALUES (?, ?, ?)
                ON CONFLICT(mount) DO UPDATE SET node = excluded.node, expires_at = excluded.expires_at
                WHERE live_origin.node = excluded.node OR live_origin.expires_at < ?
                """, arguments: [mount, node, until, at])
            return db.changesCount > 0
        }
    }

    public func releaseLiveOrigin(mount: String, node: String) async throws(CatalogError) {
        try await write { db in
            try db.execute(sql: "DELETE FROM live_origin WHERE mount = ? AND node = ?", arguments: [mount, node])
        }
    }

    public func liveOrigin(mount: String, now: Date) async throws(CatalogError) -> String? {
        let at = now.timeIntervalSince1970
        return try await read { db in
            try String.fetchOne(db, sql: "SELECT node FROM live_origin WHERE mount = ? AND expires_at >= ?", arguments: [mount, at])
        }
    }

    public func liveMounts() async throws(CatalogError) -> [(name: String, json: String)] {
        let rows = try await read { db in
            try Row.fetchAll(db, sql: "SELECT name, configuration_json FROM live_mount ORDER BY name").map { [$0["name"] as String, $0["configuration_json"] as String] }
        }
        return rows.map { (name: $0[0], json: $0[1]) }
    }
}
