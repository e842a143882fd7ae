public import Foundation

/// Where an event stands in the catalog's outbox, in the order events were committed: what an
/// event stream (gRPC `Events.Subscribe`) resumes after.
///
/// SQLite commits one writer at a time, so its row sequence is the commit order
/// (``transaction`` is 0). In PostgreSQL a sequence value is taken before its transaction
/// commits, so a reader following `seq` alone would skip an event whose transaction commits
/// after a later one's; there the cursor is the writing transaction's id (`xid8`), then `seq`,
/// and only transactions older than every one still running are read (see
/// ``Catalog/events(after:limit:)``).
public struct EventCursor: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The id of the transaction that wrote the event (PostgreSQL); 0 in SQLite.
    public var transaction: Int64
    /// The event's row sequence.
    public var sequence: Int64

    /// The cursor of the event with row sequence `sequence`, written by transaction `transaction`.
    public init(transaction: Int64, sequence: Int64) {
        self.transaction = transaction
        self.sequence = sequence
    }

    /// Before every event.
    public static let start = EventCursor(transaction: 0, sequence: 0)

    /// The text form clients pass back: `transaction.sequence`, or `0` for ``start``.
    public var description: String { self == .start ? "0" : "\(transaction).\(sequence)" }

    /// Parses ``description``; nil for anything else.
    public init?(_ text: String) {
        if text == "0" {
            self = .start
            return
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 19 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) } }),
              let transaction = Int64(parts[0]), let sequence = Int64(parts[1]), transaction >= 0, sequence >= 0 else { return nil }
        self.init(transaction: transaction, sequence: sequence)
    }

    /// Commit order: by transaction, then by sequence.
    public static func < (a: EventCursor, b: EventCursor) -> Bool {
        (a.transaction, a.sequence) < (b.transaction, b.sequence)
    }
}

/// An event as the outbox holds it, with its place in the commit order.
public struct LoggedEvent: Sendable, Hashable {
    /// Where the event stands in the commit order.
    public var cursor: EventCursor
    /// The webhook message id (`webhook-id`).
    public var id: String
    /// `track.ready`, … (``HostEvent/Kind``'s raw values).
    public var type: String
    /// `track/{id}` or `live/{mount}`.
    public var subject: String
    /// When it happened.
    public var createdAt: Date
    /// The JSON body a webhook endpoint receives.
    public var body: String

    /// An event as read from the outbox.
    public init(cursor: EventCursor, id: String, type: String, subject: String, createdAt: Date, body: String) {
        self.cursor = cursor
        self.id = id
        self.type = type
        self.subject = subject
        self.createdAt = createdAt
        self.body = body
    }
}
