import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// `veza-loadgen`: N simulated listeners against a host on loopback, for a bounded time.
///
/// Each listener has its own keep-alive TCP connection (SwiftNIO), reopened only when lost, so the
/// server sees as many connections as there are listeners. HLS listeners play the signed master
/// playlist like a player (see ``HLSPlayer``); progressive listeners read one file at real-time pace
/// (see ``ProgressivePlayer``). Listeners start evenly over `--ramp-seconds`; all stop at `--duration`.
/// Every listener is a state machine on one of SwiftNIO's event loops (see ``Listener``): the
/// load generator shares the cores with the server under test, so it must cost little.
@main
struct LoadGen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "veza-loadgen",
        abstract: "Simulated HLS and progressive listeners against a host on loopback.",
        discussion: """
        Example, 200 listeners for 30 s at 4× real time, sampling the server's CPU and RSS:
          veza-loadgen --url 'http://127.0.0.1:8080/hls/ID/master.m3u8?token=T' \\
            --listeners 200 --duration 30 --speed 4 --server-pid 1234 --json report.json
        """)

    @Option(help: "The master playlist URL (may carry ?token=); needed unless every listener is progressive.")
    var url: String?
    @Option(help: "A file of master playlist URLs, one per line (`streamhost sign PATH --count N`): HLS listener i plays line i (modulo their number), each its own playback session. Instead of --url.")
    var urls: String?
    @Option(help: "A progressive file URL.")
    var progressiveURL: String?
    @Option(help: "Fraction of the listeners that are progressive (0…1).")
    var progressiveFraction = 0.0
    @Option(help: "Bit rate of the progressive file in kbit/s: the pace it is read at (× --speed).")
    var progressiveKbps = 128.0
    @Option(help: "Wall seconds a progressive session listens before stopping.")
    var listenSeconds = 60.0
    @Option(help: "Number of listeners.")
    var listeners = 10
    @Option(help: "Run length in seconds, ramp included.")
    var duration = 30.0
    @Option(help: "Seconds over which listeners start, evenly spaced.")
    var rampSeconds = 5.0
    @Option(help: "Media seconds played per wall second.")
    var speed = 1.0
    @Option(help: "Media seconds a player buffers ahead.")
    var bufferSeconds = 30.0
    @Option(help: "Probability that an HLS session stops after a random number of segments (0…1).")
    var skipProbability = 0.0
    @Flag(inversion: .prefixedNo, help: "Start a new session when one ends (skipped, played out, failed), keeping N listeners.")
    var restart = true
    @Option(help: "StreamKit's ABR rule.")
    var abr = ABRChoice.hybrid
    @Option(help: "Play the variants with this CODECS value (default: that of the first variant).")
    var codecs: String?
    @Option(help: "Slowloris connections beside the listeners: each trickles a request head, one byte per --slow-interval, never finishing it.")
    var slowloris = 0
    @Option(help: "Connections beside the listeners that request the progressive file (else the master playlist) and never read the answer.")
    var slowReaders = 0
    @Option(help: "Seconds between two bytes of a slowloris connection.")
    var slowInterval = 1.0
    @Option(help: "Seconds to wait for a response's head or its next bytes before dropping the connection (an error).")
    var timeout = 10.0
    @Option(help: "SwiftNIO event loops (threads) that run the listeners (0: one per core).")
    var eventLoops = 0
    @Option(help: "A server PID to sample (CPU, RSS; with its direct children) every second; repeatable.")
    var serverPID: [Int32] = []
    @Option(help: "Listeners behind a proxy: listener i sends `X-Forwarded-For: A+i` (this IPv4 address plus i), so each has its own client address.")
    var forwardedFor: String?
    @Option(help: "WebRTC listeners instead: a WHEP endpoint (http://HOST:PORT/whep/{mount}[?token=T]); --listeners sessions, each a real ICE, DTLS and SRTP session.")
    var whep: String?
    @Option(help: "WebSocket listeners instead: a live WebSocket URL (ws://HOST:PORT/ws/live/{mount}[?rung=R&token=T]); --listeners connections.")
    var websocket: String?
    @Option(help: "LL-HLS listeners instead: a live rung's media playlist (http://HOST:PORT/live/{mount}/{rung}/index.m3u8[?token=T]), played from PART-HOLD-BACK behind the edge with blocking reloads.")
    var llhls: String?
    @Option(help: "Listener behaviours for the listening-analytics accuracy run: weights such as complete=30,skip=25,abandon=20,pause=15,seek=10. Each HLS listener plays one session at real time (--speed 1) with a behaviour drawn from them (see --truth).")
    var behaviours: BehaviourMix?
    @Option(help: "With --behaviours: the fraction of listeners whose players send beacons (POST /v1/events), spread over the ramp.")
    var beaconFraction = 0.5
    @Option(help: "With --behaviours: the seed of the behaviours drawn (the same seed draws the same run).")
    var seed: UInt64 = 1
    @Option(help: "With --behaviours: write what each session did (the ground truth), one JSON line per listener, to this file.")
    var truth: String?
    @Option(help: "Write the JSON report to this file.")
    var json: String?
    @Flag(help: "Exit with status 1 when any stall or error happened.")
    var failOnStall = false

    /// A dotted IPv4 address as a number.
    static func ipv4(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map { UInt32($0) }
        guard parts.count == 4, parts.allSatisfy({ ($0 ?? 256) < 256 }) else { return nil }
        return parts.reduce(0) { $0 << 8 | $1! }
    }

    static func ipv4Text(_ value: UInt32) -> String {
        (0..<4).map { String(value >> (24 - 8 * UInt32($0)) & 0xFF) }.joined(separator: ".")
    }

    func validate() throws {
        guard slowloris >= 0, slowReaders >= 0, slowInterval > 0 else {
            throw ValidationError("--slowloris and --slow-readers are counts; --slow-interval is positive")
        }
        guard eventLoops >= 0 else { throw ValidationError("--event-loops is a count (0: one per core)") }
        guard listeners > 0, duration > 0, speed > 0, bufferSeconds > 0, listenSeconds > 0, progressiveKbps > 0, timeout > 0 else {
            throw ValidationError("--listeners, --duration, --speed, --buffer-seconds, --listen-seconds, --progressive-kbps and --timeout must be positive")
        }
        guard (0...duration).contains(rampSeconds) else { throw ValidationError("--ramp-seconds is between 0 and --duration") }
        guard (0...1).contains(progressiveFraction), (0...1).contains(skipProbability) else {
            throw ValidationError("--progressive-fraction and --skip-probability are between 0 and 1")
        }
        for (name, text) in [("--url", url), ("--progressive-url", progressiveURL), ("--llhls", llhls)] {
            if let text, LoopbackURL(text) == nil {
                throw ValidationError("\(name) \(text): only http:// URLs on a loopback host (127.x.x.x, ::1, localhost)")
            }
        }
        if behaviours != nil {
            guard speed == 1 else { throw ValidationError("--behaviours plays at real time: --speed 1") }
            guard (0...1).contains(beaconFraction) else { throw ValidationError("--beacon-fraction is between 0 and 1") }
            guard url != nil || urls != nil, progressiveFraction == 0, llhls == nil, whep == nil, websocket == nil else {
                throw ValidationError("--behaviours plays HLS sessions (--url or --urls), nothing else")
            }
        } else if truth != nil {
            throw ValidationError("--truth needs --behaviours")
        }
        if let forwardedFor, Self.ipv4(forwardedFor) == nil { throw ValidationError("--forwarded-for \(forwardedFor): an IPv4 address") }
        if progressiveFraction > 0 && progressiveURL == nil { throw ValidationError("--progressive-fraction needs --progressive-url") }
        if let urls {
            guard let text = try? String(contentsOfFile: urls, encoding: .utf8) else { throw ValidationError("--urls \(urls): cannot read it") }
            let lines = text.split(whereSeparator: \.isNewline)
            guard !lines.isEmpty else { throw ValidationError("--urls \(urls): no URL in it") }
            for line in lines where LoopbackURL(String(line)) == nil {
                throw ValidationError("--urls \(urls): \(line.prefix(80)): only http:// URLs on a loopback host")
            }
        }
        if progressiveFraction < 1 && url == nil && urls == nil && whep == nil && websocket == nil && llhls == nil {
            throw ValidationError("--url is required (unless --progressive-fraction 1, --llhls, --whep or --websocket)")
        }
    }

    func run() async throws {
        // Running out of descriptors would not only fail connections: libdispatch traps on it.
        let sockets = listeners + slowloris + slowReaders
        let files = raiseFileLimit(to: UInt64(sockets) + 256)
        guard files >= UInt64(sockets) + 256 else {
            throw SetupError(description: "\(sockets) connections need \(sockets + 256) open files; the hard limit is \(files) (ulimit -Hn)")
        }
        if eventLoops > 0 { NIOSingletons.groupLoopCountSuggestion = eventLoops }
        if let websocket {
            return try await WebSocketLoad.run(url: websocket, listeners: listeners, duration: duration, ramp: rampSeconds, serverPIDs: serverPID, json: json)
        }
        if let whep {
            return try await WHEPLoad.run(url: whep, sessions: listeners, duration: duration, ramp: rampSeconds, serverPIDs: serverPID, json: json)
        }
        let stats = Stats()
        let start = ContinuousClock.now
        let end = start + .seconds(duration)
        let settings = ListenerSettings(
            speed: speed, bufferSeconds: bufferSeconds, skipProbability: skipProbability, restart: restart, abr: abr,
            codecs: codecs, progressiveKbps: progressiveKbps, listenSeconds: listenSeconds, timeout: .seconds(timeout),
            end: end, stats: stats)
        // Listener i is progressive when i × fraction crosses an integer: spread over the ramp.
        let progressive = (0..<listeners).map { Int(Double($0 + 1) * progressiveFraction) > Int(Double($0) * progressiveFraction) }
        let master = url.flatMap(LoopbackURL.init)
        // One playback session per listener (checked in validate()).
        let masters = ((urls.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }) ?? "")
            .split(whereSeparator: \.isNewline).compactMap { LoopbackURL(String($0)) }
        let file = progressiveURL.flatMap(LoopbackURL.init)

        // The steady state starts 5 s after the ramp (see ``Report/Steady``).
        let steadyFrom = start + .seconds(rampSeconds + 5)
        let samplers = Task {
            var server = serverPID.isEmpty ? nil : ProcessSampler(pids: serverPID)
            var own = ProcessSampler(pids: [getpid()])
            var steadyStart: (cpu: Double, requests: Int, at: ContinuousClock.Instant)?
            while true {
                server?.sample()
                own.sample()
                if steadyStart == nil, ContinuousClock.now >= steadyFrom, let cpu = server?.cpuSeconds {
                    steadyStart = (cpu, stats.snapshot.requests, .now)
                }
                guard (try? await Task.sleep(until: min(end, .now + .seconds(1)))) != nil, ContinuousClock.now < end else { break }
            }
            server?.sample()
            own.sample()
            var steady: Report.Steady?
            if let steadyStart, let cpu = server?.cpuSeconds {
                let requests = stats.snapshot.requests - steadyStart.requests
                let seconds = (ContinuousClock.now - steadyStart.at).seconds
                let spent = cpu - steadyStart.cpu
                // Live ICY listeners make no request in the steady state: CPU per listener only.
                if seconds > 0 {
                    steady = Report.Steady(seconds: seconds, requests: requests, serverCPUSeconds: spent,
                                           serverMicrosecondsPerRequest: requests > 0 ? spent / Double(requests) * 1e6 : nil,
                                           serverCores: spent / seconds)
                }
            }
            return (server?.report, own.report, steady)
        }

        // The listeners run on the event loops (see ``Listener``), started evenly over the ramp.
        // Listener i is progressive when i × fraction crosses an integer: spread over the ramp.
        let playlists = PlaylistCache()
        let livePlaylists = LivePlaylistCache()
        let live = llhls.flatMap(LoopbackURL.init)
        let forwardedBase = forwardedFor.flatMap(Self.ipv4)
        let truthLog = TruthLog()
        let beacons = (0..<listeners).map { Int(Double($0 + 1) * beaconFraction) > Int(Double($0) * beaconFraction) }
        var finished: [EventLoopFuture<ListenerOutcome>] = []
        for index in 0..<listeners {
            let startAt = start + .seconds(rampSeconds * Double(index) / Double(listeners))
            let isProgressive = progressive[index]
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let done = loop.makePromise(of: ListenerOutcome.self)
            finished.append(done.futureResult)
            loop.execute {
                let listener: Listener
                if let live {
                    listener = LLHLSPlayer(loop: loop, url: live, settings: settings, playlists: livePlaylists)
                } else if let mix = behaviours, let master = masters.isEmpty ? master : masters[index % masters.count] {
                    listener = BehaviourPlayer(loop: loop, master: master, settings: settings, playlists: playlists, index: index, mix: mix,
                                               seed: seed, sendsBeacons: beacons[index], truth: truthLog)
                } else if isProgressive, let file {
                    listener = ProgressivePlayer(loop: loop, url: file, settings: settings)
                } else if let master = masters.isEmpty ? master : masters[index % masters.count] {
                    listener = HLSPlayer(loop: loop, master: master, settings: settings, playlists: playlists)
                } else {
                    return done.succeed(.hls)
                }
                listener.forwardedFor = forwardedBase.map { Self.ipv4Text($0 &+ UInt32(truncatingIfNeeded: index)) }
                listener.start(at: startAt, done: done)
            }
        }
        var slowResults: [SlowClients.Result] = []
        await withTaskGroup(of: SlowClients.Result.self) { group in
            if let slowTarget = master ?? masters.first ?? file, slowloris > 0 {
                group.addTask {
                    await SlowClients.run(.trickle, count: slowloris, url: slowTarget, interval: .seconds(slowInterval), start: start,
                                          ramp: .seconds(rampSeconds), end: end)
                }
            }
            if let readTarget = file ?? master, slowReaders > 0 {
                group.addTask {
                    await SlowClients.run(.nonReading, count: slowReaders, url: readTarget, interval: .seconds(slowInterval),
                                          start: start, ramp: .seconds(rampSeconds), end: end)
                }
            }
            for await result in group { slowResults.append(result) }
        }
        var progressiveResults: [(bytes: Int, seconds: Double)] = []
        for outcome in finished {
            if case .progressive(let bytes, let seconds)? = try? await outcome.get() { progressiveResults.append((bytes, seconds)) }
        }
        let elapsed = (ContinuousClock.now - start).seconds
        samplers.cancel()
        let (server, own, steady) = await samplers.value

        let counters = stats.snapshot
        let listened = progressiveResults.reduce(0) { $0 + $1.seconds }
        let report = Report(
            url: url, progressiveURL: progressiveURL, rampSeconds: rampSeconds, bufferSeconds: bufferSeconds,
            skipProbability: skipProbability, restart: restart, abr: abr.rawValue, timeoutSeconds: timeout, listeners: listeners, hlsListeners: progressive.count { !$0 }, durationSeconds: elapsed, speed: speed,
            sessions: counters.sessions, sessionsCompleted: counters.sessionsCompleted, sessionsSkipped: counters.sessionsSkipped,
            requests: counters.requests, bytes: counters.bytes, connections: counters.connections, reconnects: counters.reconnects,
            errors: counters.errors, errorsTotal: counters.errors.total, stalls: counters.stalls, stallSeconds: counters.stallSeconds,
            switches: counters.switches, segments: counters.segments,
            timeToFirstByteMs: .init(counters.timeToFirstByte), timeToFirstAudioMs: .init(counters.timeToFirstAudio),
            progressive: progressiveResults.isEmpty ? nil : Report.Progressive(
                listeners: progressiveResults.count, bytesPerListener: progressiveResults.map(\.bytes),
                meanKbps: listened > 0 ? Double(progressiveResults.reduce(0) { $0 + $1.bytes }) * 8 / listened / 1000 : 0,
                paceKbps: progressiveKbps * speed, timeToFirstAudioMs: .init(counters.progressiveFirstAudio)),
            slow: slowResults.isEmpty ? nil : slowResults, server: server, loadgen: own, steady: steady,
            llhlsURL: llhls, delayToLiveEdgeMs: llhls == nil ? nil : .init(counters.liveDelay))
        print(report.summary)
        if let truth { try truthLog.write(to: truth) }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
        if failOnStall && (report.stalls > 0 || report.errors.total > 0) { throw ExitCode(1) }
    }
}

extension ABRChoice: ExpressibleByArgument {}

/// A run that cannot start.
struct SetupError: Error, CustomStringConvertible {
    var description: String
}

/// Raises the soft limit on open files to `needed` (or the hard limit, if lower), as each listener
/// holds a socket; returns the limit in force.
func raiseFileLimit(to needed: UInt64) -> UInt64 {
    var limit = rlimit()
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limit) == 0 else { return 0 }
    if UInt64(limit.rlim_cur) < needed {
        limit.rlim_cur = min(rlim_t(needed), limit.rlim_max)
        _ = setrlimit(resource, &limit)
        _ = getrlimit(resource, &limit)
    }
    return UInt64(limit.rlim_cur)
}
