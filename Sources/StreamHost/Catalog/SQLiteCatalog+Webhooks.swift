public import Foundation
import GRDB

/// The webhook outbox in SQLite (migration v5): endpoints, events and their deliveries.
extension SQLiteCatalog {
    static let webhookSchema = """
        CREATE TABLE webhook_endpoint (
            id TEXT PRIMARY KEY, url TEXT NOT NULL, events TEXT NOT NULL, secret TEXT NOT NULL, description TEXT, created_at REAL NOT NULL
        );
        CREATE TABLE webhook_event (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT NOT NULL,
            body TEXT NOT NULL, created_at REAL NOT NULL
        );
        CREATE TABLE webhook_delivery (
            id TEXT PRIMARY KEY, event_seq INTEGER NOT NULL, endpoint_id TEXT NOT NULL, subject TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, lease_owner TEXT, lease_expires_at REAL,
            last_status INTEGER, last_error TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL
        );
        CREATE INDEX webhook_delivery_due ON webhook_delivery(state, next_attempt_at);
        CREATE INDEX webhook_delivery_order ON webhook_delivery(endpoint_id, subject, state, event_seq);
        CREATE INDEX webhook_delivery_event ON webhook_delivery(event_seq);
        """

    /// Writes `event` to the outbox with a pending delivery per subscribed endpoint, in the
    /// caller's transaction.
    static func enqueue(_ event: HostEvent, _ db: Database) throws {
        let t = event.createdAt.timeIntervalSince1970
        try db.execute(sql: "INSERT INTO webhook_event (id, type, subject, body, created_at) VALUES (?, ?, ?, ?, ?)",
                       arguments: [event.id, event.kind.rawValue, event.subject, event.body, t])
        let seq = db.lastInsertedRowID
        let now = Date().timeIntervalSince1970
        try db.execute(sql: """
            INSERT INTO webhook_delivery (id, event_seq, endpoint_id, subject, state, attempts, next_attempt_at, created_at, updated_at)
            SELECT ? || '.' || id, ?, id, ?, 'pending', 0, ?, ?, ? FROM webhook_endpoint WHERE events LIKE ? OR events = ',*,'
            """, arguments: [event.id, seq, event.subject, now, now, now, "%," + event.kind.rawValue + ",%"])
    }

    private static func endpoint(_ row: Row) -> WebhookEndpoint {
        WebhookEndpoint(id: row["id"], url: row["url"], events: WebhookEndpoint.events(stored: row["events"]),
                        secret: WebhookSecret(row["secret"] as String) ?? WebhookSecret(key: []), description: row["description"],
                        createdAt: Date(timeIntervalSince1970: row["created_at"]))
    }

    public func createWebhook(_ endpoint: WebhookEndpoint) async throws(CatalogError) {
        try await write { db in
            try db.execute(sql: "INSERT INTO webhook_endpoint (id, url, events, secret, description, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [endpoint.id, endpoint.url, endpoint.storedEvents, endpoint.secret.description, endpoint.description,
                                       endpoint.createdAt.timeIntervalSince1970])
        }
    }

    public func webhooks() async throws(CatalogError) -> [WebhookEndpoint] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM webhook_endpoint ORDER BY created_at, id").map(Self.endpoint) }
    }

    public func webhook(id: String) async throws(CatalogError) -> WebhookEndpoint? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM webhook_endpoint WHERE id = ?", arguments: [id]).map(Self.endpoint) }
    }

    public func deleteWebhook(id: String) async throws(CatalogError) -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM webhook_delivery WHERE endpoint_id = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM webhook_endpoint WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func appendEvent(_ event: HostEvent) async throws(CatalogError) {
        try await write { db in try Self.enqueue(event, db) }
    }

    public func claimWebhookDeliveries(owner: String, limit: Int, leaseSeconds: Double, now: Date) async throws(CatalogError) -> [PendingWebhookDelivery] {
        let t = now.timeIntervalSince1970
        return try await write { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT d.id AS delivery_id, d.attempts, e.id AS event_id, e.body, e.created_at, p.url, p.secret
                FROM webhook_delivery d JOIN webhook_event e ON e.seq = d.event_seq JOIN webhook_endpoint p ON p.id = d.endpoint_id
                WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND (d.lease_expires_at IS NULL OR d.lease_expires_at < ?)
                  AND NOT EXISTS (SELECT 1 FROM webhook_delivery o WHERE o.endpoint_id = d.endpoint_id AND o.subject = d.subject
                                  AND o.state = 'pending' AND o.event_seq < d.event_seq)
                ORDER BY d.event_seq LIMIT ?
                """, arguments: [t, t, limit])
            return try rows.map { row in
                try db.execute(sql: "UPDATE webhook_delivery SET lease_owner = ?, lease_expires_at = ? WHERE id = ?",
                               arguments: [owner, t + leaseSeconds, row["delivery_id"] as String])
                return PendingWebhookDelivery(
                    deliveryID: row["delivery_id"], attempts: row["attempts"], eventID: row["event_id"], body: row["body"], url: row["url"],
                    secret: WebhookSecret(row["secret"] as String) ?? WebhookSecret(key: []),
                    createdAt: Date(timeIntervalSince1970: row["created_at"]))
            }
        }
    }

    public func finishWebhookDeliveries(_ outcomes: [(id: String, outcome: WebhookAttemptOutcome)], owner: String, now: Date) async throws(CatalogError) {
        let rows = outcomes.map { ($0.id, $0.outcome.stored(now: now)) }
        try await write { db in
            for (id, (state, next, status, error)) in rows {
                try db.execute(sql: """
                    UPDATE webhook_delivery SET state = ?, attempts = attempts + 1, next_attempt_at = ?, last_status = ?, last_error = ?,
                           lease_owner = NULL, lease_expires_at = NULL, updated_at = ?
                    WHERE id = ? AND lease_owner = ?
                    """, arguments: [state.rawValue, next, status, error, now.timeIntervalSince1970, id, owner])
            }
        }
    }

    public func webhookDeliveries(endpoint: String, state: WebhookDeliveryState?, limit: Int) async throws(CatalogError) -> [WebhookDeliveryRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT d.*, e.id AS event_id, e.type, e.created_at AS event_created_at
                FROM webhook_delivery d JOIN webhook_event e ON e.seq = d.event_seq
                WHERE d.endpoint_id = ? AND (? IS NULL OR d.state = ?) ORDER BY d.event_seq DESC LIMIT ?
                """, arguments: [endpoint, state?.rawValue, state?.rawValue, limit]).map { row in
                let state = WebhookDeliveryState(rawValue: row["state"]) ?? .failed
                return WebhookDeliveryRecord(
                    id: row["id"], eventId: row["event_id"], endpointId: row["endpoint_id"], type: row["type"], subject: row["subject"],
                    state: state, attempts: row["attempts"],
                    nextAttemptAt: state == .pending ? Date(timeIntervalSince1970: row["next_attempt_at"]) : nil,
                    lastStatus: row["last_status"], lastError: row["last_error"],
                    createdAt: Date(timeIntervalSince1970: row["event_created_at"]), updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
            }
        }
    }

    public func retryWebhookDelivery(id: String, endpoint: String, now: Date) async throws(CatalogError) -> Bool {
        let t = now.timeIntervalSince1970
        return try await write { db in
            try db.execute(sql: """
                UPDATE webhook_delivery SET state = 'pending', next_attempt_at = ?, updated_at = ? WHERE id = ? AND endpoint_id = ? AND state = 'failed'
                """, arguments: [t, t, id, endpoint])
            return db.changesCount > 0
        }
    }

    // One writer at a time: `seq` is the commit order.
    public func events(after cursor: EventCursor, limit: Int) async throws(CatalogError) -> [LoggedEvent] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT seq, id, type, subject, body, created_at FROM webhook_event WHERE seq > ? ORDER BY seq LIMIT ?",
                             arguments: [cursor.sequence, limit]).map { row in
                LoggedEvent(cursor: EventCursor(transaction: 0, sequence: row["seq"]), id: row["id"], type: row["type"], subject: row["subject"],
                            createdAt: Date(timeIntervalSince1970: row["created_at"]), body: row["body"])
            }
        }
    }

    public func latestEventCursor() async throws(CatalogError) -> EventCursor {
        try await read { db in
            EventCursor(transaction: 0, sequence: try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM webhook_event") ?? 0)
        }
    }

    public func pruneWebhookHistory(before cutoff: Date) async throws(CatalogError) {
        let t = cutoff.timeIntervalSince1970
        try await write { db in
            try db.execute(sql: "DELETE FROM webhook_delivery WHERE state = 'delivered' AND updated_at < ?", arguments: [t])
            try db.execute(sql: """
                DELETE FROM webhook_event WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_seq = webhook_event.seq)
                """, arguments: [t])
        }
    }
}
