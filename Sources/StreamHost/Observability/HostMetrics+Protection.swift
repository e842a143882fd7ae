import Prometheus

/// Content protection's metrics: `veza_key_requests_total{result}` (a key delivered, or why not:
/// `unauthorized`, `forbidden`, `revoked`, `rate_limited`, `not_found`, `unavailable`) and
/// `veza_content_keys_created_total`. No metric carries a key, a key id or a token.
extension HostMetrics {
    func keyRequest(_ result: String) {
        labelled("key-request", result) {
            registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "key", metricName: "requests", unitName: "total",
                helpText: "Content key requests, by result (delivered, unauthorized, forbidden, revoked, rate_limited, not_found, unavailable)."),
                labels: [("result", result)])
        }.increment()
    }

    func contentKeyCreated() {
        labelled("content-key-created", "") {
            registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "content_keys", metricName: "created", unitName: "total",
                helpText: "Content keys generated for protected tracks."))
        }.increment()
    }
}
