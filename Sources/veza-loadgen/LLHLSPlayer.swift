import Foundation
import Histogram
import NIOCore
import StreamKit
import Synchronization

/// `--llhls URL`: a Low-Latency HLS player of one live rung's media playlist, as RFC 8216bis
/// §6.3 describes a client: it starts PART-HOLD-BACK from the live edge, fetches the
/// initialization section, then every part in order, each as soon as it is listed, and asks for
/// the next one with a blocking playlist reload (`_HLS_msn` / `_HLS_part`, §6.2.5.2), which the
/// server holds until that part exists. One keep-alive connection, one request at a time (an
/// HTTP/1.1 player; over HTTP/2 a player would also hold the preload hint open).
///
/// Playback starts when the first part arrives and runs on the wall clock: a part that arrives
/// after the playhead reached it is a stall. The delay to the live edge is measured per part as
/// the wall time it plays at minus the wall time of its first sample (EXT-X-PROGRAM-DATE-TIME,
/// which the host stamps from the source's arrival): what a listener hears behind the source.
final class LLHLSPlayer: Listener {
    /// A part's place: its segment's media sequence number, then its index there.
    struct Position: Hashable, Comparable {
        var msn: Int64
        var index: Int

        static func < (a: Position, b: Position) -> Bool { (a.msn, a.index) < (b.msn, b.index) }
    }

    struct Session {
        let started = ContinuousClock.now
        var playlist: LivePlaylist?
        var initialized = false
        var next: Position?
        var playback = Playback(speed: 1)
    }

    private let url: LoopbackURL
    private let playlists: LivePlaylistCache
    private var session: Session?

    init(loop: any EventLoop, url: LoopbackURL, settings: ListenerSettings, playlists: LivePlaylistCache) {
        self.url = url
        self.playlists = playlists
        super.init(loop: loop, server: url, settings: settings)
    }

    override func play() {
        if session == nil {
            stats.update { $0.sessions += 1 }
            session = Session()
        }
        guard let s = session else { return }
        guard let playlist = s.playlist else { return reload(nil) }
        if !s.initialized, let initPath = playlist.initPath {
            return fetch(initPath, keepBody: false) { _ in
                self.session?.initialized = true
                self.play()
            }
        }
        guard var next = s.next else {
            // Start at least PART-HOLD-BACK from the end of the playlist (§6.3.3).
            guard let start = playlist.start else { return reload(nil) }
            session?.next = start
            return play()
        }
        if let count = playlist.partCounts[next.msn], next.index >= count {
            // The segment is complete: its next part is the following segment's first.
            next = Position(msn: next.msn + 1, index: 0)
            session?.next = next
        }
        if let part = playlist.part(next) {
            guard let path = part.path else { return failed(playlist: true) }
            return fetch(path, keepBody: false) { response in self.arrived(part, response) }
        }
        if let first = playlist.parts.first, next < first.position {
            // Fell out of the window of parts: a long stall, counted as such when the next part
            // plays; start again from the live edge.
            stats.update { $0.errors.playlist += 1 }
            session?.next = nil
            return play()
        }
        if playlist.endList {
            stats.update { $0.sessionsCompleted += 1 }
            return retire()
        }
        reload(next)
    }

    /// Fetches the playlist, blocking until `position` is listed when given.
    private func reload(_ position: Position?) {
        var path = url.path
        if let position {
            path += (path.contains("?") ? "&" : "?") + "_HLS_msn=\(position.msn)&_HLS_part=\(position.index)"
        }
        fetch(path, keepBody: true) { response in
            guard let text = response.body.map({ String(buffer: $0) }), let playlist = self.playlists.playlist(text, url: self.url) else {
                return self.failed(playlist: true)
            }
            self.session?.playlist = playlist
            self.play()
        }
    }

    private func arrived(_ part: LivePlaylist.Part, _ response: HTTPResponse) {
        guard var s = session else { return }
        let now = response.arrived
        let stall = s.playback.arrived(part.duration, at: now)
        let firstAudio = s.playback.start == now ? (now - s.started).microseconds : nil
        var delay: UInt64?
        if let wallStart = part.wallStart, let start = s.playback.start {
            // The playhead reaches this part once everything before it has played.
            let playsAt = start + s.playback.stalled + .seconds(s.playback.buffered - part.duration)
            delay = UInt64(max(0, ((playsAt - now).seconds + Date().timeIntervalSince1970 - wallStart) * 1e6))
        }
        stats.update {
            if let firstAudio { $0.timeToFirstAudio.record(firstAudio) }
            if let delay { $0.liveDelay.record(delay) }
            $0.count(stall: stall)
            $0.segments["parts", default: 0] += 1
        }
        s.next = Position(msn: part.msn, index: part.index + 1)  // or the next segment's first: see play()
        session = s
        play()
    }

    override func finish(at time: ContinuousClock.Instant) {
        stats.record(stall: session?.playback.stall(at: time))
    }

    /// GETs `path`; on a non-2xx (counted) the player tries again a second later, as players do.
    private func fetch(_ path: String, keepBody: Bool, _ then: @escaping (HTTPResponse) -> Void) {
        get(path, keepBody: keepBody, refused: { self.after(.now + .seconds(1)) { self.play() } }, then)
    }

    private func failed(playlist: Bool) {
        if playlist { stats.update { $0.errors.playlist += 1 } }
        session?.playlist = nil
        after(.now + .seconds(1)) { self.play() }
    }
}

/// A live rung's media playlist as ``LLHLSPlayer`` walks it.
struct LivePlaylist: Sendable {
    struct Part: Sendable {
        var msn: Int64
        var index: Int
        /// The path to GET (`nil`: the URI leaves the server).
        var path: String?
        /// Seconds.
        var duration: Double
        /// The wall time of its first sample, in seconds since 1970 (`nil` without an
        /// EXT-X-PROGRAM-DATE-TIME before it).
        var wallStart: Double?

        var position: LLHLSPlayer.Position { LLHLSPlayer.Position(msn: msn, index: index) }
    }

    /// Every listed part, in order.
    var parts: [Part]
    /// Complete segments' part counts, by media sequence number.
    var partCounts: [Int64: Int]
    var initPath: String?
    var partHoldBack: Double
    var endList: Bool

    init(_ media: MediaPlaylist, url: LoopbackURL) {
        var parts: [Part] = []
        var counts: [Int64: Int] = [:]
        var wall: Double?
        func add(_ list: [PartialSegment], msn: Int64) {
            for (index, part) in list.enumerated() {
                let duration = part.duration.seconds
                parts.append(Part(msn: msn, index: index, path: url.resolving(part.uri)?.path, duration: duration, wallStart: wall))
                wall = wall.map { $0 + duration }
            }
        }
        var segmentWall: Double?
        for (offset, segment) in media.segments.enumerated() {
            let msn = media.mediaSequence + Int64(offset)
            if let date = segment.programDateTime { segmentWall = Double(date.millisecondsSince1970) / 1000 }
            wall = segmentWall
            add(segment.parts, msn: msn)
            if !segment.parts.isEmpty { counts[msn] = segment.parts.count }
            segmentWall = segmentWall.map { $0 + segment.duration.seconds }
        }
        wall = segmentWall
        add(media.trailingParts, msn: media.mediaSequence + Int64(media.segments.count))
        self.parts = parts
        partCounts = counts
        initPath = (media.segments.last?.map ?? media.segments.first?.map).flatMap { url.resolving($0.uri)?.path }
        partHoldBack = media.serverControl?.partHoldBack?.seconds ?? 3 * (media.partTarget?.seconds ?? 1)
        endList = media.endList
    }

    /// The part at `position`, if listed.
    func part(_ position: LLHLSPlayer.Position) -> Part? {
        var low = 0, high = parts.count
        while low < high {
            let middle = (low + high) / 2
            if parts[middle].position < position { low = middle + 1 } else { high = middle }
        }
        guard low < parts.count, parts[low].position == position else { return nil }
        return parts[low]
    }

    /// Where a player joining now starts: the last part that leaves at least PART-HOLD-BACK
    /// of media after its own start.
    var start: LLHLSPlayer.Position? {
        var ahead = 0.0
        for part in parts.reversed() {
            ahead += part.duration
            if ahead >= partHoldBack { return part.position }
        }
        return nil
    }
}

/// Live playlists parsed once per distinct text for every listener of the run: with blocking
/// reloads, all listeners of a rung receive the same text at nearly the same moment. Bounded.
final class LivePlaylistCache: Sendable {
    private let parsed = Mutex<[String: LivePlaylist]>([:])
    private static let capacity = 64
    private static let parser = HLSParser(options: .init(allowUnknownTags: true, allowUnknownAttributes: true))

    func playlist(_ text: String, url: LoopbackURL) -> LivePlaylist? {
        if let hit = parsed.withLock({ $0[text] }) { return hit }
        guard let media = try? Self.parser.parseMedia(text) else { return nil }
        let playlist = LivePlaylist(media, url: url)
        parsed.withLock {
            if $0.count >= Self.capacity { $0.removeAll(keepingCapacity: true) }
            $0[text] = playlist
        }
        return playlist
    }
}
