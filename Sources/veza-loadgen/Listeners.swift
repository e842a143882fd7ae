import Histogram
import NIOCore
import NIOHTTP1
import StreamKit

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

/// A simulated player: sessions on one connection at a time.
protocol Player: AnyObject {
    /// Plays on `http` until the player is done (`false`), wants a new connection for its next
    /// session (`true`), or the connection must be replaced (throws).
    func play(on http: inout HTTPConnection) async throws -> Bool
    /// At the end of the run: counts a stall still going on.
    func finish(at time: ContinuousClock.Instant)
}

/// Runs `player` on one keep-alive connection to `url`, reopening it when it is lost, until the
/// player is done or the task is cancelled (the end of the run). Errors after cancellation are not counted.
func drive(_ player: some Player, url: LoopbackURL, settings: ListenerSettings) async {
    let stats = settings.stats
    defer { if Task.isCancelled { player.finish(at: min(.now, settings.end)) } }
    while !Task.isCancelled {
        let channel: HTTPClientChannel
        do {
            channel = try await HTTPConnection.open(url)
            stats.update { $0.connections += 1 }
        } catch {
            if Task.isCancelled { return }
            stats.update { $0.errors.connect += 1 }
            try? await Task.sleep(for: .seconds(1))
            continue
        }
        do {
            let again = try await channel.executeThenClose { inbound, outbound in
                var http = HTTPConnection(channel, inbound, outbound, url: url, timeout: settings.timeout)
                return try await player.play(on: &http)
            }
            if !again { return }
        } catch let lost as ConnectionLost where !Task.isCancelled {
            stats.update { if lost.stale { $0.reconnects += 1 } else { $0.errors.connectionLost += 1 } }
        } catch is RequestTimedOut where !Task.isCancelled {
            stats.update { $0.errors.timeout += 1 }
        } catch {
            if !Task.isCancelled { stats.update { $0.errors.connectionLost += 1 } }
        }
    }
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
        guard let duration else { return }
        update {
            $0.stalls += 1
            $0.stallSeconds += duration.seconds
        }
    }
}

/// An HLS player: master playlist, a variant chosen by StreamKit's ABR rule from StreamKit's throughput
/// estimator, its media playlist, init segment and segments in order at real-time pace, keeping up
/// to ``ListenerSettings/bufferSeconds`` of media ahead of the playhead.
///
/// Its state lives here, not on the stack, so after a lost connection it resumes where it was (the
/// request in flight is sent again on the new connection, as players retry).
final class HLSPlayer: Player {
    /// One variant of the ladder.
    struct Variant {
        /// The URI in the master playlist, without its query.
        var name: String
        var url: LoopbackURL
        var playlist: MediaPlaylist?
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
    private let settings: ListenerSettings
    private let parser = HLSParser(options: .init(allowUnknownTags: true, allowUnknownAttributes: true))
    /// Kept across sessions: it is the listener's network that it measures.
    private var estimator = ThroughputEstimator()
    private var session: Session?
    private var stats: Stats { settings.stats }

    init(master: LoopbackURL, settings: ListenerSettings) {
        self.master = master
        self.settings = settings
    }

    func play(on http: inout HTTPConnection) async throws -> Bool {
        while !Task.isCancelled {
            if session == nil {
                stats.update { $0.sessions += 1 }
                session = Session(rule: settings.abr.makeRule(), skips: Double.random(in: 0..<1) < settings.skipProbability,
                                  playback: Playback(speed: settings.speed))
            }
            if try await step(on: &http) == false {
                session = nil
                guard settings.restart else { return false }
            }
        }
        return false
    }

    /// Fetches what comes next; `false` when the session has ended.
    private func step(on http: inout HTTPConnection) async throws -> Bool {
        guard var s = session else { return false }
        defer { session = s }
        guard let ladder = s.ladder else {
            guard let text = try await fetchText(master, on: &http) else { return try await failed() }
            guard let playlist = try? parser.parseMaster(text),
                  let (ladder, variants) = Self.ladder(playlist, master: master, codecs: settings.codecs) else {
                return try await failed(playlist: true)
            }
            s.ladder = ladder
            s.variants = variants
            return true
        }
        let segmentCount = s.variants.compactMap { $0.playlist?.segments.count }.min()
        if let segmentCount, s.next >= segmentCount {
            // Played to the end once the buffer drains.
            try await Task.sleep(for: .seconds(s.playback.ahead(at: .now) / settings.speed))
            stats.update { $0.sessionsCompleted += 1 }
            return false
        }
        if let stop = s.stopAfter, s.next >= stop {
            stats.update { $0.sessionsSkipped += 1 }
            return false
        }
        guard let rung = s.rung else {
            // Wait until the next segment fits in the buffer, then choose its rung.
            let next = s.next
            let duration = s.variants.lazy.compactMap { $0.playlist?.segments[next].duration.seconds }.first ?? 6
            let excess = s.playback.ahead(at: .now) - max(0, settings.bufferSeconds - duration)
            if excess > 0 { try await Task.sleep(for: .seconds(excess / settings.speed)) }
            let estimate = estimator.estimate.map { Bitrate(bitsPerSecond: Int64($0.doubleValue / settings.speed)) }
            let context = ABRContext(ladder: ladder, bufferSeconds: s.playback.ahead(at: .now), throughputEstimate: estimate,
                                     previousRung: s.previousRung, segmentDurationSeconds: duration)
            let rung = s.rule.chooseRung(context)
            if let previous = s.previousRung, previous != rung { stats.update { $0.switches += 1 } }
            s.rung = rung
            return true
        }
        guard let playlist = s.variants[rung].playlist else {
            guard let text = try await fetchText(s.variants[rung].url, on: &http) else { return try await failed() }
            guard let playlist = try? parser.parseMedia(text), !playlist.segments.isEmpty else {
                return try await failed(playlist: true)
            }
            s.variants[rung].playlist = playlist
            if s.skips, s.stopAfter == nil, playlist.segments.count > 1 {
                s.stopAfter = Int.random(in: 1..<playlist.segments.count)
            }
            return true
        }
        let segment = playlist.segments[s.next]
        if s.initialized != rung, let map = segment.map ?? playlist.segments.lazy.compactMap(\.map).first {
            guard let url = s.variants[rung].url.resolving(map.uri) else { return try await failed(playlist: true) }
            guard try await fetch(url, on: &http) != nil else { return try await failed() }
            s.initialized = rung
            return true
        }
        guard let url = s.variants[rung].url.resolving(segment.uri) else { return try await failed(playlist: true) }
        guard let response = try await fetch(url, on: &http) else { return try await failed() }
        let now = ContinuousClock.now
        estimator.record(bytes: Int64(response.bytes), durationSeconds: response.duration.seconds)
        if s.playback.start == nil { stats.update { $0.timeToFirstAudio.record((now - s.started).microseconds) } }
        stats.record(stall: s.playback.arrived(segment.duration.seconds, at: now))
        stats.update { $0.segments[s.variants[rung].name, default: 0] += 1 }
        s.next += 1
        s.previousRung = rung
        s.rung = nil
        return true
    }

    /// The variants of `playlist` with the wanted codecs as a ladder (by AVERAGE-BANDWIDTH, else
    /// BANDWIDTH) and their URLs, in ladder order.
    static func ladder(_ playlist: MasterPlaylist, master: LoopbackURL, codecs: String?) -> (Ladder, [Variant])? {
        guard let wanted = codecs ?? playlist.variants.first.map({ $0.codecs.joined(separator: ",") }) else { return nil }
        let chosen = playlist.variants.filter { $0.codecs.joined(separator: ",") == wanted }
        let rungs = chosen.indices.map { LadderRung(id: String($0), bitrate: chosen[$0].averageBandwidth ?? chosen[$0].bandwidth) }
        guard let ladder = Ladder(rungs: rungs) else { return nil }
        var variants: [Variant] = []
        for rung in ladder.rungs {
            let uri = chosen[Int(rung.id)!].uri
            guard let url = master.resolving(uri) else { return nil }
            variants.append(Variant(name: String(uri.prefix { $0 != "?" }), url: url))
        }
        return (ladder, variants)
    }

    func finish(at time: ContinuousClock.Instant) {
        guard let s = session, let count = s.variants.compactMap({ $0.playlist?.segments.count }).min(), s.next < count else { return }
        stats.record(stall: s.playback.stall(at: time))
    }

    /// GETs `url`; `nil` (counted) unless 2xx.
    private func fetch(_ url: LoopbackURL, on http: inout HTTPConnection, keepBody: Bool = false) async throws -> HTTPResponse? {
        let response = try await http.get(url.path, keepBody: keepBody)
        stats.record(response)
        return (200..<300).contains(response.status) ? response : nil
    }

    /// GETs a playlist; `nil` unless 2xx.
    private func fetchText(_ url: LoopbackURL, on http: inout HTTPConnection) async throws -> String? {
        try await fetch(url, on: &http, keepBody: true)?.body.map { String(buffer: $0) }
    }

    /// Ends a session that failed (a non-2xx response, already counted, or a playlist that could not
    /// be parsed or used), after a second, as a player would not retry at once.
    private func failed(playlist: Bool = false) async throws -> Bool {
        if playlist { stats.update { $0.errors.playlist += 1 } }
        try await Task.sleep(for: .seconds(1))
        return false
    }
}

/// A progressive player: one GET of the whole file per session, read no faster than real time
/// (`--progressive-kbps × speed`, plus ``ListenerSettings/bufferSeconds`` read ahead), so that
/// TCP backpressure holds the server back; it stops after ``ListenerSettings/listenSeconds``
/// (closing the connection, as the response is unfinished) or at the end of the file.
final class ProgressivePlayer: Player {
    private let url: LoopbackURL
    private let settings: ListenerSettings
    /// Body bytes received over the run.
    private(set) var bytes = 0
    /// Wall seconds spent listening over the run.
    private(set) var listened = 0.0
    /// The current session's playback.
    private var playback: Playback?
    private var stats: Stats { settings.stats }

    init(url: LoopbackURL, settings: ListenerSettings) {
        self.url = url
        self.settings = settings
    }

    /// One session per connection: plays, then returns so that the connection is closed.
    func play(on http: inout HTTPConnection) async throws -> Bool {
        stats.update { $0.sessions += 1 }
        let started = ContinuousClock.now
        let stop = started + .seconds(settings.listenSeconds)
        defer { listened += (min(ContinuousClock.now, stop) - started).seconds }
        let bytesPerMediaSecond = settings.progressiveKbps * 1000 / 8
        let (head, sent) = try await http.start(url.path)
        stats.update {
            $0.requests += 1
            $0.timeToFirstByte.record((ContinuousClock.now - sent).microseconds)
        }
        guard (200..<300).contains(Int(head.status.code)) else {
            stats.update { $0.errors.status += 1 }
            try await Task.sleep(for: .seconds(1))
            return settings.restart
        }
        playback = Playback(speed: settings.speed)
        var received = 0
        while ContinuousClock.now < stop, let current = playback {
            // Read no further ahead of the playhead than the buffer allows (before playback: one buffer).
            let allowed = (current.played(at: .now) + settings.bufferSeconds) * bytesPerMediaSecond
            if Double(received) >= allowed {
                let wait = (Double(received) - allowed) / bytesPerMediaSecond / settings.speed
                try await Task.sleep(until: min(stop, .now + .seconds(max(wait, 0.01))))
                continue
            }
            guard let chunk = try await http.nextChunk() else {
                stats.update { $0.sessionsCompleted += 1 }
                break
            }
            let now = ContinuousClock.now
            // A listener who stops at `stop` has closed the connection by then: bytes that
            // arrive later are not received (the wait for them may end well after `stop`, a
            // paced server sending a second of audio at a time).
            guard now < stop else { break }
            received += chunk.readableBytes
            bytes += chunk.readableBytes
            stats.update { $0.bytes += chunk.readableBytes }
            if current.start == nil { stats.update { $0.progressiveFirstAudio.record((now - started).microseconds) } }
            stats.record(stall: playback?.arrived(Double(chunk.readableBytes) / bytesPerMediaSecond, at: now))
        }
        // Over (not when a timeout or the end of the run interrupted it: then `finish` may count a stall).
        playback = nil
        return settings.restart
    }

    func finish(at time: ContinuousClock.Instant) {
        stats.record(stall: playback?.stall(at: time))
    }
}
