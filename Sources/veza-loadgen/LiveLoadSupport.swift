import Foundation
import Synchronization

// What the live listener modes (`--whep`, `--websocket`) share: their counters, the sampling of
// the server and of the load generator, and the report's output.

/// The run report's types (`Report` in Stats.swift), named so inside the modes' own `Report`s.
typealias LoadGenReport = Report

/// Counters that every listener of a run adds to, behind one lock.
final class Tally<Counts>: Sendable {
    let counts: Mutex<Counts>
    init(_ counts: sending Counts) { self.counts = Mutex(counts) }
    func update(_ body: (inout Counts) -> Void) { counts.withLock { body(&$0) } }
}

/// What ``sampleProcesses(serverPIDs:steadyFrom:)`` found.
struct ProcessSamples: Sendable {
    var server: Report.ProcessUse?
    var loadgen: Report.ProcessUse
    /// The server's cores from `steadyFrom` to the end (nil without a server or before it).
    var steadyServerCores: Double?
}

/// Samples the server's and this process's CPU and RSS once a second until the task is
/// cancelled.
func sampleProcesses(serverPIDs: [Int32], steadyFrom: ContinuousClock.Instant) -> Task<ProcessSamples, Never> {
    Task {
        var server = serverPIDs.isEmpty ? nil : ProcessSampler(pids: serverPIDs)
        var own = ProcessSampler(pids: [getpid()])
        var steadyStart: (cpu: Double, at: ContinuousClock.Instant)?
        while !Task.isCancelled {
            server?.sample()
            own.sample()
            if steadyStart == nil, ContinuousClock.now >= steadyFrom, let cpu = server?.cpuSeconds { steadyStart = (cpu, .now) }
            try? await Task.sleep(for: .seconds(1))
        }
        server?.sample()
        own.sample()
        var steady: Double?
        if let steadyStart, let cpu = server?.cpuSeconds { steady = (cpu - steadyStart.cpu) / (ContinuousClock.now - steadyStart.at).seconds }
        return ProcessSamples(server: server?.report, loadgen: own.report, steadyServerCores: steady)
    }
}

/// Prints `report` as JSON, and writes it to `json` when given.
func emit(_ report: some Encodable, json: String?) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(report)
    print(String(decoding: data, as: UTF8.self))
    if let json { try data.write(to: URL(fileURLWithPath: json)) }
}
