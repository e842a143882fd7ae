public import Foundation

/// Something that happened on the host that an integrator may want to hear about: what
/// webhooks deliver (``WebhookDispatcher``).
///
/// An event is written to the catalog's outbox in the same transaction as the change it
/// reports (a track becoming ready is never recorded without its `track.ready`), so it is sent
/// at least once even if the host crashes right after.
public struct HostEvent: Sendable, Hashable {
    /// The kinds of event, by their Standard Webhooks `type`.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// An upload was accepted and its job queued (`data`: `id`, `status`).
        case trackCreated = "track.created"
        /// A track was published (`data`: `id`, `status`, `version`).
        case trackReady = "track.ready"
        /// A track's job failed every attempt (`data`: `id`, `status`, `failureReason`).
        case trackFailed = "track.failed"
        /// A track was deleted (`data`: `id`).
        case trackDeleted = "track.deleted"
        /// A live show began on a mount (`data`: `mount`, `session`).
        case liveStarted = "live.started"
        /// A live show ended (`data`: `mount`, `session`; a recording becomes a track later, with its own `track.created`).
        case liveEnded = "live.ended"
    }

    /// The message id (`webhook-id`): `msg_` and a sortable id, the same on every retry.
    public var id: String
    public var kind: Kind
    /// The resource the event is about (`track/{id}`, `live/{mount}`): deliveries of one
    /// subject to one endpoint go in order.
    public var subject: String
    /// When it happened.
    public var createdAt: Date
    /// The JSON body every endpoint receives: `{"type", "timestamp", "data"}`.
    public var body: String

    /// An event of `kind` about `subject` with `data` (encoded as the body's `data` object).
    public init(kind: Kind, subject: String, data: some Encodable & Sendable, at createdAt: Date = Date(), id: String? = nil) {
        self.id = id ?? "msg_" + TrackRoutes.newID()
        self.kind = kind
        self.subject = subject
        self.createdAt = createdAt
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // ISO 8601 UTC with milliseconds, as the host's log lines (`.iso8601` drops the fraction).
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(JSONLogHandler.timestamp(date))
        }
        let envelope = Envelope(type: kind.rawValue, timestamp: createdAt, data: data)
        body = (try? encoder.encode(envelope)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// An event as the catalog stored it.
    public init(id: String, kind: Kind, subject: String, createdAt: Date, body: String) {
        self.id = id
        self.kind = kind
        self.subject = subject
        self.createdAt = createdAt
        self.body = body
    }

    private struct Envelope<Data: Encodable>: Encodable {
        var type: String
        var timestamp: Date
        var data: Data
    }

    /// The `data` of track events.
    public struct TrackData: Codable, Sendable, Hashable {
        public var id: String
        public var status: TrackStatus?
        public var version: Int?
        public var failureReason: String?
    }

    /// The `data` of live events.
    public struct LiveData: Codable, Sendable, Hashable {
        public var mount: String
        public var session: String
    }

    /// `track.created` for a track just accepted.
    public static func trackCreated(_ track: TrackRecord, at date: Date) -> HostEvent {
        HostEvent(kind: .trackCreated, subject: "track/" + track.id, data: TrackData(id: track.id, status: track.status), at: date)
    }

    /// `track.ready` for `id` published at `version`.
    public static func trackReady(id: String, version: Int, at date: Date) -> HostEvent {
        HostEvent(kind: .trackReady, subject: "track/" + id, data: TrackData(id: id, status: .ready, version: version), at: date)
    }

    /// `track.failed` for `id`, with the last attempt's error.
    public static func trackFailed(id: String, reason: String, at date: Date) -> HostEvent {
        HostEvent(kind: .trackFailed, subject: "track/" + id, data: TrackData(id: id, status: .failed, failureReason: reason), at: date)
    }

    /// `track.deleted` for `id`.
    public static func trackDeleted(id: String, at date: Date) -> HostEvent {
        HostEvent(kind: .trackDeleted, subject: "track/" + id, data: TrackData(id: id), at: date)
    }

    /// `live.started` or `live.ended` for the show `session` on `mount`.
    public static func live(_ kind: Kind, mount: String, session: String, at date: Date = Date()) -> HostEvent {
        HostEvent(kind: kind, subject: "live/" + mount, data: LiveData(mount: mount, session: session), at: date)
    }
}
