import Foundation
import StreamKit
import Synchronization

/// A listening session once it ended, as it is stored and rolled up.
public struct FinishedSession: Sendable, Hashable, Codable {
    /// How a session ended.
    public enum Outcome: String, Sendable, Hashable, Codable, CaseIterable {
        /// Played to the end (a `complete` beacon, or the last segment fetched and the track
        /// listened to within a segment of its end).
        case completed
        /// Left before the play threshold (30 s by default).
        case skipped
        /// Left after the play threshold, before the end.
        case abandoned
        /// Fetched playlists but no media, or a client that names itself a bot: not a listener,
        /// counted apart.
        case bot
    }

    /// The session id (16 base64url characters, random).
    public var id: String
    /// The track played.
    public var track: String
    /// A keyed hash of the token subject the playback URL was issued to (never the subject).
    public var subjectTag: String?
    /// The session's first request, seconds since 1970.
    public var startedAt: Double
    /// Its last request or beacon, seconds since 1970.
    public var endedAt: Double
    /// Seconds listened: the server's estimate from the session's requests, or the beacons' when there were any (see "Listening analytics" in the HTTP API article).
    public var listenedSeconds: Double
    /// Seconds of the track fetched (segments and progressive bytes).
    public var fetchedSeconds: Double
    public var outcome: Outcome
    /// Whether it counts as a play (listened at least the threshold, or a short track completed).
    public var isPlay: Bool
    /// Stalls the player reported.
    public var stalls: Int
    /// Seeks (reported, or jumps between the segments fetched).
    public var seeks: Int
    /// Beacons accepted.
    public var beacons: Int
    /// The rendition heard most.
    public var rendition: String?
    /// Its codec.
    public var codec: String?
    /// `203.0.113.0/24`, `2001:db8:1::/48`, or nil (`analytics.clientNetworks = none`).
    public var clientPrefix: String?
    /// From the User-Agent: `browser`, `ffmpeg`, `gstreamer`, `mpv`, `vlc`, `apple`, `android`,
    /// `bot` or `other`.
    public var clientType: String
    /// ISO 3166 country code, when a country database is configured (``AnalyticsConfiguration/countryDatabase``).
    public var country: String?
    /// Segment and progressive requests.
    public var mediaRequests: Int
    /// Playlist and MPD requests.
    public var playlistRequests: Int
    /// Bytes sent.
    public var bytes: Int64

    /// Who counts as one listener for unique counts: the token subject when the URL was issued
    /// to one, else the session.
    var listenerKey: String { subjectTag.map { "s:" + $0 } ?? "p:" + id }
}

/// A beacon batch's outcome: how many were taken and why the others were dropped.
struct BeaconReceipt: Sendable, Hashable, Codable {
    var accepted = 0
    var dropped: [String: Int] = [:]
}

/// The host's live view of listening: every playback session's state, updated by each delivery
/// request (on the event loop, so it costs a dictionary lookup under one of 16 locks) and each
/// beacon, ended after ``AnalyticsConfiguration/idleTimeoutSeconds`` without a request.
final class ListeningTracker: Sendable {
    let configuration: AnalyticsConfiguration
    /// The timing of a ready track (nil when unknown).
    private let timingSource: @Sendable (String) -> TrackTiming?
    /// Countries of client addresses (``AnalyticsConfiguration/countryDatabase``).
    let countries: MaxMindDatabase?

    private final class Shard: Sendable {
        struct State {
            var sessions: [String: ListeningSession] = [:]
            /// Sessions ended lately, by id: when (late beacons are dropped, not a new session).
            var ended: [String: Double] = [:]
        }
        let state = Mutex(State())
    }
    private let shards: [Shard] = (0..<16).map { _ in Shard() }
    /// Per track, the most listeners at once in the minute being evaluated (see
    /// ``ListeningSession/wasListening(at:)``): (minute, peak, the peak last reported to the store).
    private let peaks = Mutex<[String: (minute: Int64, peak: Int, reported: Int)]>([:])
    /// Plays counted as they happen (a session crossing the play threshold), per minute.
    private let playsNow = Mutex<[Int64: Int]>([:])
    /// Live listeners' sessions ended since the last sweep (``recordLive(_:)``).
    let liveEnded = Mutex<[FinishedSession]>([])

    init(configuration: AnalyticsConfiguration, countries: MaxMindDatabase? = nil, timing: @escaping @Sendable (String) -> TrackTiming?) {
        self.configuration = configuration
        self.countries = countries
        timingSource = timing
    }

    /// A new session's record (the slower lookups: User-Agent, country).
    private func newSession(_ label: PlaybackSessionLabel, track: String, timing: TrackTiming?, client: IPAddress?,
                            userAgent: String?, at time: Double) -> ListeningSession {
        ListeningSession(id: label.id, track: track, subjectTag: label.subjectTag, timing: timing,
                         clientPrefix: configuration.keepsClientNetworks ? client?.networkPrefix : nil,
                         clientType: Self.clientType(userAgent), country: client.flatMap { countries?.country($0) }, at: time)
    }

    private func shard(_ session: String) -> Shard {
        var hash: UInt32 = 2_166_136_261
        for byte in session.utf8.prefix(16) { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return shards[Int(hash % UInt32(shards.count))]
    }

    /// Counts a delivery request of session `label` (a version-2 playback token's session).
    func observe(label parsed: PlaybackSessionLabel, track: String, object: DeliveredObject, bytes: Int, client: IPAddress?,
                 userAgent: () -> String?, at time: Double) {
        let shard = shard(parsed.id)
        let known = shard.state.withLock { state -> Bool in
            guard state.sessions[parsed.id] != nil else { return false }
            update(&state.sessions[parsed.id]!, object: object, bytes: bytes, at: time)
            return true
        }
        if known { return }
        // A new session: the slower lookups (timing, User-Agent) outside the lock.
        let timing = timingSource(track)
        let session = newSession(parsed, track: track, timing: timing, client: client, userAgent: userAgent(), at: time)
        shard.state.withLock { state in
            if state.sessions[parsed.id] == nil {
                // Resumed after a pause longer than the idle timeout: a new session (same id).
                state.ended[parsed.id] = nil
                state.sessions[parsed.id] = session
            }
            update(&state.sessions[parsed.id]!, object: object, bytes: bytes, at: time)
        }
    }

    private func update(_ session: inout ListeningSession, object: DeliveredObject, bytes: Int, at time: Double) {
        session.observe(object, bytes: bytes, at: time)
        countPlay(&session, at: time)
    }

    /// Counts the session in the real-time plays per minute when it first reaches the threshold.
    private func countPlay(_ session: inout ListeningSession, at time: Double) {
        guard !session.playCounted, session.listenedSeconds >= configuration.playThresholdSeconds else { return }
        session.playCounted = true
        playsNow.withLock { $0[Int64(time / 60), default: 0] += 1 }
    }

    /// Takes a batch of checked beacons for session `label` of `track`.
    func receive(_ beacons: [PlaybackBeacon], label: PlaybackSessionLabel, track: String, client: IPAddress?,
                 userAgent: String?, at time: Double) -> BeaconReceipt {
        var receipt = BeaconReceipt()
        let shard = shard(label.id)
        let made = shard.state.withLock { $0.sessions[label.id] == nil }
            ? newSession(label, track: track, timing: timingSource(track), client: client, userAgent: userAgent, at: time) : nil
        shard.state.withLock { state in
            if state.ended[label.id] != nil {
                receipt.dropped["session_ended", default: 0] += beacons.count
                return
            }
            if state.sessions[label.id] == nil {
                state.sessions[label.id] = made ?? newSession(label, track: track, timing: nil, client: client, userAgent: userAgent, at: time)
            }
            for beacon in beacons.sorted(by: { $0.clientTime < $1.clientTime }) {
                if state.sessions[label.id]!.receive(beacon, at: time) {
                    receipt.accepted += 1
                    countPlay(&state.sessions[label.id]!, at: time)
                } else {
                    receipt.dropped["duplicate", default: 0] += 1
                }
            }
        }
        return receipt
    }

    /// What a sweep found: the sessions that ended, and the listeners now per track.
    struct Sweep: Sendable {
        var finished: [FinishedSession] = []
        /// Track → sessions that fetched media within the last segment's duration (+ 2 s).
        var listeners: [String: Int] = [:]
        /// Track → sessions that were playing at each of the ``ListeningTracker/samplesPerSweep``
        /// instants evaluated for it (evenly spaced over the sweep interval, oldest first, the
        /// newest ``ListeningSession/evaluationDelay(longestSegment:)`` in the past), with each
        /// instant's minute.
        var playing: [String: [(count: Int, minute: Int64)]] = [:]
        /// (track, minute, most listeners at once in it so far) where that grew since the last sweep.
        var peaks: [(track: String, minute: Int64, peak: Int)] = []
        /// Plays counted in the minutes so far (session crossing the threshold), by minute.
        var playsByMinute: [Int64: Int] = [:]
    }

    /// Ends the sessions idle for the timeout (all of them with `closingAll`, at shutdown) and
    /// counts current listeners.
    func sweep(now: Double, closingAll: Bool = false) -> Sweep {
        var sweep = Sweep()
        let idle = configuration.idleTimeoutSeconds
        let step = configuration.sweepSeconds / Double(Self.samplesPerSweep)
        for shard in shards {
            shard.state.withLock { state in
                var ended: [String] = []
                for (id, session) in state.sessions {
                    if closingAll || now - session.lastSeen >= idle {
                        ended.append(id)
                        sweep.finished.append(finish(session, now: now))
                    } else {
                        if session.isListening(now: now, window: (session.timing?.longestSegment ?? 10) + 2) {
                            sweep.listeners[session.track, default: 0] += 1
                        }
                        let newest = now - ListeningSession.evaluationDelay(longestSegment: session.timing?.longestSegment ?? 10)
                        for sample in 0..<Self.samplesPerSweep {
                            let instant = newest - Double(Self.samplesPerSweep - 1 - sample) * step
                            if session.wasListening(at: instant) {
                                sweep.playing[session.track, default: Self.noSamples(newest, step)][sample].count += 1
                            }
                        }
                    }
                }
                for id in ended {
                    state.sessions[id] = nil
                    state.ended[id] = now
                }
                state.ended = state.ended.filter { now - $0.value < 2 * idle }
            }
        }
        let minute = Int64(now / 60)
        peaks.withLock { peaks in
            for (track, samples) in sweep.playing {
                for playing in samples {
                    if let known = peaks[track], known.minute == playing.minute {
                        peaks[track]!.peak = max(known.peak, playing.count)
                    } else if peaks[track].map({ $0.minute < playing.minute }) ?? true {
                        peaks[track] = (playing.minute, playing.count, 0)
                    }
                }
            }
            // Only peaks that grew are written (a sweep a second would otherwise rewrite every
            // listened track's rollups each second).
            for (track, entry) in peaks where entry.peak > entry.reported {
                sweep.peaks.append((track, entry.minute, entry.peak))
                peaks[track]!.reported = entry.peak
            }
            peaks = peaks.filter { $0.value.minute >= minute - 1 }
        }
        sweep.finished += liveEnded.withLock { ended in
            defer { ended = [] }
            return ended
        }
        sweep.playsByMinute = playsNow.withLock { plays in
            plays = plays.filter { $0.key >= minute - 60 }
            return plays
        }
        return sweep
    }

    /// Without a `complete` beacon, whether a session that fetched the last segment played the
    /// end: it listened to all but a segment and a half of the track, or, after a seek, it
    /// fetched on from where it jumped to the end for at least a segment and a half (a jump into
    /// the last segment and a stop is not a completion). A player that stops in the last buffer
    /// it fetched (30 s for hls.js) cannot be told from one that plays it out without beacons.
    static func playedToTheEnd(_ session: ListeningSession, listened: Double, timing: TrackTiming) -> Bool {
        let margin = max(timing.longestSegment, 1) * 1.5
        if listened >= timing.durationSeconds - margin { return true }
        return session.serverSeeks > 0 && timing.durationSeconds - session.runStart >= margin
    }

    /// How many instants per sweep the concurrent listeners are counted at (every 0.25 s with
    /// the default sweep of a second): a peak is the most at one instant, and a count sampled
    /// once a second misses most of the rise within that second while many players start.
    static let samplesPerSweep = 4

    /// Empty samples for a sweep whose newest instant is `newest`.
    private static func noSamples(_ newest: Double, _ step: Double) -> [(count: Int, minute: Int64)] {
        (0..<samplesPerSweep).map { (0, Int64((newest - Double(samplesPerSweep - 1 - $0) * step) / 60)) }
    }

    /// The session's record, with its outcome.
    func finish(_ session: ListeningSession, now: Double) -> FinishedSession {
        let listened = session.listenedSeconds
        let threshold = configuration.playThresholdSeconds
        let timing = session.timing
        let outcome: FinishedSession.Outcome
        if session.mediaRequests == 0 && session.beacons == 0 || session.clientType == "bot" {
            outcome = .bot
        } else if session.beaconCompleted {
            outcome = .completed
        } else if let timing, session.reachedEnd, Self.playedToTheEnd(session, listened: listened, timing: timing) {
            outcome = .completed
        } else if listened < threshold {
            outcome = .skipped
        } else {
            outcome = .abandoned
        }
        let rendition = session.mainRendition
        return FinishedSession(
            id: session.id, track: session.track, subjectTag: session.subjectTag, startedAt: session.firstSeen,
            endedAt: max(session.lastSeen, session.firstSeen), listenedSeconds: (listened * 1000).rounded() / 1000,
            fetchedSeconds: (session.mediaFetchedSeconds * 1000).rounded() / 1000, outcome: outcome,
            isPlay: outcome != .bot && (listened >= threshold || outcome == .completed),
            stalls: session.stalls, seeks: max(session.serverSeeks, session.beaconSeeks), beacons: session.beacons,
            rendition: rendition, codec: rendition.flatMap { timing?.codecs[$0] }, clientPrefix: session.clientPrefix,
            clientType: session.clientType, country: session.country, mediaRequests: session.mediaRequests,
            playlistRequests: session.playlistRequests, bytes: session.bytes)
    }

    /// Drops the open sessions of a token subject (its listening is being deleted); returns how many.
    func forget(subjectTag: String) -> Int {
        shards.reduce(0) { total, shard in
            total + shard.state.withLock { state in
                let ids = state.sessions.filter { $0.value.subjectTag == subjectTag }.map(\.key)
                for id in ids {
                    state.sessions[id] = nil
                    state.ended[id] = 0
                }
                return ids.count
            }
        }
    }

    /// Sessions open now (listening or not).
    var openSessions: Int { shards.reduce(0) { total, shard in total + shard.state.withLock { $0.sessions.count } } }

    /// The kind of client a User-Agent names.
    static func clientType(_ userAgent: String?) -> String {
        guard let agent = userAgent?.lowercased(), !agent.isEmpty else { return "other" }
        if agent.contains("bot") || agent.contains("crawl") || agent.contains("spider") || agent.contains("curl/")
            || agent.contains("wget") || agent.contains("python-requests") { return "bot" }
        if agent.hasPrefix("lavf") || agent.contains("ffmpeg") { return "ffmpeg" }
        if agent.contains("gstreamer") { return "gstreamer" }
        if agent.contains("mpv") { return "mpv" }
        if agent.contains("vlc") { return "vlc" }
        if agent.contains("applecoremedia") || agent.contains("avplayer") { return "apple" }
        if agent.contains("exoplayer") || agent.contains("android") { return "android" }
        if agent.contains("mozilla") { return "browser" }
        return "other"
    }
}

/// The session label a playback token carries: a random session id (16 base64url characters)
/// and, when the URL was issued to a token subject, an 11-character keyed hash of it.
public struct PlaybackSessionLabel: Sendable, Hashable {
    /// The session id.
    public let id: String
    /// The listener's tag (``HostAuth/subjectTag(_:)``), when the URL was issued to one.
    public let subjectTag: String?

    static let idLength = 16
    static let tagLength = 11

    /// Reads a label; nil for one the host did not make.
    init?(_ label: String) {
        let count = label.utf8.count
        guard count == Self.idLength || count == Self.idLength + Self.tagLength else { return nil }
        id = String(label.prefix(Self.idLength))
        subjectTag = count > Self.idLength ? String(label.dropFirst(Self.idLength)) : nil
    }

    init(id: String, subjectTag: String?) {
        self.id = id
        self.subjectTag = subjectTag
    }

    var label: String { id + (subjectTag ?? "") }

    /// A new session id: 12 random bytes, base64url (``idLength`` characters).
    static func randomID() -> String {
        var generator = SystemRandomNumberGenerator()
        return Base64URL.encode((0..<12).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The session label of a verified version-2 token (its sixth field), without parsing
    /// the rest again.
    static func of(token: String) -> PlaybackSessionLabel? {
        let bytes = token.utf8
        var fields = 0
        var start = bytes.startIndex
        var end = bytes.startIndex
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: ".") {
                fields += 1
                if fields == 5 { start = bytes.index(after: index) }
                if fields == 6 { end = index }
            }
            index = bytes.index(after: index)
        }
        guard fields == 6, start < end else { return nil }
        return PlaybackSessionLabel(String(Substring(bytes[start..<end])))
    }
}
