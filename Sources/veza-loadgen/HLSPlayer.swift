import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import StreamKit
import Synchronization

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
        get(path, keepBody: keepBody, refused: { self.failed() }, then)
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
