import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import StreamKit
import Synchronization

/// What every listener of a run shares.
struct ListenerSettings: Sendable {
    /// Media seconds played per wall second.
    var speed: Double
    /// Media seconds a player buffers ahead (HLS: segments are fetched while the buffer is below
    /// this; progressive: bytes are read up to this far ahead of the playhead).
    var bufferSeconds: Double
    /// Probability that an HLS session stops after a random number of segments.
    var skipProbability: Double
    /// Start a new session when one ends (skipped, played to the end, or failed).
    var restart: Bool
    /// The ABR rule.
    var abr: ABRChoice
    /// Keep the variants with these CODECS (`nil`: those of the first variant).
    var codecs: String?
    /// Progressive: the file's bit rate in kbit/s, which sets the read pace.
    var progressiveKbps: Double
    /// Progressive: wall seconds a session listens before stopping.
    var listenSeconds: Double
    /// How long to wait for the next part of a response.
    var timeout: Duration
    /// The end of the run.
    var end: ContinuousClock.Instant
    var stats: Stats
}

/// The ABR rules of StreamKit a listener can use.
enum ABRChoice: String, CaseIterable, Sendable {
    case hybrid, throughput, bola

    /// A fresh rule.
    func makeRule() -> any ABRRule {
        switch self {
        case .hybrid: HybridRule()
        case .throughput: ThroughputRule()
        case .bola: BOLARule()
        }
    }
}

/// What a listener hands back at the end of the run.
enum ListenerOutcome: Sendable {
    case hls
    /// Body bytes received, and wall seconds spent listening, over the run.
    case progressive(bytes: Int, seconds: Double)
}

/// A simulated player, confined to one event loop: its requests, timers and state all live
/// there, so the load generator's threads are the event loops, woken by their sockets and
/// timers only. (With a Swift task per listener, every response part hopped from the event loop
/// to the task and every request back: on the small machine these runs are made on, a third of
/// the load generator's CPU went to those thread switches, on the cores the server shares.)
///
/// A player keeps one keep-alive connection, opened when first needed and reopened when lost;
/// its state lives here, so after a lost connection it resumes where it was (the request in
/// flight is sent again on the new connection, as players retry). It stops at the end of the
/// run; what fails after that is not counted.
class Listener {
    let loop: any EventLoop
    /// Where the connection goes.
    let server: LoopbackURL
    let settings: ListenerSettings
    var stats: Stats { settings.stats }
    /// The client address this listener claims in `X-Forwarded-For` (`--forwarded-for`), if any.
    var forwardedFor: String?
    private var connection: ListenerConnection?
    private var done: EventLoopPromise<ListenerOutcome>?
    /// The run is over for this listener.
    private(set) var ended = false

    init(loop: any EventLoop, server: LoopbackURL, settings: ListenerSettings) {
        self.loop = loop
        self.server = server
        self.settings = settings
    }

    /// Starts playing at `time` and stops at the end of the run, then completes `done`.
    func start(at time: ContinuousClock.Instant, done: EventLoopPromise<ListenerOutcome>) {
        self.done = done
        after(time) { self.play() }
        loop.assumeIsolated().scheduleTask(in: Self.delay(until: settings.end)) { self.stop() }
    }

    /// Does what comes next (overridden).
    func play() {}

    /// What the listener hands back (overridden by progressive listeners).
    var outcome: ListenerOutcome { .hls }

    /// At the end of the run: counts a stall still going on (overridden).
    func finish(at time: ContinuousClock.Instant) {}

    /// Runs `body` on the loop at `time`, unless the listener has ended by then.
    func after(_ time: ContinuousClock.Instant, _ body: @escaping () -> Void) {
        loop.assumeIsolated().scheduleTask(in: Self.delay(until: time)) {
            if !self.ended { body() }
        }
    }

    private static func delay(until time: ContinuousClock.Instant) -> TimeAmount {
        .nanoseconds(max(0, Int64(((time - .now).seconds * 1e9).rounded())))
    }

    /// Calls `body` with an open connection: the current one, or a new one (counted). A
    /// connection the server closed while idle is replaced, and counted as a reconnect; a
    /// failed connect is counted, and ``play()`` runs again a second later.
    func connected(_ body: @escaping (ListenerConnection) -> Void) {
        if let connection {
            if connection.isOpen { return body(connection) }
            stats.update { $0.reconnects += 1 }
            self.connection = nil
        }
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // One read per wake-up: NIO keeps a pool of that many receive buffers (up to 64 KiB
            // each) per channel, which is 640 MiB for 10,000 listeners at its default of 4.
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHTTPClientHandlers() }
            }
            .connect(host: server.host, port: server.port)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(let channel) where self.ended:
                    channel.close(promise: nil)
                case .success(let channel):
                    let connection = ListenerConnection(host: self.server.authority, forwardedFor: self.forwardedFor,
                                                        timeout: TimeAmount(self.settings.timeout)) { failure in
                        self.lost(failure)
                    }
                    do {
                        try channel.pipeline.syncOperations.addHandler(connection)
                    } catch {
                        channel.close(promise: nil)
                        return self.lost(.lost)
                    }
                    self.connection = connection
                    self.stats.update { $0.connections += 1 }
                    body(connection)
                case .failure where self.ended:
                    break
                case .failure:
                    self.stats.update { $0.errors.connect += 1 }
                    self.after(.now + .seconds(1)) { self.play() }
                }
            }
    }

    /// The connection failed while a response was awaited: counted, and ``play()`` goes on (on a new connection).
    private func lost(_ failure: ConnectionFailure) {
        connection = nil
        guard !ended else { return }
        stats.update {
            switch failure {
            case .stale: $0.reconnects += 1
            case .lost: $0.errors.connectionLost += 1
            case .timedOut: $0.errors.timeout += 1
            }
        }
        connectionFailed()
        play()
    }

    /// Called before ``play()`` resumes after a lost connection (overridden).
    func connectionFailed() {}

    /// Closes the connection without counting anything (a progressive listener who stops listening).
    func hangUp() {
        connection?.close()
        connection = nil
    }

    /// Ends this listener: at the end of the run (counting a stall still going on), or when it
    /// is done early (it does not restart sessions).
    func retire(countingStall: Bool = false) {
        guard !ended else { return }
        ended = true
        if countingStall { finish(at: min(.now, settings.end)) }
        hangUp()
        done?.succeed(outcome)
    }

    private func stop() { retire(countingStall: true) }
}

/// A playback timeline: playback starts when the first media arrives; media that arrives after the
/// playhead has reached it is a stall, which pushes the rest of the timeline back. Times are wall
/// clock; media advances `speed` seconds per wall second.
struct Playback {
    let speed: Double
    /// When playback started.
    private(set) var start: ContinuousClock.Instant?
    /// Total wall time spent stalled.
    private(set) var stalled = Duration.zero
    /// Media seconds received.
    private(set) var buffered = 0.0

    init(speed: Double) {
        self.speed = speed
    }

    /// Media seconds played by `time`.
    func played(at time: ContinuousClock.Instant) -> Double {
        guard let start else { return 0 }
        return min(buffered, max(0, (time - start - stalled).seconds * speed))
    }

    /// Media seconds buffered ahead of the playhead at `time`.
    func ahead(at time: ContinuousClock.Instant) -> Double { buffered - played(at: time) }

    /// How long playback has been stalled at `time` (all the media received played), if it is.
    func stall(at time: ContinuousClock.Instant) -> Duration? {
        guard let start else { return nil }
        let deadline = start + stalled + .seconds(buffered / speed)
        return time > deadline ? time - deadline : nil
    }

    /// Adds `seconds` of media arrived at `time`; returns the stall it ended, if any.
    mutating func arrived(_ seconds: Double, at time: ContinuousClock.Instant) -> Duration? {
        defer { buffered += seconds }
        guard start != nil else {
            start = time
            return nil
        }
        let stall = self.stall(at: time)
        if let stall { stalled += stall }
        return stall
    }
}

extension Stats {
    /// Counts a stall of `duration`, if any.
    func record(stall duration: Duration?) {
        guard duration != nil else { return }
        update { $0.count(stall: duration) }
    }
}

/// An HLS player: master playlist, a variant chosen by StreamKit's ABR rule from StreamKit's throughput
/// estimator, its media playlist, init segment and segments in order at real-time pace, keeping up
/// to ``ListenerSettings/bufferSeconds`` of media ahead of the playhead.
final class HLSPlayer: Listener {
    /// One variant of the ladder.
    struct Variant: Sendable {
        /// The URI in the master playlist, without its query.
        var name: String
        var url: LoopbackURL
        var playlist: PlaylistCache.Media?
    }

    /// One play of the track.
    struct Session {
        let started = ContinuousClock.now
        /// Ladder rungs, lowest first, and their variants (set from the master playlist).
        var ladder: Ladder?
        var variants: [Variant] = []
        var rule: any ABRRule
        /// The rung of the segment being fetched (`nil` until the ABR rule has chosen it).
        var rung: Int?
        var previousRung: Int?
        /// The rung whose init segment was fetched last.
        var initialized: Int?
        /// The index of the next segment.
        var next = 0
        var skips: Bool
        /// Stop after this many segments (skipping listeners).
        var stopAfter: Int?
        var playback: Playback
    }

    private let master: LoopbackURL
    private let playlists: PlaylistCache
    /// Kept across sessions: it is the listener's network that it measures.
    private var estimator = ThroughputEstimator()
    private var session: Session?

    init(loop: any EventLoop, master: LoopbackURL, settings: ListenerSettings, playlists: PlaylistCache) {
        self.master = master
        self.playlists = playlists
        super.init(loop: loop, server: master, settings: settings)
    }

    /// Fetches or waits for what comes next, then plays on.
    override func play() {
        if session == nil {
            stats.update { $0.sessions += 1 }
            session = Session(rule: settings.abr.makeRule(), skips: Double.random(in: 0..<1) < settings.skipProbability,
                              playback: Playback(speed: settings.speed))
        }
        guard let s = session else { return }
        guard let ladder = s.ladder else {
            return fetch(master.path, keepBody: true) { response in
                guard let text = response.body.map({ String(buffer: $0) }),
                      let (ladder, variants) = self.playlists.ladder(text, master: self.master, codecs: self.settings.codecs) else {
                    return self.failed(playlist: true)
                }
                self.session?.ladder = ladder
                self.session?.variants = variants
                self.play()
            }
        }
        let segmentCount = s.variants.compactMap { $0.playlist?.segments.count }.min()
        if let segmentCount, s.next >= segmentCount {
            // Played to the end once the buffer drains.
            return after(.now + .seconds(s.playback.ahead(at: .now) / settings.speed)) {
                self.stats.update { $0.sessionsCompleted += 1 }
                self.endSession()
            }
        }
        if let stop = s.stopAfter, s.next >= stop {
            stats.update { $0.sessionsSkipped += 1 }
            return endSession()
        }
        guard let rung = s.rung else {
            // Wait until the next segment fits in the buffer, then choose its rung.
            let next = s.next
            let duration = s.variants.lazy.compactMap { $0.playlist?.segments[next].duration }.first ?? 6
            let excess = s.playback.ahead(at: .now) - max(0, settings.bufferSeconds - duration)
            if excess > 0 { return after(.now + .seconds(excess / settings.speed)) { self.chooseRung(ladder, segmentDuration: duration) } }
            return chooseRung(ladder, segmentDuration: duration)
        }
        guard let playlist = s.variants[rung].playlist else {
            let url = s.variants[rung].url
            return fetch(url.path, keepBody: true) { response in
                guard let text = response.body.map({ String(buffer: $0) }), let playlist = self.playlists.media(text, url: url) else {
                    return self.failed(playlist: true)
                }
                self.session?.variants[rung].playlist = playlist
                if let s = self.session, s.skips, s.stopAfter == nil, playlist.segments.count > 1 {
                    self.session?.stopAfter = Int.random(in: 1..<playlist.segments.count)
                }
                self.play()
            }
        }
        let segment = playlist.segments[s.next]
        if s.initialized != rung, segment.hasInit {
            guard let path = segment.initPath else { return failed(playlist: true) }
            return fetch(path) { _ in
                self.session?.initialized = rung
                self.play()
            }
        }
        guard let path = segment.path else { return failed(playlist: true) }
        let variant = s.variants[rung].name
        fetch(path) { response in
            guard var s = self.session else { return }
            let now = response.arrived
            self.estimator.record(bytes: Int64(response.bytes), durationSeconds: response.duration.seconds)
            let stall = s.playback.arrived(segment.duration, at: now)
            let firstAudio = s.playback.start == now ? (now - s.started).microseconds : nil
            self.stats.update {
                if let firstAudio { $0.timeToFirstAudio.record(firstAudio) }
                $0.count(stall: stall)
                $0.segments[variant, default: 0] += 1
            }
            s.next += 1
            s.previousRung = rung
            s.rung = nil
            self.session = s
            self.play()
        }
    }

    private func chooseRung(_ ladder: Ladder, segmentDuration: Double) {
        guard var s = session else { return }
        let estimate = estimator.estimate.map { Bitrate(bitsPerSecond: Int64($0.doubleValue / settings.speed)) }
        let context = ABRContext(ladder: ladder, bufferSeconds: s.playback.ahead(at: .now), throughputEstimate: estimate,
                                 previousRung: s.previousRung, segmentDurationSeconds: segmentDuration)
        let rung = s.rule.chooseRung(context)
        if let previous = s.previousRung, previous != rung { stats.update { $0.switches += 1 } }
        s.rung = rung
        session = s
        play()
    }

    /// Starts the next session, if the listener restarts them.
    private func endSession() {
        session = nil
        if settings.restart { play() } else { retire() }
    }

    override func finish(at time: ContinuousClock.Instant) {
        guard let s = session, let count = s.variants.compactMap({ $0.playlist?.segments.count }).min(), s.next < count else { return }
        stats.record(stall: s.playback.stall(at: time))
    }

    /// GETs `path` and hands over the response if it is a 2xx; else (counted) the session fails.
    private func fetch(_ path: String, keepBody: Bool = false, _ then: @escaping (HTTPResponse) -> Void) {
        connected { connection in
            connection.get(path, keepBody: keepBody) { response in
                self.stats.record(response)
                guard !self.ended else { return }
                if response.isSuccess { then(response) } else { self.failed() }
            }
        }
    }

    /// Ends a session that failed (a non-2xx response, already counted, or a playlist that could not
    /// be parsed or used), after a second, as a player would not retry at once.
    private func failed(playlist: Bool = false) {
        if playlist { stats.update { $0.errors.playlist += 1 } }
        after(.now + .seconds(1)) { self.endSession() }
    }
}

/// Playlists parsed once per distinct text, for every listener of the run.
///
/// Every listener still fetches each playlist from the server, as a player does; only the
/// parsing (and the resolving of each segment's URI) is shared between listeners that received
/// the same text from the same URL. At 10,000 listeners, parsing the same playlists again for
/// every session was a large part of the load generator's CPU, on the cores the server shares.
/// Bounded: it forgets everything past ``capacity`` texts (a server with per-session playlists).
final class PlaylistCache: Sendable {
    /// A media playlist as a player walks it.
    struct Media: Sendable {
        struct Segment: Sendable {
            /// Seconds.
            var duration: Double
            /// The path to GET (`nil`: the URI leaves the server).
            var path: String?
            /// Whether the segment has an initialization section (its own `EXT-X-MAP`, or the
            /// playlist's first one).
            var hasInit: Bool
            /// That section's path (`nil`: none, or it leaves the server).
            var initPath: String?
        }

        var segments: [Segment]
    }

    let capacity = 64
    private let parser = HLSParser(options: .init(allowUnknownTags: true, allowUnknownAttributes: true))
    private let masters = Mutex<[Key: (Ladder, [HLSPlayer.Variant])?]>([:])
    private let medias = Mutex<[Key: Media?]>([:])

    private struct Key: Hashable {
        var url: LoopbackURL
        var codecs: String?
        var text: String
    }

    /// The ladder of the master playlist `text` fetched from `master` (see ``ladder(_:master:codecs:)``);
    /// `nil` when it does not parse or has no usable ladder.
    func ladder(_ text: String, master: LoopbackURL, codecs: String?) -> (Ladder, [HLSPlayer.Variant])? {
        Self.cached(in: masters, Key(url: master, codecs: codecs, text: text), capacity: capacity) {
            guard let playlist = try? parser.parseMaster(text) else { return nil }
            return Self.ladder(playlist, master: master, codecs: codecs)
        }
    }

    /// The media playlist `text` fetched from `url`, with its URIs resolved; `nil` when it does
    /// not parse or has no segments.
    func media(_ text: String, url: LoopbackURL) -> Media? {
        Self.cached(in: medias, Key(url: url, codecs: nil, text: text), capacity: capacity) {
            guard let playlist = try? parser.parseMedia(text), !playlist.segments.isEmpty else { return nil }
            let firstMap = playlist.segments.lazy.compactMap(\.map).first
            return Media(segments: playlist.segments.map { segment in
                let map = segment.map ?? firstMap
                return Media.Segment(duration: segment.duration.seconds, path: url.resolving(segment.uri)?.path,
                                     hasInit: map != nil, initPath: map.flatMap { url.resolving($0.uri)?.path })
            })
        }
    }

    private static func cached<Value: Sendable>(in cache: borrowing Mutex<[Key: Value?]>, _ key: Key, capacity: Int, _ make: () -> Value?) -> Value? {
        if let hit = cache.withLock({ $0[key] }) { return hit }
        let value = make()
        cache.withLock {
            if $0.count >= capacity { $0.removeAll() }
            $0[key] = value
        }
        return value
    }

    /// The variants of `playlist` with the wanted codecs as a ladder (by AVERAGE-BANDWIDTH, else
    /// BANDWIDTH) and their URLs, in ladder order.
    static func ladder(_ playlist: MasterPlaylist, master: LoopbackURL, codecs: String?) -> (Ladder, [HLSPlayer.Variant])? {
        guard let wanted = codecs ?? playlist.variants.first.map({ $0.codecs.joined(separator: ",") }) else { return nil }
        let chosen = playlist.variants.filter { $0.codecs.joined(separator: ",") == wanted }
        let rungs = chosen.indices.map { LadderRung(id: String($0), bitrate: chosen[$0].averageBandwidth ?? chosen[$0].bandwidth) }
        guard let ladder = Ladder(rungs: rungs) else { return nil }
        var variants: [HLSPlayer.Variant] = []
        for rung in ladder.rungs {
            let uri = chosen[Int(rung.id)!].uri
            guard let url = master.resolving(uri) else { return nil }
            variants.append(HLSPlayer.Variant(name: String(uri.prefix { $0 != "?" }), url: url))
        }
        return (ladder, variants)
    }

}

/// A progressive player: one GET of the whole file per session, on a connection of its own,
/// read no faster than real time (`--progressive-kbps × speed`, plus
/// ``ListenerSettings/bufferSeconds`` read ahead), so that TCP backpressure holds the server
/// back; it stops after ``ListenerSettings/listenSeconds`` (closing the connection, as the
/// response is unfinished) or at the end of the file.
final class ProgressivePlayer: Listener {
    /// Body bytes received over the run.
    private var bytes = 0
    /// Wall seconds spent listening over the run.
    private var listened = 0.0
    /// The current session's playback (from its response head on).
    private var playback: Playback?
    /// The current session: when it started, when it stops listening, bytes received.
    private var started = ContinuousClock.now
    private var stopAt = ContinuousClock.now
    private var received = 0
    /// Counts sessions, so that a timer of an earlier one does nothing.
    private var generation = 0
    private var listening = false
    private var bytesPerMediaSecond: Double { settings.progressiveKbps * 1000 / 8 }

    init(loop: any EventLoop, url: LoopbackURL, settings: ListenerSettings) {
        super.init(loop: loop, server: url, settings: settings)
    }

    override var outcome: ListenerOutcome { .progressive(bytes: bytes, seconds: listened) }

    /// Starts a session.
    override func play() {
        generation += 1
        let session = generation
        started = .now
        stopAt = started + .seconds(settings.listenSeconds)
        received = 0
        listening = true
        after(stopAt) { if self.generation == session, self.listening { self.endSession() } }
        connected { connection in
            guard self.generation == session, self.listening else { return }
            self.stats.update { $0.sessions += 1 }
            connection.stream(self.server.path) { event in self.receive(event, on: connection) }
        }
    }

    private func receive(_ event: ListenerConnection.StreamEvent, on connection: ListenerConnection) {
        guard listening else { return }
        switch event {
        case .head(let head, let timeToFirstByte):
            stats.update {
                $0.requests += 1
                $0.timeToFirstByte.record(timeToFirstByte.microseconds)
            }
            guard (200..<300).contains(Int(head.status.code)) else {
                stats.update { $0.errors.status += 1 }
                stopListening()
                hangUp()
                return after(.now + .seconds(1)) { self.restartOrRetire() }
            }
            playback = Playback(speed: settings.speed)
            pace(connection)
        case .chunk(let chunk):
            let now = ContinuousClock.now
            // A listener who stops at `stopAt` has closed the connection by then: bytes that
            // arrive later are not received.
            guard now < stopAt else { return endSession() }
            received += chunk.readableBytes
            bytes += chunk.readableBytes
            let first = playback?.start == nil
            let stall = playback?.arrived(Double(chunk.readableBytes) / bytesPerMediaSecond, at: now)
            stats.update {
                $0.bytes += chunk.readableBytes
                if first { $0.progressiveFirstAudio.record((now - started).microseconds) }
                $0.count(stall: stall)
            }
            pace(connection)
        case .end:
            stats.update { $0.sessionsCompleted += 1 }
            endSession()
        }
    }

    /// Reads no further ahead of the playhead than the buffer allows (before playback: one buffer).
    private func pace(_ connection: ListenerConnection) {
        guard let current = playback, listening else { return }
        let now = ContinuousClock.now
        let allowed = (current.played(at: now) + settings.bufferSeconds) * bytesPerMediaSecond
        guard Double(received) >= allowed else { return connection.resume() }
        connection.pause()
        let wait = (Double(received) - allowed) / bytesPerMediaSecond / settings.speed
        let session = generation
        after(min(stopAt, now + .seconds(max(wait, 0.01)))) {
            if self.generation == session { self.pace(connection) }
        }
    }

    /// The session is over (played to the end, or listened long enough): the connection closes.
    private func endSession() {
        guard listening else { return }
        stopListening()
        playback = nil
        hangUp()
        restartOrRetire()
    }

    private func stopListening() {
        listening = false
        listened += (min(ContinuousClock.now, stopAt) - started).seconds
    }

    private func restartOrRetire() {
        if settings.restart { play() } else { retire() }
    }

    /// A lost connection ends the session (the next one starts on a new connection); its
    /// playback is kept, so that a stall still going on at the end of the run is counted.
    override func connectionFailed() {
        if listening { stopListening() }
    }

    override func finish(at time: ContinuousClock.Instant) {
        if listening { stopListening() }
        stats.record(stall: playback?.stall(at: time))
    }
}
