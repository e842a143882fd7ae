import Logging
import PostgresNIO

/// The PostgreSQL catalog's schema: versioned migrations, each applied once (table
/// `veza_schema_migrations`), serialised across hosts by an advisory lock.
extension PostgresCatalog {
    /// Versioned schema changes, applied in order, each once.
    static let migrations: [(version: Int, sql: [String])] = [
        (1, [
            """
            CREATE TABLE track (
                id TEXT PRIMARY KEY,
                status TEXT NOT NULL,
                progress DOUBLE PRECISION NOT NULL DEFAULT 0,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                source_key TEXT NOT NULL,
                source_bytes BIGINT NOT NULL,
                probe_json TEXT NOT NULL,
                version BIGINT NOT NULL DEFAULT 0,
                manifest_json TEXT,
                failure_reason TEXT,
                job_id TEXT NOT NULL,
                idempotency_key TEXT UNIQUE
            )
            """,
            "CREATE INDEX track_created ON track (created_at DESC, id DESC)",
            """
            CREATE TABLE job (
                id TEXT PRIMARY KEY,
                track_id TEXT NOT NULL,
                priority BIGINT NOT NULL,
                state TEXT NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0,
                max_attempts BIGINT NOT NULL,
                run_after DOUBLE PRECISION NOT NULL,
                lease_owner TEXT,
                lease_expires_at DOUBLE PRECISION,
                last_error TEXT,
                target_version BIGINT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX job_runnable ON job (state, priority DESC, created_at)",
            "CREATE INDEX job_track ON job (track_id)",
        ]),
        (2, ["CREATE TABLE revoked_token (jti TEXT PRIMARY KEY, expires_at DOUBLE PRECISION NOT NULL)"]),
        (3, ["CREATE TABLE live_mount (name TEXT PRIMARY KEY, configuration_json TEXT NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())"]),
        (4, ["CREATE TABLE live_origin (mount TEXT PRIMARY KEY, node TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)"]),
        (5, [
            """
            CREATE TABLE webhook_endpoint (
                id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL, description TEXT,
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE webhook_event (
                seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE webhook_delivery (
                id TEXT PRIMARY KEY, event_seq BIGINT NOT NULL, endpoint_id TEXT NOT NULL, subject TEXT NOT NULL, state TEXT NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0, next_attempt_at DOUBLE PRECISION NOT NULL, lease_owner TEXT,
                lease_expires_at DOUBLE PRECISION, last_status BIGINT, last_error TEXT, created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX webhook_delivery_due ON webhook_delivery (state, next_attempt_at)",
            "CREATE INDEX webhook_delivery_order ON webhook_delivery (endpoint_id, subject, state, event_seq)",
            "CREATE INDEX webhook_delivery_event ON webhook_delivery (event_seq)",
        ]),
        // The writing transaction of each event, for readers of the outbox in commit order
        // (``PostgresCatalog/events(after:limit:)``). Rows already there get this migration's id.
        (6, [
            "ALTER TABLE webhook_event ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()",
            "CREATE INDEX webhook_event_commit_order ON webhook_event (txid, seq)",
        ]),
        // Content keys, wrapped by a key-encryption key that is never in the catalog.
        (7, [
            """
            CREATE TABLE content_key (track_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, method TEXT NOT NULL,
                wrapped_key TEXT NOT NULL, kek_id TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)
            """,
            "CREATE INDEX content_key_kek ON content_key (kek_id)",
        ]),
        // Forensic watermarking: which tracks, and the playback sessions a leak can name.
        (8, SQLiteCatalog.watermarkSchema),
    ]

    /// Applies the migrations not yet applied, in one transaction under an advisory lock.
    func migrate() async throws {
        try await client.withTransaction(logger: logger) { connection in
            // One migrator at a time across every host starting against this database.
            try await connection.query("SELECT pg_advisory_xact_lock(7446011)", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS veza_schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """, logger: logger)
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM veza_schema_migrations", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in Self.migrations where !applied.contains(migration.version) {
                for statement in migration.sql { try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
                try await connection.query("INSERT INTO veza_schema_migrations (version) VALUES (\(migration.version))", logger: logger)
                logger.info("catalog migrated", metadata: ["version": "\(migration.version)"])
            }
        }
    }
}
