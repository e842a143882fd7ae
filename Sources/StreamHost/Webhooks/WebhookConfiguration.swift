public import Configuration
import Foundation

/// How the host delivers webhooks (`webhooks.…`).
public struct WebhookConfiguration: Sendable, Hashable {
    /// Seconds to wait before each retry after the first attempt (`webhooks.retrySchedule`,
    /// comma-separated in the environment). A delivery that fails them all is kept as failed.
    /// Default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (the Standard Webhooks reference
    /// schedule: about 28 hours in all).
    public var retrySchedule: [Double] = [5, 300, 1800, 7200, 18000, 36000, 36000]
    /// Seconds an endpoint has to answer (`webhooks.timeoutSeconds`), connecting included.
    /// Default 10.
    public var timeoutSeconds: Double = 10
    /// Deliveries in flight at once from this host (`webhooks.concurrency`). Default 16.
    public var concurrency: Int = 16
    /// Seconds between looks at the outbox when nothing wakes the dispatcher
    /// (`webhooks.pollSeconds`; another host's events and due retries are found this way).
    /// Default 1.
    public var pollSeconds: Double = 1
    /// Days delivered deliveries and their events are kept (`webhooks.retentionDays`). Default 7.
    public var retentionDays: Double = 7
    /// Whether endpoints may be loopback, private, link-local or unique-local addresses or
    /// `localhost` (`webhooks.allowPrivateTargets`). Default false, so that whoever may
    /// subscribe cannot make the host call services on its own network. Names are checked as
    /// written, not as resolved.
    public var allowPrivateTargets = false

    public init() {}

    /// Reads the `webhooks.` keys.
    public init(reader: ConfigReader) {
        let schedule = reader.stringArray(forKey: "webhooks.retrySchedule", default: [])
            .compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 >= 0 }
        if !schedule.isEmpty { retrySchedule = schedule }
        timeoutSeconds = max(0.1, reader.double(forKey: "webhooks.timeoutSeconds", default: timeoutSeconds))
        concurrency = max(1, reader.int(forKey: "webhooks.concurrency", default: concurrency))
        pollSeconds = max(0.05, reader.double(forKey: "webhooks.pollSeconds", default: pollSeconds))
        retentionDays = max(0, reader.double(forKey: "webhooks.retentionDays", default: retentionDays))
        allowPrivateTargets = reader.bool(forKey: "webhooks.allowPrivateTargets", default: allowPrivateTargets)
    }

    /// What follows a failed attempt, `attempts` attempts having been made before it.
    func afterFailure(attempts: Int, status: Int?, error: String, now: Date) -> WebhookAttemptOutcome {
        // 410 Gone: the receiver says the endpoint no longer exists.
        guard status != 410, attempts < retrySchedule.count else { return .failed(status: status, error: error) }
        return .retry(at: now.addingTimeInterval(retrySchedule[attempts]), status: status, error: error)
    }
}
