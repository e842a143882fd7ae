import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import Prometheus
public import ServiceLifecycle
import Synchronization

/// Sends the catalog's outbox to webhook endpoints: a service of its own, so that slow or
/// unreachable receivers cost it time and never the host's requests or jobs.
///
/// Every host runs one. Each leases due deliveries from the catalog (so with PostgreSQL several
/// hosts share the work and none sends a delivery another holds), posts them signed per
/// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), at most
/// ``WebhookConfiguration/concurrency`` at once with ``WebhookConfiguration/timeoutSeconds``
/// each, and records the outcome: delivered on 2xx, else retried on
/// ``WebhookConfiguration/retrySchedule`` and then kept as failed. Delivery is at least once: a
/// host that stops mid-attempt leaves a lease that expires, and the attempt is made again with
/// the same `webhook-id`. Redirects are not followed.
///
/// Metrics: `veza_webhook_deliveries_total{outcome="delivered"|"retry"|"failed"}`.
public final class WebhookDispatcher: Service, Sendable {
    let catalog: any Catalog
    let configuration: WebhookConfiguration
    let logger: Logger
    /// This dispatcher's lease owner in the outbox.
    let owner = "webhooks-" + String(UUID().uuidString.prefix(8))
    private let wake = WakeSignal()
    private let inFlight = Atomic<Int>(0)
    private let outcomes: [String: Counter]
    /// Attempts finished and not yet written to the catalog.
    private let finished = Mutex(Finished())

    struct Finished {
        var outcomes: [(id: String, outcome: WebhookAttemptOutcome)] = []
        /// When the oldest of them finished.
        var oldest: ContinuousClock.Instant?

        mutating func append(_ id: String, _ outcome: WebhookAttemptOutcome) {
            if outcomes.isEmpty { oldest = .now }
            outcomes.append((id, outcome))
        }
    }

    public init(catalog: any Catalog, configuration: WebhookConfiguration, logger: Logger, metrics: HostMetrics) {
        self.catalog = catalog
        self.configuration = configuration
        self.logger = logger
        outcomes = Dictionary(uniqueKeysWithValues: ["delivered", "retry", "failed"].map { outcome in
            (outcome, metrics.registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "webhook", metricName: "deliveries", unitName: "total",
                helpText: "Webhook delivery attempts by outcome (retry: failed and scheduled again; failed: given up)."),
                labels: [("outcome", outcome)]))
        })
    }

    /// Looks at the outbox now (an event was just written on this host).
    public func notify() { wake.signal() }

    /// Delivers until graceful shutdown; attempts in flight then are abandoned to their leases.
    public func run() async throws {
        var http = HTTPClient.Configuration()
        http.redirectConfiguration = .disallow
        http.timeout = .init(connect: .milliseconds(Int64(min(configuration.timeoutSeconds, 5) * 1000)),
                             read: .milliseconds(Int64(configuration.timeoutSeconds * 1000)))
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
        // Claims and outcomes are written in batches: each is a transaction, and with SQLite each
        // commit syncs the database (about 35 deliveries a second one by one on the development
        // machine's disk). A batch is half the concurrency, or whatever there is once nothing is
        // in flight or the oldest outcome has waited `flushDelay`; a single event on an idle
        // dispatcher goes at once.
        let batch = max(1, configuration.concurrency / 2)
        let flushDelay = Duration.milliseconds(20)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                var pruned = Date.distantPast
                while !Task.isCancelled {
                    let running = self.inFlight.load(ordering: .relaxed)
                    let (count, oldest) = self.finished.withLock { ($0.outcomes.count, $0.oldest) }
                    if count > 0, count >= batch || running == 0 || oldest.map({ ContinuousClock.now - $0 >= flushDelay }) == true {
                        await self.recordFinished()
                    }
                    let free = self.configuration.concurrency - running
                    var claimed: [PendingWebhookDelivery] = []
                    if free >= batch || running == 0 {
                        do {
                            claimed = try await self.catalog.claimWebhookDeliveries(
                                owner: self.owner, limit: free, leaseSeconds: self.configuration.timeoutSeconds + 30, now: Date())
                        } catch {
                            self.logger.error("cannot read the webhook outbox", metadata: ["error": "\(error)"])
                        }
                    }
                    for delivery in claimed {
                        self.inFlight.add(1, ordering: .relaxed)
                        group.addTask {
                            let outcome = await self.deliver(delivery, client: client)
                            if let outcome { self.finished.withLock { $0.append(delivery.deliveryID, outcome) } }
                            self.inFlight.subtract(1, ordering: .relaxed)
                            self.wake.signal()
                        }
                    }
                    if !claimed.isEmpty, claimed.count == free { continue }
                    if Date().timeIntervalSince(pruned) > 3600 {
                        pruned = Date()
                        try? await self.catalog.pruneWebhookHistory(before: Date().addingTimeInterval(-self.configuration.retentionDays * 86400))
                    }
                    let waiting = self.finished.withLock { !$0.outcomes.isEmpty }
                    await self.wake.wait(atMost: waiting ? flushDelay : .milliseconds(Int64(self.configuration.pollSeconds * 1000)))
                }
            }
        }
        // Outcomes not yet written when the host stops: written now, so that they are not sent again.
        await recordFinished()
        try? await client.shutdown()
    }

    /// Writes the outcomes of finished attempts in one transaction.
    private func recordFinished() async {
        let outcomes = finished.withLock { finished in
            defer { finished = Finished() }
            return finished.outcomes
        }
        guard !outcomes.isEmpty else { return }
        do {
            try await catalog.finishWebhookDeliveries(outcomes, owner: owner, now: Date())
        } catch {
            // The leases expire and the attempts are made again (at least once).
            logger.error("cannot record webhook deliveries", metadata: ["deliveries": "\(outcomes.count)", "error": "\(error)"])
        }
    }

    /// One attempt; its outcome (nil when the host is stopping mid-attempt).
    func deliver(_ delivery: PendingWebhookDelivery, client: HTTPClient) async -> WebhookAttemptOutcome? {
        let timestamp = Int(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "veza-stream-webhooks/1")
        request.headers.add(name: "webhook-id", value: delivery.eventID)
        request.headers.add(name: "webhook-timestamp", value: "\(timestamp)")
        request.headers.add(name: "webhook-signature",
                            value: WebhookSignature.sign(id: delivery.eventID, timestamp: timestamp, body: Array(delivery.body.utf8), secret: delivery.secret))
        request.body = .bytes(ByteBuffer(string: delivery.body))
        var status: Int?
        var failure: String?
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(configuration.timeoutSeconds * 1000)))
            status = Int(response.status.code)
            // The answer's body is not used; read a little of it so the connection can be reused.
            _ = try? await response.body.collect(upTo: 16 << 10)
            if !(200..<300).contains(Int(response.status.code)) { failure = "the endpoint answered \(response.status.code)" }
        } catch {
            if Task.isCancelled { return nil }   // Shutting down: the lease expires and the attempt is made again.
            failure = "\(error)"
        }
        let now = Date()
        let outcome: WebhookAttemptOutcome = if let failure {
            configuration.afterFailure(attempts: delivery.attempts, status: status, error: failure, now: now)
        } else {
            .delivered(status: status ?? 200)
        }
        switch outcome {
        case .delivered: outcomes["delivered"]?.increment()
        case .retry(let at, _, let error):
            outcomes["retry"]?.increment()
            logger.warning("webhook delivery failed; will retry", metadata: [
                "delivery": "\(delivery.deliveryID)", "attempt": "\(delivery.attempts + 1)", "retryAt": "\(at)", "error": "\(error)"])
        case .failed(_, let error):
            outcomes["failed"]?.increment()
            logger.error("webhook delivery given up", metadata: [
                "delivery": "\(delivery.deliveryID)", "attempts": "\(delivery.attempts + 1)", "error": "\(error)"])
        }
        return outcome
    }
}
