import Foundation
import Histogram
import Synchronization

/// Counters and latency histograms shared by every listener of a run.
final class Stats: Sendable {
    /// What the listeners add to.
    struct Counters {
        var sessions = 0
        var sessionsCompleted = 0
        var sessionsSkipped = 0
        var requests = 0
        var bytes = 0
        var connections = 0
        /// Idle keep-alive connections the server closed, reopened without an error.
        var reconnects = 0
        var errors = Report.Errors()
        var stalls = 0
        var stallSeconds = 0.0
        var switches = 0
        /// HLS segments fetched, by variant.
        var segments: [String: Int] = [:]
        /// Microseconds.
        var timeToFirstByte = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        /// HLS: from the session's start to its first segment, in microseconds.
        var timeToFirstAudio = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        /// LL-HLS: from a part's first sample (its EXT-X-PROGRAM-DATE-TIME) to the wall time it
        /// plays at, in microseconds.
        var liveDelay = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        /// Progressive: from the session's start to the first body bytes, in microseconds.
        var progressiveFirstAudio = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)

        /// Counts a stall of `duration`, if any.
        mutating func count(stall duration: Duration?) {
            guard let duration else { return }
            stalls += 1
            stallSeconds += duration.seconds
        }
    }

    private let counters = Mutex(Counters())

    /// Changes the counters under the lock.
    func update(_ change: (inout Counters) -> Void) {
        counters.withLock { change(&$0) }
    }

    /// Counts a response read to the end: a request, its bytes and TTFB, and an error unless 2xx.
    func record(_ response: HTTPResponse) {
        update {
            $0.requests += 1
            $0.bytes += response.bytes
            $0.timeToFirstByte.record(response.timeToFirstByte.microseconds)
            if !response.isSuccess { $0.errors.status += 1 }
        }
    }

    /// A copy of the counters.
    var snapshot: Counters { counters.withLock { $0 } }
}

extension Duration {
    /// In seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
    /// In whole microseconds (0 when negative).
    var microseconds: UInt64 { UInt64(max(0, seconds * 1e6).rounded()) }
}

/// CPU and memory of processes, read from `/proc` once a second (Linux).
struct ProcessSampler {
    /// The PIDs watched; each one's direct children are counted with it (nginx: master and workers).
    let pids: [Int32]
    private let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
    private var first: (cpu: Double, at: ContinuousClock.Instant)?
    private var last: (cpu: Double, at: ContinuousClock.Instant)?
    private var peakCores = 0.0
    private var peakRSS = 0

    /// Starts watching `pids` (and their children).
    init(pids: [Int32]) {
        self.pids = pids
    }

    /// Reads the current CPU time and RSS.
    mutating func sample() {
        let now = ContinuousClock.now
        var cpu = 0.0
        var rss = 0
        for pid in pids.flatMap({ [$0] + Self.children(of: $0) }) {
            // Fields after the command name (which may contain spaces): state is the 1st, utime the 12th, stime the 13th.
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               let close = stat.lastIndex(of: ")") {
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) {
                    cpu += (user + system) / ticksPerSecond
                }
            }
            if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
               let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
               let kib = Int(line.split(separator: " ").dropFirst().first ?? "") {
                rss += kib * 1024
            }
        }
        if let last, now > last.at { peakCores = max(peakCores, (cpu - last.cpu) / (now - last.at).seconds) }
        first = first ?? (cpu, now)
        last = (cpu, now)
        peakRSS = max(peakRSS, rss)
    }

    /// The direct children of `pid` (from its main thread's `children` file).
    static func children(of pid: Int32) -> [Int32] {
        let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8)) ?? ""
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// CPU seconds at the last sample (`nil` before the first).
    var cpuSeconds: Double? { last?.cpu }

    /// What was seen between the first and the last sample.
    var report: Report.ProcessUse {
        let seconds = first.flatMap { first in last.map { $0.cpu - first.cpu } } ?? 0
        let wall = first.flatMap { first in last.map { ($0.at - first.at).seconds } } ?? 0
        return Report.ProcessUse(pids: pids.map(Int.init), cpuSeconds: seconds, meanCores: wall > 0 ? seconds / wall : 0,
                                 peakCores: peakCores, peakRSSMiB: Double(peakRSS) / 1_048_576)
    }
}

/// The result of a run, written with `--json`.
struct Report: Codable {
    /// Errors by kind.
    struct Errors: Codable {
        /// Responses other than 2xx.
        var status = 0
        /// Connections that could not be opened.
        var connect = 0
        /// Connections lost during a response (not idle keep-alive closes).
        var connectionLost = 0
        /// Playlists that could not be parsed or used.
        var playlist = 0
        /// Waits for a response (its head or its next bytes) longer than `--timeout`.
        var timeout = 0
        var total: Int { status + connect + connectionLost + playlist + timeout }
    }

    /// Percentiles of a latency, in milliseconds.
    struct Latency: Codable {
        var count: UInt64
        var p50: Double
        var p95: Double
        var p99: Double
        var max: Double

        init(_ histogram: Histogram<UInt64>) {
            let count = histogram.totalCount
            func ms(_ value: UInt64) -> Double { count == 0 ? 0 : Double(value) / 1000 }
            self.count = count
            p50 = ms(histogram.valueAtPercentile(50))
            p95 = ms(histogram.valueAtPercentile(95))
            p99 = ms(histogram.valueAtPercentile(99))
            max = ms(histogram.max)
        }
    }

    /// CPU and memory of a process (and its children).
    struct ProcessUse: Codable {
        var pids: [Int]
        var cpuSeconds: Double
        /// CPU seconds per wall second over the run.
        var meanCores: Double
        /// The highest one-second value.
        var peakCores: Double
        /// The highest VmRSS seen (summed over the processes).
        var peakRSSMiB: Double
    }

    /// The steady state: from 5 s after the ramp to the end of the run, when every listener
    /// plays and no connection is being opened. CPU per request there is the figure least
    /// moved by the ramp's connection setup and by how long the run lasted.
    struct Steady: Codable {
        var seconds: Double
        var requests: Int
        var serverCPUSeconds: Double
        /// Server CPU per request, in microseconds (nil: no request in the steady state, as
        /// with live ICY listeners).
        var serverMicrosecondsPerRequest: Double?
        /// Server CPU in cores (CPU seconds per second).
        var serverCores: Double
    }

    /// Progressive listeners.
    struct Progressive: Codable {
        var listeners: Int
        /// Bytes received by each progressive listener over the run, in listener order.
        var bytesPerListener: [Int]
        /// Mean receive rate per listener while listening, in kbit/s.
        var meanKbps: Double
        /// What real-time pace allows: `--progressive-kbps × --speed`.
        var paceKbps: Double
        /// From the request to the first body bytes.
        var timeToFirstAudioMs: Latency
    }

    // The settings of the run.
    var url: String?
    var progressiveURL: String?
    var rampSeconds: Double
    var bufferSeconds: Double
    var skipProbability: Double
    var restart: Bool
    var abr: String
    var timeoutSeconds: Double
    // What happened.
    var listeners: Int
    var hlsListeners: Int
    var durationSeconds: Double
    var speed: Double
    var sessions: Int
    var sessionsCompleted: Int
    var sessionsSkipped: Int
    var requests: Int
    var bytes: Int
    var connections: Int
    var reconnects: Int
    var errors: Errors
    /// All errors.
    var errorsTotal: Int
    var stalls: Int
    var stallSeconds: Double
    var switches: Int
    /// HLS segments fetched, by variant (its URI in the master playlist).
    var segments: [String: Int]
    /// Every request.
    var timeToFirstByteMs: Latency
    /// HLS: from the master playlist request to the first segment.
    var timeToFirstAudioMs: Latency
    var progressive: Progressive?
    /// Slowloris and non-reading connections opened beside the listeners.
    var slow: [SlowClients.Result]?
    var server: ProcessUse?
    var loadgen: ProcessUse
    /// The server's steady state (with `--server-pid`, when the run lasts past the ramp by more than 5 s).
    var steady: Steady?
    /// LL-HLS listeners (`--llhls`): the rung's media playlist, and each part's delay from its
    /// first sample to the moment it plays.
    var llhlsURL: String? = nil
    var delayToLiveEdgeMs: Latency? = nil

    /// The human summary.
    var summary: String {
        func f(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
        func latency(_ l: Latency) -> String {
            "p50 \(f(l.p50, 2)) ms  p95 \(f(l.p95, 2)) ms  p99 \(f(l.p99, 2)) ms  max \(f(l.max, 2)) ms  (n=\(l.count))"
        }
        func use(_ u: ProcessUse) -> String {
            "\(f(u.cpuSeconds)) CPU s, \(f(u.meanCores, 2)) cores mean, \(f(u.peakCores, 2)) peak, RSS peak \(f(u.peakRSSMiB)) MiB"
        }
        var lines = [
            "listeners        \(listeners) (\(hlsListeners) HLS, \(listeners - hlsListeners) progressive) for \(f(durationSeconds)) s at speed \(f(speed, 2))",
            "sessions         \(sessions) started, \(sessionsCompleted) played to the end, \(sessionsSkipped) skipped",
            "requests         \(requests) (\(f(Double(requests) / durationSeconds)) /s), \(f(Double(bytes) / 1_048_576)) MiB (\(f(Double(bytes) * 8 / durationSeconds / 1e6)) Mbit/s)",
            "connections      \(connections) opened, \(reconnects) idle keep-alive closes reopened",
            "errors           \(errors.total) (non-2xx \(errors.status), connect \(errors.connect), connection lost \(errors.connectionLost), timeout \(errors.timeout), playlist \(errors.playlist))",
            "stalls           \(stalls) (\(f(stallSeconds, 2)) s in all), rendition switches \(switches)",
            "HLS segments     \(segments.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))",
            "TTFB             \(latency(timeToFirstByteMs))",
            "first audio      \(latency(timeToFirstAudioMs)) (HLS: master playlist → first segment)",
        ]
        if let delayToLiveEdgeMs { lines.append("live delay       \(latency(delayToLiveEdgeMs)) (LL-HLS: a part's first sample → it plays)") }
        if let progressive {
            let bytes = progressive.bytesPerListener.sorted()
            lines.append("progressive      \(progressive.listeners) listeners, bytes each min \(bytes.first ?? 0) median \(bytes.isEmpty ? 0 : bytes[bytes.count / 2]) max \(bytes.last ?? 0); \(f(progressive.meanKbps)) kbit/s each while listening (pace \(f(progressive.paceKbps)))")
            lines.append("  first audio    \(latency(progressive.timeToFirstAudioMs)) (request → first body bytes)")
        }
        for result in slow ?? [] { lines.append("slow clients     \(result.summary)") }
        if let server { lines.append("server CPU       \(use(server))") }
        if let steady {
            lines.append("steady state     \(f(steady.seconds)) s, \(steady.requests) requests, server \(f(steady.serverCPUSeconds, 2)) CPU s (\(f(steady.serverCores, 3)) cores): \(steady.serverMicrosecondsPerRequest.map { f($0) } ?? "–") µs per request")
        }
        lines.append("loadgen CPU      \(use(loadgen))")
        return lines.joined(separator: "\n")
    }
}
