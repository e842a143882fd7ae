public import Foundation
import Logging
import PostgresNIO

/// The webhook outbox in PostgreSQL (migration 5): endpoints, events and their deliveries,
/// leased with `FOR UPDATE SKIP LOCKED` so that the dispatchers of several hosts share them.
extension PostgresCatalog {
    /// Writes `event` to the outbox with a pending delivery per subscribed endpoint, in the
    /// caller's transaction.
    static func enqueue(_ event: HostEvent, _ connection: PostgresConnection, _ logger: Logger) async throws {
        let now = Date().timeIntervalSince1970
        let pattern = "%," + event.kind.rawValue + ",%"
        try await connection.query("""
            WITH event AS (
                INSERT INTO webhook_event (id, type, subject, body, created_at)
                VALUES (\(event.id), \(event.kind.rawValue), \(event.subject), \(event.body), \(event.createdAt.timeIntervalSince1970))
                RETURNING seq
            )
            INSERT INTO webhook_delivery (id, event_seq, endpoint_id, subject, state, attempts, next_attempt_at, created_at, updated_at)
            SELECT \(event.id) || '.' || p.id, event.seq, p.id, \(event.subject), 'pending', 0, \(now), \(now), \(now)
            FROM webhook_endpoint p, event WHERE p.events LIKE \(pattern) OR p.events = ',*,'
            """, logger: logger)
    }

    private static func endpoint(_ row: PostgresRow) throws -> WebhookEndpoint {
        let (id, url, events, secret, description, created) = try row.decode((String, String, String, String, String?, Double).self)
        return WebhookEndpoint(id: id, url: url, events: WebhookEndpoint.events(stored: events), secret: WebhookSecret(secret) ?? WebhookSecret(key: []),
                               description: description, createdAt: Date(timeIntervalSince1970: created))
    }

    public func createWebhook(_ endpoint: WebhookEndpoint) async throws(CatalogError) {
        _ = try await perform {
            try await client.query("""
                INSERT INTO webhook_endpoint (id, url, events, secret, description, created_at)
                VALUES (\(endpoint.id), \(endpoint.url), \(endpoint.storedEvents), \(endpoint.secret.description), \(endpoint.description),
                        \(endpoint.createdAt.timeIntervalSince1970))
                """, logger: logger)
        }
    }

    public func webhooks() async throws(CatalogError) -> [WebhookEndpoint] {
        try await perform {
            try await Self.all(try await client.query(
                "SELECT id, url, events, secret, description, created_at FROM webhook_endpoint ORDER BY created_at, id", logger: logger), Self.endpoint)
        }
    }

    public func webhook(id: String) async throws(CatalogError) -> WebhookEndpoint? {
        try await perform {
            try await Self.first(try await client.query(
                "SELECT id, url, events, secret, description, created_at FROM webhook_endpoint WHERE id = \(id)", logger: logger), Self.endpoint)
        }
    }

    public func deleteWebhook(id: String) async throws(CatalogError) -> Bool {
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> Bool in
                try await connection.query("DELETE FROM webhook_delivery WHERE endpoint_id = \(id)", logger: logger)
                return try await Self.first(try await connection.query(
                    "DELETE FROM webhook_endpoint WHERE id = \(id) RETURNING id", logger: logger)) { try $0.decode(String.self) } != nil
            }
        }
    }

    public func appendEvent(_ event: HostEvent) async throws(CatalogError) {
        let logger = self.logger
        try await perform {
            try await client.withTransaction(logger: logger) { connection in try await Self.enqueue(event, connection, logger) }
        }
    }

    public func claimWebhookDeliveries(owner: String, limit: Int, leaseSeconds: Double, now: Date) async throws(CatalogError) -> [PendingWebhookDelivery] {
        let t = now.timeIntervalSince1970
        let logger = self.logger
        return try await perform {
            try await client.withTransaction(logger: logger) { connection -> [PendingWebhookDelivery] in
                try await Self.all(try await connection.query("""
                    WITH due AS (
                        SELECT d.id FROM webhook_delivery d
                        WHERE d.state = 'pending' AND d.next_attempt_at <= \(t) AND (d.lease_expires_at IS NULL OR d.lease_expires_at < \(t))
                          AND NOT EXISTS (SELECT 1 FROM webhook_delivery o WHERE o.endpoint_id = d.endpoint_id AND o.subject = d.subject
                                          AND o.state = 'pending' AND o.event_seq < d.event_seq)
                        ORDER BY d.event_seq LIMIT \(limit)
                        FOR UPDATE SKIP LOCKED
                    ),
                    leased AS (
                        UPDATE webhook_delivery d SET lease_owner = \(owner), lease_expires_at = \(t + leaseSeconds)
                        FROM due WHERE d.id = due.id RETURNING d.id, d.attempts, d.event_seq, d.endpoint_id
                    )
                    SELECT l.id, l.attempts, e.id, e.body, p.url, p.secret, e.created_at
                    FROM leased l JOIN webhook_event e ON e.seq = l.event_seq JOIN webhook_endpoint p ON p.id = l.endpoint_id
                    ORDER BY l.event_seq
                    """, logger: logger)) { row in
                    let (id, attempts, event, body, url, secret, created) = try row.decode((String, Int, String, String, String, String, Double).self)
                    return PendingWebhookDelivery(deliveryID: id, attempts: attempts, eventID: event, body: body, url: url,
                                                  secret: WebhookSecret(secret) ?? WebhookSecret(key: []), createdAt: Date(timeIntervalSince1970: created))
                }
            }
        }
    }

    public func finishWebhookDeliveries(_ outcomes: [(id: String, outcome: WebhookAttemptOutcome)], owner: String, now: Date) async throws(CatalogError) {
        let rows = outcomes.map { ($0.id, $0.outcome.stored(now: now)) }
        let logger = self.logger
        try await perform {
            try await client.withTransaction(logger: logger) { connection in
                for (id, (state, next, status, error)) in rows {
                    try await connection.query("""
                        UPDATE webhook_delivery SET state = \(state.rawValue), attempts = attempts + 1, next_attempt_at = \(next),
                               last_status = \(status), last_error = \(error), lease_owner = NULL, lease_expires_at = NULL,
                               updated_at = \(now.timeIntervalSince1970)
                        WHERE id = \(id) AND lease_owner = \(owner)
                        """, logger: logger)
                }
            }
        }
    }

    public func webhookDeliveries(endpoint: String, state: WebhookDeliveryState?, limit: Int) async throws(CatalogError) -> [WebhookDeliveryRecord] {
        try await perform {
            try await Self.all(try await client.query("""
                SELECT d.id, e.id, d.endpoint_id, e.type, d.subject, d.state, d.attempts, d.next_attempt_at, d.last_status, d.last_error,
                       e.created_at, d.updated_at
                FROM webhook_delivery d JOIN webhook_event e ON e.seq = d.event_seq
                WHERE d.endpoint_id = \(endpoint) AND (\(state?.rawValue)::TEXT IS NULL OR d.state = \(state?.rawValue))
                ORDER BY d.event_seq DESC LIMIT \(limit)
                """, logger: logger)) { row in
                let (id, event, endpointID, type, subject, stateText, attempts, next, status, error, created, updated) =
                    try row.decode((String, String, String, String, String, String, Int, Double, Int?, String?, Double, Double).self)
                let state = WebhookDeliveryState(rawValue: stateText) ?? .failed
                return WebhookDeliveryRecord(id: id, eventId: event, endpointId: endpointID, type: type, subject: subject, state: state,
                                             attempts: attempts, nextAttemptAt: state == .pending ? Date(timeIntervalSince1970: next) : nil,
                                             lastStatus: status, lastError: error, createdAt: Date(timeIntervalSince1970: created),
                                             updatedAt: Date(timeIntervalSince1970: updated))
            }
        }
    }

    // A `seq` is taken before its transaction commits, so `seq` order is not commit order. Each
    // event row carries its transaction's id (`txid`, migration 6); a transaction older than
    // `pg_snapshot_xmin` of the current snapshot has ended, so no row with a `txid` below it can
    // appear any more: ordered by (txid, seq), those rows are final, and a cursor over them
    // misses nothing.
    public func events(after cursor: EventCursor, limit: Int) async throws(CatalogError) -> [LoggedEvent] {
        try await perform {
            try await Self.all(try await client.query("""
                SELECT txid::TEXT::BIGINT, seq, id, type, subject, body, created_at FROM webhook_event
                WHERE (txid, seq) > (\(String(cursor.transaction))::xid8, \(cursor.sequence))
                  AND txid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY txid, seq LIMIT \(limit)
                """, logger: logger)) { row in
                let (transaction, sequence, id, type, subject, body, created) = try row.decode((Int64, Int64, String, String, String, String, Double).self)
                return LoggedEvent(cursor: EventCursor(transaction: transaction, sequence: sequence), id: id, type: type, subject: subject,
                                   createdAt: Date(timeIntervalSince1970: created), body: body)
            }
        }
    }

    public func latestEventCursor() async throws(CatalogError) -> EventCursor {
        try await perform {
            try await Self.all(try await client.query("""
                SELECT txid::TEXT::BIGINT, seq FROM webhook_event WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
                ORDER BY txid DESC, seq DESC LIMIT 1
                """, logger: logger)) { row in
                let (transaction, sequence) = try row.decode((Int64, Int64).self)
                return EventCursor(transaction: transaction, sequence: sequence)
            }.first ?? .start
        }
    }

    public func retryWebhookDelivery(id: String, endpoint: String, now: Date) async throws(CatalogError) -> Bool {
        let t = now.timeIntervalSince1970
        return try await perform {
            try await Self.first(try await client.query("""
                UPDATE webhook_delivery SET state = 'pending', next_attempt_at = \(t), updated_at = \(t)
                WHERE id = \(id) AND endpoint_id = \(endpoint) AND state = 'failed' RETURNING id
                """, logger: logger)) { try $0.decode(String.self) } != nil
        }
    }

    public func pruneWebhookHistory(before cutoff: Date) async throws(CatalogError) {
        let t = cutoff.timeIntervalSince1970
        let logger = self.logger
        try await perform {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("DELETE FROM webhook_delivery WHERE state = 'delivered' AND updated_at < \(t)", logger: logger)
                try await connection.query("""
                    DELETE FROM webhook_event e WHERE e.created_at < \(t)
                      AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_seq = e.seq)
                    """, logger: logger)
            }
        }
    }
}
