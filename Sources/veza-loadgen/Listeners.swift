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

    /// GETs `path` and hands over the response if it is a 2xx; any other (counted) goes to
    /// `refused`. Nothing is handed over once the listener has ended.
    func get(_ path: String, keepBody: Bool, refused: @escaping () -> Void, _ then: @escaping (HTTPResponse) -> Void) {
        connected { connection in
            connection.get(path, keepBody: keepBody) { response in
                self.stats.record(response)
                guard !self.ended else { return }
                if response.isSuccess { then(response) } else { refused() }
            }
        }
    }

    /// POSTs a JSON `body` to `path`; `then` gets the response whatever its status (counted), unless
    /// the listener has ended.
    func post(_ path: String, json body: ByteBuffer, _ then: @escaping (HTTPResponse) -> Void) {
        connected { connection in
            connection.post(path, json: body) { response in
                self.stats.record(response)
                guard !self.ended else { return }
                then(response)
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
