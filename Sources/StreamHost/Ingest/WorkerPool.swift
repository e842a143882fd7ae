import Foundation
public import Logging
import MediaCore
public import ServiceLifecycle
import Synchronization

/// The worker pool: `workerCount` loops that lease jobs from the ``Catalog``, run the
/// ``IngestPipeline`` with a heartbeat that extends the lease and persists progress, and
/// record the outcome (done, retry with exponential backoff, or dead-letter).
///
/// A `Service`: on graceful shutdown the running jobs are cancelled and their leases given
/// back, so another host (or this one, restarted) runs them again at once; if the process
/// dies instead, the leases expire and the same happens after ``HostConfiguration/leaseSeconds``.
public final class WorkerPool: Service {
    let catalog: any Catalog
    let pipeline: IngestPipeline
    let configuration: HostConfiguration
    let logger: Logger
    /// Prefix of this pool's lease owners in the queue (`{instance}-{slot}`).
    public let instance = String(UUID().uuidString.prefix(8))
    private let wake = WakeSignal()
    private let stopped = Atomic<Bool>(false)

    let metrics: HostMetrics?

    public init(catalog: any Catalog, pipeline: IngestPipeline, configuration: HostConfiguration, logger: Logger,
                metrics: HostMetrics? = nil) {
        self.metrics = metrics
        self.catalog = catalog
        self.pipeline = pipeline
        self.configuration = configuration
        self.logger = logger
    }

    /// True once the pool has stopped (after a graceful shutdown).
    public var isStopped: Bool { stopped.load(ordering: .relaxed) }

    /// Tells idle workers that a job was enqueued (they also poll).
    public func notify() { wake.signal() }

    public func run() async throws {
        guard configuration.workerCount > 0 else {
            try? await gracefulShutdown()
            return
        }
        logger.info("worker pool started", metadata: ["workers": "\(configuration.workerCount)"])
        let wake = self.wake
        catalog.onJobAvailable { wake.signal() }
        // Graceful shutdown cancels the loops; a cancelled job gives its lease back.
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for index in 0..<self.configuration.workerCount {
                    group.addTask { await self.workerLoop(name: "\(self.instance)-\(index)") }
                }
            }
        }
        stopped.store(true, ordering: .relaxed)
        logger.info("worker pool stopped")
    }

    private func workerLoop(name: String) async {
        while !Task.isCancelled {
            do {
                if let job = try await catalog.claimJob(owner: name, leaseSeconds: configuration.leaseSeconds, now: Date()) {
                    await execute(job, owner: name)
                    continue
                }
            } catch {
                logger.error("cannot claim a job", metadata: ["error": "\(error)"])
            }
            // Idle: wait for a wake-up or the poll interval, whichever is first.
            await wake.wait(atMost: .seconds(configuration.pollSeconds))
        }
    }

    private func execute(_ job: JobRecord, owner: String) async {
        let log = logger.with(job: job)
        let track: TrackRecord
        do {
            guard let found = try await catalog.track(id: job.trackID) else {
                _ = try? await catalog.fail(jobID: job.id, owner: owner, error: "the track was deleted", retryAt: nil, now: Date())
                return
            }
            track = found
        } catch {
            // The catalog could not answer: not the job's fault, so it goes back without an attempt.
            log.error("cannot read the job's track", metadata: ["error": "\(error)"])
            try? await catalog.release(jobID: job.id, owner: owner)
            return
        }
        log.info("job started", metadata: ["attempt": "\(job.attempts)"])
        let started = ContinuousClock.now
        let progress = ProgressBox()
        let outcome: Result<String, any Error> = await withTaskGroup(of: Result<String, any Error>?.self) { group in
            group.addTask {
                do {
                    return .success(try await self.pipeline.run(job: job, track: track) { progress.set($0) })
                } catch {
                    return .failure(error)
                }
            }
            group.addTask {
                // Heartbeat: extend the lease at a third of its length; stop the job if lost.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(self.configuration.leaseSeconds / 3))
                    if Task.isCancelled { break }
                    let held = (try? await self.catalog.heartbeat(jobID: job.id, owner: owner, progress: progress.get(),
                                                                   leaseSeconds: self.configuration.leaseSeconds, now: Date())) ?? true
                    if !held { return .failure(CancellationError()) }
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if let first { return first }
            return await group.next().flatMap { $0 } ?? .failure(CancellationError())
        }
        let elapsed = ContinuousClock.now - started
        /// Gives the job back without spending an attempt, from a fresh task: this one may be
        /// cancelled (shutdown), and the database calls honour that.
        func releaseJob() async {
            let catalog = self.catalog
            await Task { try? await catalog.release(jobID: job.id, owner: owner) }.value
        }
        switch outcome {
        case .success(let manifest):
            let recorded = (try? await catalog.complete(jobID: job.id, owner: owner, version: job.targetVersion, manifestJSON: manifest, now: Date())) ?? false
            if recorded {
                metrics?.jobFinished(outcome: "published", duration: elapsed)
                log.info("job done", metadata: ["seconds": "\(elapsed.components.seconds)"])
            } else {
                // Deleted meanwhile, or the lease was lost: take back what was published.
                let layout = TrackLayout(track: job.trackID)
                let prefix = layout.version(job.targetVersion).prefix
                // Only when the catalog says the track is gone; an unreadable catalog deletes nothing.
                let exists: Bool? = try? await catalog.track(id: job.trackID) != nil   // nil: catalog unreadable
                if exists == false {
                    try? await pipeline.storage.delete(prefix: layout.prefix)
                }
                log.warning("job finished but its lease or track is gone", metadata: ["prefix": "\(prefix)"])
            }
        case .failure(let error) where error is CancellationError || Task.isCancelled:
            await releaseJob()
            metrics?.jobFinished(outcome: "cancelled", duration: nil)
            log.info("job released")
        case .failure(let error) where error is StorageError && pipeline.storage.isUnavailable:
            // The object store is down: not the job's fault. It goes back without an attempt
            // after a pause (no claim loop while the store is down), so that an outage longer
            // than the retries does not fail uploads already accepted and stored.
            log.warning("job released: object storage unavailable", metadata: ["error": "\(error)"])
            try? await Task.sleep(for: .seconds(max(configuration.retryBaseSeconds, 1)))
            await releaseJob()
            metrics?.jobFinished(outcome: "released", duration: nil)
        case .failure(let error):
            let permanent = (error as? MediaError).map { [.unsupportedFormat, .invalidData, .noAudioStream, .unsupportedCodec, .unsupportedParameters].contains($0.code) } ?? false
            let delay = configuration.retryBaseSeconds * pow(2, Double(max(job.attempts - 1, 0)))
            let message = (error as? MediaError)?.message ?? "\(error)"
            let state = try? await catalog.fail(jobID: job.id, owner: owner, error: message,
                                                retryAt: permanent ? nil : Date().addingTimeInterval(delay), now: Date())
            metrics?.jobFinished(outcome: state == .dead ? "dead" : "retry", duration: nil)
            log.error("job failed", metadata: ["error": "\(message)", "state": "\(state?.rawValue ?? "?")"])
        }
    }
}

extension Logger {
    func with(job: JobRecord) -> Logger {
        var copy = self
        copy[metadataKey: "job"] = "\(job.id)"
        copy[metadataKey: "track"] = "\(job.trackID)"
        return copy
    }
}

/// Wakes one idle worker (or the next one to wait, if none is waiting).
///
/// Not an `AsyncStream`: a stream finishes for good when its consumer's task is cancelled,
/// which the idle wait does every poll interval, after which every wait returned at once and
/// idle workers spun on the queue.
final class WakeSignal: Sendable {
    private struct State {
        var pending = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }
    private let state = Mutex(State())

    /// Resumes one waiter, or lets the next `wait()` return at once.
    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let (id, waiter) = state.waiters.first {
                state.waiters[id] = nil
                return waiter
            }
            state.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns after a `signal()`, after `timeout`, or when the task is cancelled, whichever is first.
    func wait(atMost timeout: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(for: timeout) }
            group.addTask { await self.wait() }
            await group.next()
            group.cancelAll()
        }
    }

    /// Returns after a `signal()` or when the task is cancelled.
    func wait() async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    // Cancelled before registering: the handler below already ran and found nothing.
                    if Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
