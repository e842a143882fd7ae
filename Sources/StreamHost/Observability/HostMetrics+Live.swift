import Prometheus

/// The live path's metrics: `veza_live_sources`, `veza_live_listeners{protocol}`,
/// `veza_live_bytes_in_total`, `veza_live_bytes_out_total`, `veza_live_listeners_dropped_total`,
/// `veza_live_source_connections_total{format}`, `veza_live_source_refusals_total{code}`,
/// `veza_live_source_reconnects_total`, `veza_live_fallback_seconds_total`,
/// `veza_live_part_publish_seconds` and `veza_live_part_deadline_misses_total`.
extension HostMetrics {
    func liveSourceConnected(mount: String, format: String) {
        liveSources.increment()
        labelled("live-connect", format) {
            registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "live", metricName: "source_connections", unitName: "total",
                helpText: "Live sources accepted, by stream format (reconnects count again)."), labels: [("format", format)])
        }.increment()
    }

    func liveSourceDisconnected(mount: String) {
        liveSources.decrement()
    }

    func liveSourceRefused(_ code: String) {
        labelled("live-refuse", code) {
            registry.makeCounter(descriptor: .init(
                namespace: "veza", subsystem: "live", metricName: "source_refusals", unitName: "total",
                helpText: "Live source connections refused, by error code (unauthorized, not_found, mount_busy, unsupported_media_type, …)."),
                labels: [("code", code)])
        }.increment()
    }

    /// Sets `veza_live_listeners{protocol="hls"|"dash"|"websocket"|"webrtc"}` on all mounts
    /// (LL-HLS and DASH: players seen lately).
    func liveAudience(_ counts: [String: Int]) {
        for (kind, count) in counts { livePlaylistListeners[kind]?.set(Int64(count)) }
    }

    func liveBytesIn(_ count: Int) { liveBytesInTotal.increment(by: Int64(count)) }
    func liveBytesOut(_ count: Int) { liveBytesOutTotal.increment(by: Int64(count)) }
    func liveListenerJoined() { liveListeners.increment() }
    /// A listener (WebSocket) disconnected for falling behind.
    func liveListenerDropped() { liveListenersDropped.increment() }
    func liveListenerLeft(dropped: Bool) {
        liveListeners.decrement()
        if dropped { liveListenersDropped.increment() }
    }

    func liveSourceReconnected() { liveReconnects.increment() }
    func liveFallbackSeconds(_ seconds: Double) { liveFallback.increment(by: seconds) }

    /// `count` parts (one per rung each) were published `latency` after the audio completing
    /// them arrived; `missed` when that is more than a part's duration.
    func livePartPublished(latency: Duration, missed: Bool, count: Int) {
        livePartPublish.record(latency)
        if missed { liveDeadlineMisses.increment(by: Int64(count)) }
    }
}
