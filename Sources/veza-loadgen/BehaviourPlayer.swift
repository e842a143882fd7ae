import ArgumentParser
import Foundation
import NIOCore
import StreamKit
import Synchronization

/// What a listener does in its one session (`--behaviours`): the known truth that the host's
/// listening analytics are measured against (issue 24).
enum Behaviour: String, CaseIterable, Codable, Sendable {
    /// Plays the track to its end.
    case complete
    /// Stops before the play threshold: after 2–25 s of listening.
    case skip
    /// Stops after the play threshold and before the end: after 35 s of listening, and before
    /// the player has fetched the track's last segment (two segments more than its buffer before
    /// the end). A server cannot tell a player that stops after fetching the last segment from
    /// one that plays its buffer out: that takes beacons (or a track longer than the buffer).
    case abandon
    /// Pauses once (5–40 s) at a random point, then plays to the end.
    case pause
    /// Seeks forward once, at a random point to a random later one, then plays to the end.
    case seek
}

/// Weights of the behaviours, `complete=30,skip=25,abandon=20,pause=15,seek=10`.
struct BehaviourMix: Sendable, ExpressibleByArgument {
    var weights: [(Behaviour, Double)]

    init?(argument: String) {
        var weights: [(Behaviour, Double)] = []
        for part in argument.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, let behaviour = Behaviour(rawValue: String(pair[0])), let weight = Double(pair[1]),
                  weight >= 0, weight.isFinite else { return nil }
            weights.append((behaviour, weight))
        }
        guard weights.reduce(0, { $0 + $1.1 }) > 0 else { return nil }
        self.weights = weights
    }

    /// The behaviour at `x` in 0..<1.
    func pick(_ x: Double) -> Behaviour {
        let total = weights.reduce(0) { $0 + $1.1 }
        var left = x * total
        for (behaviour, weight) in weights {
            if left < weight { return behaviour }
            left -= weight
        }
        return weights.last!.0
    }
}

/// SplitMix64: a small seeded generator, so a run's behaviours can be drawn again (`--seed`).
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What one session did, as the load generator knows it: one JSON line of `--truth`.
struct SessionTruth: Codable, Sendable {
    /// The listener (its line in `--urls`).
    var listener: Int
    /// The playback session id (the first 16 characters of the token's session label).
    var session: String
    var track: String
    var behaviour: Behaviour
    /// Whether the player sent beacons.
    var beacons: Bool
    /// The `X-Forwarded-For` address it claimed.
    var forwardedFor: String?
    /// The variant played (its URI in the master playlist).
    var variant: String?
    /// Media seconds played (the playhead's advance while playing: no pause, stall or seek jump).
    var listenedSeconds: Double
    /// Whether it played to the end of the track.
    var completed: Bool
    /// Wall-clock intervals (seconds since 1970) during which it was playing.
    var playing: [[Double]]
    var seeks: Int
    var stalls: Int
    /// Beacons sent, and how many of them the host took.
    var beaconsSent: Int
    var beaconsAccepted: Int
    /// The session ended on an error (a refused request), not by its behaviour.
    var failed: Bool
    /// The run ended before the session did.
    var cutShort: Bool
}

/// Where the sessions' truth is gathered during a run.
final class TruthLog: Sendable {
    private let sessions = Mutex<[SessionTruth]>([])

    func append(_ truth: SessionTruth) { sessions.withLock { $0.append(truth) } }

    /// Writes every session as a JSON line, by listener.
    func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var data = Data()
        for truth in sessions.withLock({ $0 }).sorted(by: { $0.listener < $1.listener }) {
            data += try encoder.encode(truth)
            data += Data("\n".utf8)
        }
        try data.write(to: URL(fileURLWithPath: path))
    }
}

/// A listener that plays one HLS session at real time with a behaviour (``Behaviour``), sends
/// beacons (`POST /v1/events`) if asked to, and records what it did (``SessionTruth``).
///
/// The player: one variant of the master playlist (drawn at random), its segments fetched in
/// order while less than ``ListenerSettings/bufferSeconds`` is buffered ahead, one request at a
/// time on its connection. The playhead advances one media second per wall second while playing
/// and stops at the end of what arrived (a stall). A pause stops the playhead (the buffer stays
/// full, so nothing is fetched); a seek drops the buffer and fetches from the segment that holds
/// the target. Beacons are queued and sent between segment requests, on the same connection.
final class BehaviourPlayer: Listener {
    struct Plan {
        var behaviour: Behaviour
        /// skip, abandon: stop after this much listening; pause, seek: act after this much.
        var at: Double
        /// pause: wall seconds paused; seek: the media position sought, as a fraction of what
        /// lies between the playhead + 10 s and the end - 10 s.
        var amount: Double
    }

    private let master: LoopbackURL
    private let playlists: PlaylistCache
    private let index: Int
    private let sendsBeacons: Bool
    private let truthLog: TruthLog
    private var random: SeededGenerator
    private var truth: SessionTruth
    private var behaviour: Behaviour
    private let token: String?

    // The session.
    private var variant: HLSPlayer.Variant?
    private var segments: [PlaylistCache.Media.Segment] = []
    private var starts: [Double] = []
    private var duration = 0.0
    private var initialized = false
    private var plan: Plan?
    private var next = 0
    private var bufferedEnd = 0.0
    private var anchor = (position: 0.0, time: ContinuousClock.now)
    private var playing = false
    private var started = false
    private var acted = false
    private var busy = false
    /// The behaviour or the track has ended the session: only its last beacons are still sent.
    private var stopping = false
    private var done = false
    private var pendingBeacons: [[String: Any]] = []
    private var beaconSequence = 0
    /// Scheduled wake-ups carry the generation they were made in; an older one does nothing.
    private var generation = 0

    init(loop: any EventLoop, master: LoopbackURL, settings: ListenerSettings, playlists: PlaylistCache, index: Int,
         mix: BehaviourMix, seed: UInt64, sendsBeacons: Bool, truth: TruthLog) {
        self.master = master
        self.playlists = playlists
        self.index = index
        self.sendsBeacons = sendsBeacons
        truthLog = truth
        var random = SeededGenerator(seed: seed &+ UInt64(index) &* 0x2545_F491_4F6C_DD1D)
        behaviour = mix.pick(Double.random(in: 0..<1, using: &random))
        self.random = random
        let query = master.path.firstIndex(of: "?").map { master.path[master.path.index(after: $0)...] } ?? ""
        token = query.split(separator: "&").first { $0.hasPrefix("token=") }.map { String($0.dropFirst(6)) }
        let label = token.flatMap { $0.split(separator: ".", omittingEmptySubsequences: false).dropFirst(5).first }
        let parts = master.path.split(separator: "/")
        self.truth = SessionTruth(listener: index, session: label.map { String($0.prefix(16)) } ?? "", track: parts.count > 1 ? String(parts[1]) : "",
                             behaviour: behaviour, beacons: sendsBeacons, forwardedFor: nil, variant: nil, listenedSeconds: 0,
                             completed: false, playing: [], seeks: 0, stalls: 0, beaconsSent: 0, beaconsAccepted: 0, failed: false, cutShort: false)
        super.init(loop: loop, server: master, settings: settings)
    }

    // MARK: The playhead

    private func now() -> ContinuousClock.Instant { .now }

    /// The playhead at `time`: it advances while playing, up to the end of what arrived.
    private func position(at time: ContinuousClock.Instant) -> Double {
        guard playing else { return anchor.position }
        return anchor.position + min(max(0, (time - anchor.time).seconds), max(0, bufferedEnd - anchor.position))
    }

    /// Adds what was played up to `time` to the truth and moves the anchor there.
    private func settle(_ time: ContinuousClock.Instant) {
        let position = position(at: time)
        if playing { truth.listenedSeconds += position - anchor.position }
        anchor = (position, time)
    }

    private static func wall() -> Double { Date().timeIntervalSince1970 }

    private func startInterval() { truth.playing.append([Self.wall(), Self.wall()]) }

    private func endInterval() {
        if !truth.playing.isEmpty { truth.playing[truth.playing.count - 1][1] = Self.wall() }
    }

    // MARK: The session

    override func play() {
        guard !done, !busy else { return }
        if truth.forwardedFor == nil { truth.forwardedFor = forwardedFor }
        guard let variant else {
            busy = true
            return get(master.path, keepBody: true, refused: { self.fail() }) { response in
                self.busy = false
                guard let text = response.body.map({ String(buffer: $0) }),
                      let (_, variants) = self.playlists.ladder(text, master: self.master, codecs: self.settings.codecs), !variants.isEmpty else {
                    self.stats.update { $0.errors.playlist += 1 }
                    return self.fail()
                }
                self.variant = variants[Int.random(in: 0..<variants.count, using: &self.random)]
                self.truth.variant = self.variant?.name
                self.play()
            }
        }
        guard !segments.isEmpty else {
            busy = true
            return get(variant.url.path, keepBody: true, refused: { self.fail() }) { response in
                self.busy = false
                guard let text = response.body.map({ String(buffer: $0) }), let media = self.playlists.media(text, url: variant.url) else {
                    self.stats.update { $0.errors.playlist += 1 }
                    return self.fail()
                }
                self.prepare(media)
                self.play()
            }
        }
        step()
    }

    /// The segments, their media start times, and the behaviour's plan for this track.
    private func prepare(_ media: PlaylistCache.Media) {
        segments = media.segments
        var start = 0.0
        starts = segments.map { segment in
            defer { start += segment.duration }
            return start
        }
        duration = start
        let longest = segments.map(\.duration).max() ?? 6
        let x = Double.random(in: 0..<1, using: &random)
        let y = Double.random(in: 0..<1, using: &random)
        switch behaviour {
        case .complete:
            plan = Plan(behaviour: .complete, at: duration, amount: 0)
        case .skip:
            plan = Plan(behaviour: .skip, at: 2 + 23 * x, amount: 0)
        case .abandon where duration - settings.bufferSeconds - 2 * longest > 35:
            plan = Plan(behaviour: .abandon, at: 35 + (duration - settings.bufferSeconds - 2 * longest - 35) * x, amount: 0)
        case .pause where duration > 20:
            plan = Plan(behaviour: .pause, at: 5 + (duration - 15) * x, amount: 5 + 35 * y)
        case .seek where duration > 40:
            plan = Plan(behaviour: .seek, at: 5 + (duration / 2 - 5) * x, amount: y)
        default:
            // The track is too short for the behaviour: played to the end instead.
            behaviour = .complete
            truth.behaviour = .complete
            plan = Plan(behaviour: .complete, at: duration, amount: 0)
        }
    }

    /// Does what is due now (behaviour, end of track, beacons, the next fetch) and schedules the next wake-up.
    private func step() {
        guard !done, !stopping, let plan else { return }
        let time = now()
        let position = position(at: time)
        let listened = truth.listenedSeconds + (playing ? position - anchor.position : 0)
        // The behaviour's moment.
        if playing, !acted, plan.behaviour != .complete, listened >= plan.at - 1e-6 {
            acted = true
            settle(time)
            switch plan.behaviour {
            case .skip: return stop(beacon: "skip")
            case .abandon: return stop(beacon: "pause")
            case .pause:
                playing = false
                endInterval()
                beacon("pause", position: position)
                after(time + .seconds(plan.amount)) {
                    guard !self.done else { return }
                    self.settle(.now)
                    self.playing = true
                    self.startInterval()
                    self.beacon("resume", position: self.anchor.position)
                    self.step()
                }
                return flushBeacons()
            case .seek:
                let low = min(duration - 10, position + 10)
                let target = low + max(0, duration - 10 - low) * plan.amount
                truth.seeks += 1
                beacon("seek", position: position, to: target)
                next = starts.lastIndex { $0 <= target } ?? 0
                bufferedEnd = starts[next]
                anchor = (target, time)
                return step()
            case .complete: break
            }
        }
        // The end of the track.
        if playing, position >= duration - 1e-6 {
            settle(time)
            truth.completed = true
            return stop(beacon: "complete")
        }
        if !busy, !pendingBeacons.isEmpty { return flushBeacons() }
        var due: ContinuousClock.Instant? = nil
        func wake(at instant: ContinuousClock.Instant) { due = min(due ?? instant, instant) }
        // The next fetch, when the buffer has room for it.
        if !busy, next < segments.count {
            let ahead = bufferedEnd - position
            let excess = ahead - max(0, settings.bufferSeconds - segments[next].duration)
            if excess <= 0 || !started {
                return fetch()
            } else if playing {
                wake(at: time + .seconds(excess))
            }
        }
        if playing {
            let stalledAt = bufferedEnd - position
            if stalledAt > 0 {
                if !acted, plan.behaviour != .complete { wake(at: time + .seconds(min(stalledAt, plan.at - listened))) }
                wake(at: time + .seconds(min(stalledAt, duration - position)))
            }
        }
        if let due {
            generation += 1
            let mine = generation
            after(due) { if self.generation == mine { self.step() } }
        }
    }

    private func fetch() {
        let segment = segments[next]
        if !initialized, segment.hasInit {
            guard let path = segment.initPath else { return fail() }
            busy = true
            return get(path, keepBody: false, refused: { self.fail() }) { _ in
                self.busy = false
                guard !self.stopping else { return }
                self.initialized = true
                self.step()
            }
        }
        guard let path = segment.path else { return fail() }
        busy = true
        let number = next
        get(path, keepBody: false, refused: { self.fail() }) { response in
            self.busy = false
            guard !self.stopping else { return }
            guard number == self.next else { return self.step() }   // a seek dropped it
            let time = response.arrived
            let stalled = self.playing && self.position(at: time) >= self.bufferedEnd - 1e-9 && self.bufferedEnd > self.anchor.position
            self.settle(time)
            if stalled { self.truth.stalls += 1 }
            self.bufferedEnd = max(self.bufferedEnd, self.starts[number]) + segment.duration
            self.next += 1
            self.stats.update { $0.segments[self.truth.variant ?? "", default: 0] += 1 }
            if !self.started {
                self.started = true
                self.playing = true
                self.anchor = (0, time)
                self.startInterval()
                self.beacon("play", position: 0)
                self.stats.update { $0.sessions += 1 }
            }
            self.step()
        }
    }

    // MARK: Beacons

    private func beacon(_ type: String, position: Double, to: Double? = nil) {
        guard sendsBeacons else { return }
        beaconSequence += 1
        var event: [String: Any] = ["id": "\(truth.session)-\(beaconSequence)", "type": type,
                                    "position": (position * 1000).rounded() / 1000, "clientTime": (Self.wall() * 1000).rounded()]
        if let to { event["to"] = (to * 1000).rounded() / 1000 }
        pendingBeacons.append(event)
    }

    /// Sends the queued beacons in one batch (the connection is free), then goes on.
    private func flushBeacons(then: (() -> Void)? = nil) {
        guard !pendingBeacons.isEmpty, let token, !busy else {
            if let then { then() } else { step() }
            return
        }
        let events = pendingBeacons
        pendingBeacons = []
        truth.beaconsSent += events.count
        guard let json = try? JSONSerialization.data(withJSONObject: ["events": events]) else { return step() }
        busy = true
        post("/v1/events?token=" + token, json: ByteBuffer(bytes: json)) { response in
            self.busy = false
            if response.isSuccess, let accepted = Self.accepted(response) { self.truth.beaconsAccepted += accepted }
            if let then { then() } else { self.step() }
        }
    }

    /// The `accepted` count of the host's receipt.
    private static func accepted(_ response: HTTPResponse) -> Int? {
        guard let body = response.body, let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] else {
            return nil
        }
        return object["accepted"] as? Int
    }

    // MARK: Ending

    /// Ends the session (its behaviour or the end of the track), after its last beacon.
    private func stop(beacon kind: String) {
        stopping = true
        playing = false
        endInterval()
        let completed = truth.completed, skipped = behaviour == .skip
        stats.update {
            if completed { $0.sessionsCompleted += 1 }
            if skipped { $0.sessionsSkipped += 1 }
        }
        beacon(kind, position: anchor.position)
        finishSession()
    }

    private func finishSession() {
        guard !done else { return }
        if busy || !pendingBeacons.isEmpty {
            // Wait for the request in flight, then send what is queued, then end.
            if busy {
                generation += 1
                let mine = generation
                return after(.now + .milliseconds(50)) { if self.generation == mine { self.finishSession() } }
            }
            return flushBeacons { self.record(); self.retire() }
        }
        record()
        retire()
    }

    private func record() {
        guard !done else { return }
        done = true
        truthLog.append(truth)
    }

    /// A refused request or an unusable playlist: the session ends as failed.
    private func fail() {
        busy = false
        guard !done else { return }
        if playing { settle(.now); endInterval() }
        playing = false
        truth.failed = true
        record()
        retire()
    }

    override func connectionFailed() { busy = false }

    override func finish(at time: ContinuousClock.Instant) {
        guard !done else { return }
        if playing { settle(time); endInterval() }
        playing = false
        truth.cutShort = true
        record()
    }
}
