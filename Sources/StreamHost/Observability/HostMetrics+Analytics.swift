import Prometheus

/// Listening analytics' metrics: `veza_listeners` (sessions that fetched media within their
/// last segment's duration), `veza_listening_sessions_total{outcome}`,
/// `veza_listening_plays_total`, `veza_listening_events_total{result}` (beacons accepted, or
/// dropped and why) and `veza_listening_store_errors_total`.
extension HostMetrics {
    func listeners(_ count: Int) {
        registry.makeGauge(descriptor: .init(
            namespace: "veza", metricName: "listeners", unitName: "",
            helpText: "Listeners of tracks now: playback sessions that fetched media within their last segment's duration (+2 s).")).set(Int64(count))
    }

    func listeningSessionEnded(_ outcome: FinishedSession.Outcome, play: Bool) {
        labelled("listening-session", outcome.rawValue) {
            registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "listening", metricName: "sessions", unitName: "total",
                helpText: "Playback sessions ended, by outcome (completed, skipped, abandoned, bot)."), labels: [("outcome", outcome.rawValue)])
        }.increment()
        if play {
            registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "listening", metricName: "plays", unitName: "total",
                helpText: "Plays: sessions that listened at least the play threshold (or completed a shorter track).")).increment()
        }
    }

    func listeningEvents(_ result: String, count: Int) {
        guard count > 0 else { return }
        labelled("listening-events", result) {
            registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "listening", metricName: "events", unitName: "total",
                helpText: "Player beacons: accepted, or dropped and why (malformed, duplicate, future, stale, other_track, other_session, session_ended, too_many)."),
                labels: [("result", result)])
        }.increment(by: Int64(count))
    }

    func listeningStoreError() {
        registry.makeCounter(descriptor: .init(
            namespace: "veza", subsystem: "listening", metricName: "store_errors", unitName: "total",
            helpText: "Failed writes of ended sessions to the analytics store (the sessions are kept and written again).")).increment()
    }
}
