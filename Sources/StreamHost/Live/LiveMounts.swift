import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The host's live mounts by name: those of the configuration, and those created since
/// (`POST /v1/live`, or by a source with a `live` token when ``LiveConfiguration`` allows it).
/// Mounts made through the API are stored in the catalog: a restarted host, and every host on
/// the same catalog, knows them (hosts look for changes every 10 s). Mounts a source created
/// on connect live in memory.
///
/// As a service it archives, at start-up, the recordings of shows that a previous run of the
/// host left unfinished (a crash), and ends every show when the host stops.
final class LiveMounts: Sendable, Service {
    let configuration: LiveConfiguration
    private let context: LiveSession.Context?
    private let table = Table()
    /// WebSocket listeners between their 101 and their connection leaving HTTP.
    let webSockets = LiveWebSocketUpgrades()
    /// Where listeners' sessions go when they end (listening analytics connects to it).
    let listening = LiveListening()
    /// WebRTC (WHEP) sessions (nil without a ladder: they play its Opus rung).
    let webRTC: LiveWebRTC?
    private let catalog: (any Catalog)?
    /// Mounts whose origin this host has claimed (``LiveConfiguration/advertiseURL``).
    private let claimed = Mutex<Set<String>>([])
    /// The origins of shows running elsewhere, as last read (mount → URL and when).
    private let origins = Mutex<[String: (url: String?, read: ContinuousClock.Instant)]>([:])
    /// How long a claim lasts unless renewed (renewed every 2 s).
    static let originLease = 10.0

    /// Names of the mounts loaded from or stored in the catalog.
    private let stored = Mutex<Set<String>>([])
    /// Open once the catalog's mounts are loaded (at once without a catalog): the routes wait
    /// for it, so that a restarted host does not answer 404 for a stored mount.
    private let loaded = StartupGate(what: "the live mounts", deadline: .seconds(10))

    /// The mounts by name, shared with the shows (a fallback to another mount finds it here).
    private final class Table: Sendable {
        let mounts = Mutex<[String: LiveMount]>([:])
    }

    /// - Parameter context: what shows need from the host (nil: relay only, no ladder).
    ///   - catalog: where mounts made through the API are kept (nil: in memory only).
    init(configuration: LiveConfiguration, context: LiveSession.Context?, catalog: (any Catalog)? = nil) {
        self.configuration = configuration
        self.catalog = catalog
        if catalog == nil { loaded.open() }
        var context = context
        let table = self.table
        let webRTC = context.map { LiveWebRTC(configuration: configuration, metrics: $0.metrics, logger: $0.logger) }
        self.webRTC = webRTC
        context?.opusPackets = { mount, startTime, packets in webRTC?.send(mount: mount, startTime: startTime, packets: packets) }
        context?.mountNamed = { [weak table] name in table?.mounts.withLock { $0[name] } }
        self.context = context
        table.mounts.withLock { mounts in
            for mount in configuration.mounts { mounts[mount.name] = LiveMount(configuration: mount, live: configuration, context: context) }
        }
    }

    /// The mount named `name`, once the stored mounts are loaded (see ``loaded``).
    func find(_ name: String) async -> LiveMount? {
        try? await loaded.wait()
        return mount(name)
    }

    /// Every mount, once the stored mounts are loaded.
    func loadedAll() async -> [LiveMount] {
        try? await loaded.wait()
        return all
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

    /// Adds a mount made through the API and stores it in the catalog (the mount is not added
    /// when it cannot be stored).
    func createStored(_ configuration: LiveMountConfiguration) async throws -> LiveMount {
        let mount = try create(configuration)
        if let catalog {
            do {
                let json = String(decoding: try JSONEncoder().encode(configuration), as: UTF8.self)
                try await catalog.saveLiveMount(name: configuration.name, json: json)
                stored.withLock { _ = $0.insert(configuration.name) }
            } catch {
                _ = remove(configuration.name)
                throw error
            }
        }
        return mount
    }

    /// Ends a mount and forgets it in the catalog; false when there was none.
    func removeStored(_ name: String) async throws -> Bool {
        let removed = remove(name)
        stored.withLock { _ = $0.remove(name) }
        let deleted = try await catalog?.deleteLiveMount(name: name) ?? false
        return removed || deleted
    }

    /// Adds the catalog's mounts this host does not know yet and ends those deleted through
    /// another host (configured mounts are never touched).
    func syncStored() async {
        guard let catalog, let rows = try? await catalog.liveMounts() else { return }
        let configured = Set(configuration.mounts.map(\.name))
        let names = Set(rows.map(\.name)).subtracting(configured)
        for row in rows where names.contains(row.name) && mount(row.name) == nil {
            guard let mount = try? JSONDecoder().decode(LiveMountConfiguration.self, from: Data(row.json.utf8)) else {
                context?.logger.error("a stored live mount cannot be read", metadata: ["mount": "\(row.name)"])
                continue
            }
            _ = try? create(mount)
        }
        let gone = stored.withLock { known in
            defer { known = names }
            return known.subtracting(names)
        }
        for name in gone { _ = remove(name) }
    }

    // MARK: Service

    func run() async throws {
        await syncStored()
        loaded.open()
        await archiveLeftovers()
        // LL-HLS and DASH listeners per protocol in the metrics every two seconds; the
        // catalog's mounts every ten.
        try? await cancelWhenGracefulShutdown {
            var round = 0
            while !Task.isCancelled {
                self.publishAudience()
                await self.claimOrigins()
                round += 1
                if round % 5 == 0 { await self.syncStored() }
                try await Task.sleep(for: .seconds(2))
            }
        }
        for mount in all { mount.end() }
        webRTC?.shutdown()
    }

    // MARK: Several hosts

    /// Claims (renews) the origin of every mount whose show runs here, and gives up the claims
    /// of shows that ended. A show whose claim another host holds goes on here, logged: its
    /// listeners on other hosts are sent to that host.
    func claimOrigins() async {
        guard let catalog, let node = configuration.advertiseURL else { return }
        let now = Date()
        for mount in all {
            let running = mount.session.map { !$0.isEnded } ?? false
            if running {
                do {
                    if try await catalog.claimLiveOrigin(mount: mount.name, node: node, leaseSeconds: Self.originLease, now: now) {
                        claimed.withLock { _ = $0.insert(mount.name) }
                    } else {
                        context?.logger.warning("another host is the origin of a live mount whose show runs here", metadata: ["mount": "\(mount.name)"])
                    }
                } catch {
                    context?.logger.warning("cannot claim a live mount's origin", metadata: ["mount": "\(mount.name)", "error": "\(error)"])
                }
            } else if claimed.withLock({ $0.remove(mount.name) }) != nil {
                try? await catalog.releaseLiveOrigin(mount: mount.name, node: node)
            }
        }
    }

    /// The URL of the host running `name`'s show when that is another host (read from the
    /// catalog at most once a second per mount); nil when it runs here, nowhere, or hosts do
    /// not advertise themselves.
    func remoteOrigin(_ name: String) async -> String? {
        guard let catalog, let node = configuration.advertiseURL else { return nil }
        let now = ContinuousClock.now
        if let cached = origins.withLock({ $0[name] }), now - cached.read < .seconds(1) {
            return cached.url == node ? nil : cached.url
        }
        let url = try? await catalog.liveOrigin(mount: name, now: Date())
        origins.withLock { $0[name] = (url ?? nil, now) }
        return url == node ? nil : url ?? nil
    }

    /// Listeners now by mount: relay and ladder ICY connections, WebSocket listeners, LL-HLS
    /// and DASH players seen lately (WebRTC sessions are counted for the host, not per mount).
    func listenerCounts() -> [String: Int] {
        var counts: [String: Int] = [:]
        for mount in all {
            let status = mount.session?.status
            counts[mount.name] = mount.audience.counts().values.reduce(0, +) + mount.status.listeners
                + (status?.rungListeners ?? 0) + (status?.webSocketListeners ?? 0)
        }
        return counts
    }

    /// Sets the LL-HLS and DASH listener gauges from every mount's audience, and hands the
    /// sessions of players gone for longer than the audience window to listening analytics.
    func publishAudience() {
        for mount in all {
            for (kind, player) in mount.audience.takeEnded() {
                listening.ended(LiveListenerSession(
                    mount: mount.name, transport: kind.rawValue, address: player.address, userAgent: player.userAgent,
                    startedAt: player.first, endedAt: player.last, requests: player.requests))
            }
        }
        guard let metrics = context?.metrics else { return }
        var totals: [String: Int] = [:]
        for mount in all {
            for (kind, count) in mount.audience.counts() { totals[kind.rawValue, default: 0] += count }
            totals["websocket", default: 0] += mount.session?.status.webSocketListeners ?? 0
        }
        totals["webrtc"] = webRTC?.totalSessions ?? 0
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
