import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The host's live mounts by name: those of the configuration, and those created since
/// (`POST /v1/live`, or by a source with a `live` token when ``LiveConfiguration`` allows it).
/// Mounts made at run time live in memory: a restarted host knows only the configured ones.
///
/// As a service it archives, at start-up, the recordings of shows that a previous run of the
/// host left unfinished (a crash), and ends every show when the host stops.
final class LiveMounts: Sendable, Service {
    let configuration: LiveConfiguration
    private let context: LiveSession.Context?
    private let table = Table()

    /// The mounts by name, shared with the shows (a fallback to another mount finds it here).
    private final class Table: Sendable {
        let mounts = Mutex<[String: LiveMount]>([:])
    }

    /// - Parameter context: what shows need from the host (nil: relay only, no ladder).
    init(configuration: LiveConfiguration, context: LiveSession.Context?) {
        self.configuration = configuration
        var context = context
        let table = self.table
        context?.mountNamed = { [weak table] name in table?.mounts.withLock { $0[name] } }
        self.context = context
        table.mounts.withLock { mounts in
            for mount in configuration.mounts { mounts[mount.name] = LiveMount(configuration: mount, live: configuration, context: context) }
        }
    }

    func mount(_ name: String) -> LiveMount? {
        table.mounts.withLock { $0[name] }
    }

    var all: [LiveMount] {
        table.mounts.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }

    enum CreateRefusal: Error {
        case exists
    }

    /// Adds a mount; refuses a name in use.
    func create(_ configuration: LiveMountConfiguration) throws(CreateRefusal) -> LiveMount {
        let live = self.configuration
        let context = self.context
        return try table.mounts.withLock { mounts throws(CreateRefusal) -> LiveMount in
            guard mounts[configuration.name] == nil else { throw .exists }
            let mount = LiveMount(configuration: configuration, live: live, context: context)
            mounts[configuration.name] = mount
            return mount
        }
    }

    /// Ends a mount: its source is disconnected, its show ends, the name is free.
    func remove(_ name: String) -> Bool {
        guard let mount = table.mounts.withLock({ $0.removeValue(forKey: name) }) else { return false }
        mount.end()
        return true
    }

    // MARK: Service

    func run() async throws {
        await archiveLeftovers()
        // LL-HLS and DASH listeners per protocol, in the metrics every two seconds.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.publishAudience()
                try await Task.sleep(for: .seconds(2))
            }
        }
        for mount in all { mount.end() }
    }

    /// Sets the LL-HLS and DASH listener gauges from every mount's audience.
    func publishAudience() {
        guard let metrics = context?.metrics else { return }
        var totals: [String: Int] = [:]
        for mount in all {
            for (kind, count) in mount.audience.counts() { totals[kind.rawValue, default: 0] += count }
        }
        metrics.liveAudience(totals)
    }

    /// Archives the recordings a crashed run left in the recording directory (their headers
    /// rewritten from their sizes): the show up to the crash becomes a track.
    func archiveLeftovers() async {
        guard let context, let directory = context.recordingDirectory, let archive = context.archive,
              let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names.sorted() where name.hasSuffix(".wav") {
            let path = directory + "/" + name
            do {
                let frames = try LiveRecording.repair(path: path)
                guard frames > 0 else {
                    try? FileManager.default.removeItem(atPath: path)
                    continue
                }
                let key = String(name.dropLast(4).split(separator: "~").last ?? "")
                let track = try await archive(path, key)
                context.logger.info("archived an unfinished live recording", metadata: ["file": "\(name)", "track": "\(track)", "frames": "\(frames)"])
            } catch {
                context.logger.error("cannot archive an unfinished live recording", metadata: ["file": "\(name)", "error": "\(error)"])
            }
        }
    }
}
