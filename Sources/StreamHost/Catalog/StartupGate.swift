import Synchronization

/// Whether a service that others depend on has started: callers ``wait()`` until it is
/// ``open()``, get its start-up error once it ``fail(_:)``s, and a clear error when it was never
/// run at all. Once open, a wait is one atomic load.
///
/// Hand-written because none of the listed packages has a one-shot gate with a deadline
/// (ServiceLifecycle orders start-up by the group's service order, not by readiness). Waiting
/// polls every 20 ms: it happens only in the first moments of a process.
final class StartupGate: Sendable {
    private let isOpen = Atomic<Bool>(false)
    private let failure = Mutex<CatalogError?>(nil)
    private let what: String
    private let deadline: Duration

    init(what: String, deadline: Duration = .seconds(30)) {
        self.what = what
        self.deadline = deadline
    }

    func open() { isOpen.store(true, ordering: .releasing) }

    func fail(_ error: CatalogError) { failure.withLock { $0 = error } }

    /// Returns once the gate is open; throws the start-up failure, or after the deadline an
    /// error saying the service is not running (or on cancellation).
    func wait() async throws(CatalogError) {
        if isOpen.load(ordering: .acquiring) { return }
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: deadline)
        while !isOpen.load(ordering: .acquiring) {
            if let error = failure.withLock({ $0 }) { throw error }
            guard clock.now < end else {
                throw CatalogError(.database, "\(what) is not running: run it as a service (StreamHostServer.services) before using it")
            }
            do {
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                throw CatalogError(.database, "cancelled while waiting for \(what) to start")
            }
        }
    }
}
