import Synchronization

/// The host's live mounts by name: those of the configuration, and those created since
/// (`POST /v1/live`, or by a source with a `live` token when ``LiveConfiguration`` allows it).
/// Mounts made at run time live in memory: a restarted host knows only the configured ones.
final class LiveMounts: Sendable {
    let configuration: LiveConfiguration
    private let mounts: Mutex<[String: LiveMount]>

    init(configuration: LiveConfiguration) {
        self.configuration = configuration
        var mounts: [String: LiveMount] = [:]
        for mount in configuration.mounts { mounts[mount.name] = LiveMount(configuration: mount, live: configuration) }
        self.mounts = Mutex(mounts)
    }

    func mount(_ name: String) -> LiveMount? {
        mounts.withLock { $0[name] }
    }

    var all: [LiveMount] {
        mounts.withLock { Array($0.values) }.sorted { $0.name < $1.name }
    }

    enum CreateRefusal: Error {
        case exists
    }

    /// Adds a mount; refuses a name in use.
    func create(_ configuration: LiveMountConfiguration) throws(CreateRefusal) -> LiveMount {
        let live = self.configuration
        return try mounts.withLock { mounts throws(CreateRefusal) -> LiveMount in
            guard mounts[configuration.name] == nil else { throw .exists }
            let mount = LiveMount(configuration: configuration, live: live)
            mounts[configuration.name] = mount
            return mount
        }
    }

    /// Ends a mount: its source is disconnected, its listeners' streams end, the name is free.
    func remove(_ name: String) -> Bool {
        guard let mount = mounts.withLock({ $0.removeValue(forKey: name) }) else { return false }
        mount.disconnect()
        return true
    }
}
