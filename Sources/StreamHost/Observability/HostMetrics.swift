public import Prometheus
import Hummingbird
import Foundation
import Synchronization

/// The host's metrics (DESIGN.md §7), kept in a Prometheus registry and served by `GET /metrics`
/// in the text exposition format.
///
/// Names: `veza_http_requests_total{route,status}`, `veza_http_request_duration_seconds{route}`,
/// `veza_active_streams`, `veza_bytes_served_total{kind}`, `veza_stream_start_seconds`,
/// `veza_transcode_queue_depth`, `veza_transcode_jobs_total{outcome}`,
/// `veza_transcode_job_duration_seconds`, `veza_transcode_failures_total`,
/// `veza_storage_errors_total{operation}`, `veza_auth_failures_total{reason}`.
public final class HostMetrics: Sendable {
    /// The registry `/metrics` renders; add your own collectors to it.
    public let registry: PrometheusCollectorRegistry
    let activeStreams: Gauge
    let queueDepth: Gauge
    let streamStart: DurationHistogram
    let jobDuration: DurationHistogram
    let transcodeFailures: Counter
    let liveSources: Gauge
    let liveListeners: Gauge
    /// `veza_live_listeners{protocol="hls"|"dash"}` (``LiveAudience``).
    let livePlaylistListeners: [String: Gauge]
    let liveBytesInTotal: Counter
    let liveBytesOutTotal: Counter
    let liveListenersDropped: Counter
    let liveReconnects: Counter
    let liveFallback: Counter
    let livePartPublish: DurationHistogram
    let liveDeadlineMisses: Counter
    private let requestBuckets: [Duration] = [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                              .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                              .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        activeStreams = registry.makeGauge(descriptor: .init(
            namespace: "veza", metricName: "active_streams", unitName: "",
            helpText: "Media responses (segments, progressive files) being sent right now."))
        queueDepth = registry.makeGauge(descriptor: .init(
            namespace: "veza", subsystem: "transcode", metricName: "queue_depth", unitName: "",
            helpText: "Transcode jobs queued or running, as of the last scrape."))
        streamStart = registry.makeDurationHistogram(descriptor: .init(
            namespace: "veza", metricName: "stream_start", unitName: "seconds",
            helpText: "Time from a playback session's first request (master playlist, MPD or progressive file) to its first media bytes sent by this host."),
            buckets: requestBuckets)
        jobDuration = registry.makeDurationHistogram(descriptor: .init(
            namespace: "veza", subsystem: "transcode", metricName: "job_duration", unitName: "seconds",
            helpText: "Wall time of transcode jobs that published a track."),
            buckets: [.seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(20), .seconds(30), .seconds(60),
                      .seconds(120), .seconds(300), .seconds(600), .seconds(1800)])
        transcodeFailures = registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "transcode", metricName: "failures", unitName: "total",
            helpText: "Transcode attempts that failed (retried or dead-lettered)."))
        liveSources = registry.makeGauge(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "sources", unitName: "",
            helpText: "Live sources connected now."))
        let listenersHelp = "Live listeners now, by protocol (icy, websocket, webrtc: connected; hls, dash: players that asked for the show in the last 12 s)."
        liveListeners = registry.makeGauge(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "listeners", unitName: "", helpText: listenersHelp), labels: [("protocol", "icy")])
        livePlaylistListeners = Dictionary(uniqueKeysWithValues: ["hls", "dash", "websocket", "webrtc"].map { kind in
            (kind, registry.makeGauge(descriptor: .init(
                namespace: "veza", subsystem: "live", metricName: "listeners", unitName: "", helpText: listenersHelp), labels: [("protocol", kind)]))
        })
        liveBytesInTotal = registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "bytes_in", unitName: "total",
            helpText: "Bytes received from live sources."))
        liveBytesOutTotal = registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "bytes_out", unitName: "total",
            helpText: "Bytes of live audio written to listeners."))
        liveListenersDropped = registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "listeners_dropped", unitName: "total",
            helpText: "Live listeners disconnected because they fell too far behind the live edge."))
        liveReconnects = registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "source_reconnects", unitName: "total",
            helpText: "Sources that connected to a mount whose show was going on (after a drop, or a takeover)."))
        liveFallback = registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "fallback", unitName: "seconds_total",
            helpText: "Seconds of fallback audio (silence) fed to live ladders while their source was gone or stalled."))
        livePartPublish = registry.makeDurationHistogram(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "part_publish", unitName: "seconds",
            helpText: "Time from the arrival of the audio that completes a live part to its publication (decode, encode, package)."),
            buckets: [.milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                      .milliseconds(500), .seconds(1), .seconds(2), .seconds(5)])
        liveDeadlineMisses = registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "live", metricName: "part_deadline_misses", unitName: "total",
            helpText: "Live parts published more than one part duration after their audio arrived."))
    }

    /// Labelled handles already made (the registry would rebuild names and labels on each call).
    private let handles = Mutex<[String: (Counter, DurationHistogram?)]>([:])

    /// A labelled counter made once per `kind` and `label`.
    func labelled(_ kind: String, _ label: String, make: () -> Counter) -> Counter {
        handle("\(kind)\u{0}\(label)") { (make(), nil) }.0
    }

    private func handle(_ key: String, make: () -> (Counter, DurationHistogram?)) -> (Counter, DurationHistogram?) {
        if let found = handles.withLock({ $0[key] }) { return found }
        let made = make()
        handles.withLock { $0[key] = made }
        return made
    }

    func requestFinished(route: String, method: String, status: Int, duration: Duration) {
        let (counter, histogram) = handle("r\u{0}\(route)\u{0}\(method)\u{0}\(status)") {
            (registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "http", metricName: "requests", unitName: "total",
                helpText: "HTTP requests answered, by route pattern, method and status."),
                labels: [("route", route), ("method", method), ("status", String(status))]),
             registry.makeDurationHistogram(descriptor: .init(
                namespace: "veza", subsystem: "http", metricName: "request_duration", unitName: "seconds",
                helpText: "Time from a request's head to its response head, by route pattern."),
                labels: [("route", route)], buckets: requestBuckets))
        }
        counter.increment()
        histogram?.record(duration)
    }

    func bytesServed(_ count: Int, kind: String) {
        handle("b\u{0}\(kind)") {
            (registry.makeCounter(descriptor: .init(
                namespace: "veza", metricName: "bytes_served", unitName: "total",
                helpText: "Body bytes of media responses sent, by kind (segment, init, progressive, playlist)."),
                labels: [("kind", kind)]), nil)
        }.0.increment(by: Int64(count))
    }

    func pacedResponseStarted() {
        handle("p") {
            (registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "pacing", metricName: "responses", unitName: "total",
                helpText: "Progressive responses sent with pacing (burst, then a multiple of the bitrate)."), labels: []), nil)
        }.0.increment()
    }

    func pacingWaited(_ waited: Duration) {
        handle("w") {
            (registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "pacing", metricName: "wait_seconds", unitName: "total",
                helpText: "Seconds paced responses spent waiting for their send budget, summed."), labels: []), nil)
        }.0.increment(by: waited / .seconds(1))
    }

    func fastPathAnswered() {
        handle("f") {
            (registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "http", metricName: "fast_path_responses", unitName: "total",
                helpText: "Requests answered on the event loop by the playback fast path (cached segments, playlists of recently ready tracks); also counted in veza_http_requests_total."),
                labels: []), nil)
        }.0.increment()
    }

    func rateLimited(_ kind: String) {
        handle("l\u{0}\(kind)") {
            (registry.makeCounter(descriptor: .init(
                namespace: "veza", metricName: "rate_limited", unitName: "total",
                helpText: "Requests refused with 429 by the per-client rate limits, by class (api, upload, media)."),
                labels: [("class", kind)]), nil)
        }.0.increment()
    }

    /// A forwarding header from a trusted proxy that could not be believed (see
    /// ``ClientAddressResolver``): the request was then keyed on the nearest known hop.
    func malformedForwarding(_ header: ClientAddressResolver.Source) {
        registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "http", metricName: "forwarding_header_errors", unitName: "total",
            helpText: "Requests from a trusted proxy whose Forwarded, X-Forwarded-For or X-Real-IP value was malformed, by header."),
            labels: [("header", header.rawValue)]).increment()
    }

    func authFailure(_ reason: String) {
        registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "auth", metricName: "failures", unitName: "total",
            helpText: "Requests refused by authentication or authorisation, by status."),
            labels: [("status", reason)]).increment()
    }

    func storageError(_ operation: String) {
        registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "storage", metricName: "errors", unitName: "total",
            helpText: "Object storage operations that failed, by operation."),
            labels: [("operation", operation)]).increment()
    }

    func jobFinished(outcome: String, duration: Duration?) {
        registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "transcode", metricName: "jobs", unitName: "total",
            helpText: "Transcode attempts finished, by outcome (published, retry, dead, cancelled, released: storage down)."),
            labels: [("outcome", outcome)]).increment()
        if let duration, outcome == "published" { jobDuration.record(duration) }
        if outcome == "retry" || outcome == "dead" { transcodeFailures.increment() }
    }

    /// The exposition text.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}
