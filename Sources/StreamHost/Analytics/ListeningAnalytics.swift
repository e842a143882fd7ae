public import ServiceLifecycle
import Foundation
import Logging
import Synchronization

/// What `GET /v1/analytics/live` sends each sweep.
public struct ListenersNow: Sendable, Hashable, Codable {
    /// Seconds since 1970.
    public var time: Double
    /// Listeners of tracks now, in all.
    public var listeners: Int
    /// Listeners now, by track.
    public var tracks: [String: Int]
    /// Listeners of live mounts now, by mount (the live path's own count: relay, WebSocket and
    /// WebRTC connections, LL-HLS and DASH players seen lately).
    public var mounts: [String: Int]
    /// Plays counted in the last minute (sessions crossing the play threshold).
    public var playsLastMinute: Int
    /// Playback sessions open (listening, paused, or not yet timed out).
    public var openSessions: Int
}

/// Listening analytics as a service: every ``AnalyticsConfiguration/sweepSeconds`` it ends idle
/// sessions, writes them (and the minute's listener peaks) to the ``AnalyticsStore``, sets
/// `veza_listeners` and sends the live feed. Sessions whose write failed are kept and written
/// again (up to 100,000; beyond that the oldest are dropped and counted). At shutdown every
/// open session is ended and written.
public final class ListeningAnalytics: Service, Sendable {
    let tracker: ListeningTracker
    let store: (any AnalyticsStore)?
    let configuration: AnalyticsConfiguration
    let metrics: HostMetrics
    let logger: Logger
    /// Live mounts' listener counts, by mount.
    let mountListeners: @Sendable () -> [String: Int]
    private let feed = Mutex<(next: Int, subscribers: [Int: AsyncStream<ListenersNow>.Continuation], latest: ListenersNow?)>((0, [:], nil))
    private let pending = Mutex<(sessions: [FinishedSession], peaks: [ListenerPeak])>(([], []))
    static let pendingLimit = 100_000

    init(tracker: ListeningTracker, store: (any AnalyticsStore)?, metrics: HostMetrics, logger: Logger,
         mountListeners: @escaping @Sendable () -> [String: Int]) {
        self.tracker = tracker
        self.store = store
        configuration = tracker.configuration
        self.metrics = metrics
        self.logger = logger
        self.mountListeners = mountListeners
    }

    /// Sweeps until graceful shutdown, then ends and writes every open session.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            var lastPurge = 0.0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(self.configuration.sweepSeconds))
                let now = Date().timeIntervalSince1970
                await self.sweep(now: now)
                if now - lastPurge >= 3600 {
                    lastPurge = now
                    await self.purge(now: now)
                }
            }
        }
        // Shutdown: every open session ends now and is written.
        await sweep(now: Date().timeIntervalSince1970, closingAll: true)
        feed.withLock { feed in
            for continuation in feed.subscribers.values { continuation.finish() }
            feed.subscribers = [:]
        }
    }

    /// One sweep (also called by tests, with a chosen clock).
    func sweep(now: Double, closingAll: Bool = false) async {
        let sweep = tracker.sweep(now: now, closingAll: closingAll)
        for session in sweep.finished { metrics.listeningSessionEnded(session.outcome, play: session.isPlay) }
        let total = sweep.listeners.values.reduce(0, +)
        metrics.listeners(total)
        let minute = Int64(now / 60)
        let snapshot = ListenersNow(time: now, listeners: total, tracks: sweep.listeners, mounts: mountListeners(),
                                     playsLastMinute: sweep.playsByMinute[minute - 1, default: 0] + sweep.playsByMinute[minute, default: 0],
                                     openSessions: tracker.openSessions)
        feed.withLock { feed in
            feed.latest = snapshot
            for continuation in feed.subscribers.values { continuation.yield(snapshot) }
        }
        let peaks = sweep.peaks.map { ListenerPeak(track: $0.track, minute: $0.minute * 60, peak: $0.peak) }
        let batch = pending.withLock { pending -> (sessions: [FinishedSession], peaks: [ListenerPeak]) in
            pending.sessions += sweep.finished
            pending.peaks += peaks
            if pending.sessions.count > Self.pendingLimit {
                let dropped = pending.sessions.count - Self.pendingLimit
                pending.sessions.removeFirst(dropped)
                logger.error("listening sessions dropped: the analytics store has been failing", metadata: ["dropped": "\(dropped)"])
            }
            let batch = pending
            pending = ([], [])
            return batch
        }
        guard let store else { return }
        guard !batch.sessions.isEmpty || !batch.peaks.isEmpty else {
            await store.flush()
            return
        }
        do {
            try await store.recordListening(batch.sessions, peaks: batch.peaks)
        } catch {
            metrics.listeningStoreError()
            logger.warning("cannot write listening sessions; they are kept and written again", metadata: ["error": "\(error)"])
            pending.withLock { pending in
                pending.sessions = batch.sessions + pending.sessions
                pending.peaks = batch.peaks + pending.peaks
            }
        }
    }

    private func purge(now: Double) async {
        guard let store else { return }
        let retention = configuration.retentionDays * 86_400
        do {
            try await store.purgeListening(sessionsBefore: now - retention, rollupsBefore: now - 10 * retention)
        } catch {
            logger.warning("cannot purge old listening data", metadata: ["error": "\(error)"])
        }
    }

    /// The live feed: the latest snapshot first, then one per sweep until the stream is dropped.
    func subscribe() -> AsyncStream<ListenersNow> {
        let (stream, continuation) = AsyncStream.makeStream(of: ListenersNow.self, bufferingPolicy: .bufferingNewest(4))
        let id = feed.withLock { feed -> Int in
            let id = feed.next
            feed.next += 1
            feed.subscribers[id] = continuation
            if let latest = feed.latest { continuation.yield(latest) }
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.feed.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The latest snapshot (nil before the first sweep).
    var latest: ListenersNow? { feed.withLock { $0.latest } }
}
