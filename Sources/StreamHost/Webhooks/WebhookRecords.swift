public import Foundation

/// A webhook subscription: where to send which events, and the secret that signs them.
public struct WebhookEndpoint: Sendable, Hashable {
    /// `wh_` and a sortable id.
    public var id: String
    /// An `http` or `https` URL that receives `POST`s.
    public var url: String
    /// The event types it receives (``HostEvent/Kind`` raw values), or `["*"]` for all.
    public var events: [String]
    public var secret: WebhookSecret
    public var description: String?
    public var createdAt: Date

    public init(id: String, url: String, events: [String], secret: WebhookSecret, description: String?, createdAt: Date) {
        self.id = id
        self.url = url
        self.events = events
        self.secret = secret
        self.description = description
        self.createdAt = createdAt
    }

    /// The form the catalog stores `events` in: `,a,b,` so that one `LIKE '%,type,%'` selects
    /// the subscribers of a type in SQLite and PostgreSQL alike.
    var storedEvents: String { "," + events.joined(separator: ",") + "," }

    static func events(stored: String) -> [String] { stored.split(separator: ",").map(String.init) }
}

/// Where one event stands for one endpoint.
public enum WebhookDeliveryState: String, Sendable, Codable, CaseIterable {
    /// Not delivered yet: waiting for its next attempt (or for an earlier event of the same
    /// subject to this endpoint).
    case pending
    /// The endpoint answered 2xx.
    case delivered
    /// Every attempt of the retry schedule failed (or the endpoint answered 410 Gone): kept,
    /// visible through the API, and retried only when asked.
    case failed
}

/// One event's delivery to one endpoint, as the API shows it.
public struct WebhookDeliveryRecord: Sendable, Hashable, Codable {
    /// `{event id}.{endpoint id}`.
    public var id: String
    /// The event's id (`webhook-id`).
    public var eventId: String
    public var endpointId: String
    public var type: String
    public var subject: String
    public var state: WebhookDeliveryState
    public var attempts: Int
    /// When the next attempt is due (pending deliveries).
    public var nextAttemptAt: Date?
    /// The endpoint's last HTTP status, if it answered.
    public var lastStatus: Int?
    /// Why the last attempt failed.
    public var lastError: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, eventId: String, endpointId: String, type: String, subject: String, state: WebhookDeliveryState,
                attempts: Int, nextAttemptAt: Date?, lastStatus: Int?, lastError: String?, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.eventId = eventId
        self.endpointId = endpointId
        self.type = type
        self.subject = subject
        self.state = state
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A delivery leased to a dispatcher: everything needed to send it.
public struct PendingWebhookDelivery: Sendable, Hashable {
    public var deliveryID: String
    /// Attempts made before this one.
    public var attempts: Int
    public var eventID: String
    public var body: String
    public var url: String
    public var secret: WebhookSecret
    public var createdAt: Date

    public init(deliveryID: String, attempts: Int, eventID: String, body: String, url: String, secret: WebhookSecret, createdAt: Date) {
        self.deliveryID = deliveryID
        self.attempts = attempts
        self.eventID = eventID
        self.body = body
        self.url = url
        self.secret = secret
        self.createdAt = createdAt
    }
}

/// What one attempt came to.
public enum WebhookAttemptOutcome: Sendable, Hashable {
    /// 2xx: done.
    case delivered(status: Int)
    /// Failed; try again at `at`.
    case retry(at: Date, status: Int?, error: String)
    /// Failed for good (schedule used up, or 410 Gone).
    case failed(status: Int?, error: String)
}

extension WebhookAttemptOutcome {
    /// The columns an outcome sets: state, next attempt (seconds since 1970), status, error.
    func stored(now: Date) -> (WebhookDeliveryState, Double, Int?, String?) {
        switch self {
        case .delivered(let status): (.delivered, now.timeIntervalSince1970, status, nil)
        case .retry(let at, let status, let error): (.pending, at.timeIntervalSince1970, status, String(error.prefix(500)))
        case .failed(let status, let error): (.failed, now.timeIntervalSince1970, status, String(error.prefix(500)))
        }
    }
}
