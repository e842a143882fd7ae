import DequeModule
import Foundation
import MediaCore
import NIOCore
import Synchronization

/// One live mount: the source on it, the recent audio a joining listener gets at once, the
/// listeners, and the now-playing title.
///
/// Each unit the source sends (a frame or an Ogg page) becomes one `ByteBuffer` that every
/// listener's queue holds by reference (no copy per listener). A listener whose queue grows
/// past ``LiveConfiguration/listenerLagBytes`` is disconnected: nobody is buffered without bound.
final class LiveMount: Sendable {
    let configuration: LiveMountConfiguration
    private let live: LiveConfiguration
    private let state = Mutex(State())

    /// What a source told about itself when it connected (the `ice-*` headers).
    struct SourceInfo: Sendable, Hashable {
        var format: LiveStreamFormat
        var name: String?
        var genre: String?
        var description: String?
        var isPublic: Bool
        var bitrate: String?
        var userAgent: String?
        var address: String
        var connectedAt: Date
    }

    struct State {
        var source: SourceInfo?
        /// Increases with each source, so that a source taken over cannot touch its successor.
        var generation: UInt64 = 0
        var recent = Deque<ByteBuffer>()
        var recentBytes = 0
        /// Ogg: the header pages of the current chain, sent to each listener before audio.
        var streamHeaders: [ByteBuffer] = []
        var headersComplete = true
        var listeners: [UInt64: LiveListener] = [:]
        var nextListener: UInt64 = 0
        var title: String?
        var bytesIn = 0
        var mediaSeconds = 0.0
        var droppedListeners = 0
        /// Called to disconnect the current source (a takeover, or the mount being ended).
        var disconnectSource: (@Sendable () -> Void)?
        /// The live ladder of the current (or last) source, as LL-HLS.
        var hls: LiveHLS?
        /// Units on their way to the ladder's task.
        var ladderInput: AsyncStream<LiveFrame>.Continuation?
        var ladderError: String?
    }

    init(configuration: LiveMountConfiguration, live: LiveConfiguration) {
        self.configuration = configuration
        self.live = live
    }

    var name: String { configuration.name }

    // MARK: The source

    enum ClaimRefusal: Error {
        case busy
    }

    /// Makes `info` the mount's source and returns its generation, or refuses a second source
    /// (unless the mount is taken over: the current source is then disconnected).
    func claim(_ info: SourceInfo, disconnect: @escaping @Sendable () -> Void) throws(ClaimRefusal) -> UInt64 {
        let (generation, previous, listeners) = try state.withLock { state throws(ClaimRefusal) -> (UInt64, (@Sendable () -> Void)?, [LiveListener]) in
            if state.source != nil, !configuration.takeover { throw .busy }
            let previous = state.disconnectSource
            let listeners = Array(state.listeners.values)
            state.ladderInput?.finish()
            state.ladderInput = nil
            state.generation += 1
            state.source = info
            state.disconnectSource = disconnect
            state.recent.removeAll()
            state.recentBytes = 0
            state.streamHeaders = []
            state.headersComplete = info.format != .ogg
            state.listeners = [:]
            state.mediaSeconds = 0
            return (state.generation, previous, listeners)
        }
        previous?()
        for listener in listeners { listener.finish() }
        startLadder(format: info.format, generation: generation)
        return generation
    }

    /// Starts the source's real-time ladder: a task that decodes its units (``LiveDecoder``),
    /// encodes every rung (``LiveLadder``) and publishes the parts as LL-HLS (``LiveHLS``).
    /// The units reach it through a bounded queue: a ladder that falls more than about a minute
    /// behind loses the oldest units rather than memory.
    private func startLadder(format: LiveStreamFormat, generation: UInt64) {
        guard live.ladderEnabled else { return }
        let ladder: LiveLadder
        do {
            ladder = try LiveLadder()
        } catch {
            state.withLock { $0.ladderError = error.message }
            return
        }
        let hls = LiveHLS(ladder: ladder, windowSeconds: live.dvrSeconds, startedAt: Date())
        let (units, input) = AsyncStream.makeStream(of: LiveFrame.self, bufferingPolicy: .bufferingNewest(3000))
        state.withLock { state in
            guard state.generation == generation else { return }
            state.hls = hls
            state.ladderInput = input
            state.ladderError = nil
        }
        Task { [weak self] in
            do throws(MediaError) {
                let decoder = try LiveDecoder(format: format, outputRate: ladder.sampleRate, outputChannels: ladder.channelCount)
                for await unit in units {
                    let samples = try decoder.decode(unit)
                    if !samples.isEmpty { hls.append(try ladder.push(samples)) }
                }
            } catch {
                self?.state.withLock { $0.ladderError = error.message }
            }
            hls.end()
        }
    }

    /// Ends the source of `generation` (if it is still the mount's): its listeners' streams end.
    func release(generation: UInt64) {
        let listeners: [LiveListener]? = state.withLock { state in
            guard state.generation == generation, state.source != nil else { return nil }
            state.source = nil
            state.disconnectSource = nil
            state.ladderInput?.finish()
            state.ladderInput = nil
            let listeners = Array(state.listeners.values)
            state.listeners = [:]
            state.recent.removeAll()
            state.recentBytes = 0
            state.streamHeaders = []
            return listeners
        }
        for listener in listeners ?? [] { listener.finish() }
    }

    /// Disconnects the current source, if any (the mount is being ended).
    func disconnect() {
        let disconnect = state.withLock { $0.disconnectSource }
        disconnect?()
    }

    /// Relays one unit from the source of `generation` to every listener.
    func publish(_ frame: LiveFrame, generation: UInt64) {
        var buffer = ByteBuffer()
        buffer.writeBytes(frame.bytes)
        let lag = live.listenerLagBytes
        let burst = live.burstBytes
        let listeners: [LiveListener]? = state.withLock { state in
            guard state.generation == generation, state.source != nil else { return nil }
            state.ladderInput?.yield(frame)
            state.bytesIn += buffer.readableBytes
            state.mediaSeconds += frame.duration
            if let title = frame.title { state.title = title }
            if frame.isStreamHeader {
                // A new chain's first page replaces the previous chain's headers.
                if state.headersComplete { state.streamHeaders = [] }
                state.headersComplete = false
                state.streamHeaders.append(buffer)
            } else {
                state.headersComplete = true
                state.recent.append(buffer)
                state.recentBytes += buffer.readableBytes
                while state.recentBytes - (state.recent.first?.readableBytes ?? 0) >= burst, let first = state.recent.popFirst() {
                    state.recentBytes -= first.readableBytes
                }
            }
            return Array(state.listeners.values)
        }
        guard let listeners else { return }
        var dropped: [UInt64] = []
        for listener in listeners where !listener.offer(buffer, lagLimit: lag) { dropped.append(listener.id) }
        if !dropped.isEmpty {
            state.withLock { state in
                for id in dropped where state.listeners.removeValue(forKey: id) != nil { state.droppedListeners += 1 }
            }
        }
    }

    /// Sets the now-playing title (Icecast's `updinfo`).
    func setTitle(_ title: String) {
        state.withLock { $0.title = title }
    }

    // MARK: Listeners

    /// Adds a listener: its queue starts with the current chain's headers and the burst of
    /// recent audio. Nil when the mount has no source.
    func addListener() -> (LiveListener, SourceInfo)? {
        state.withLock { state in
            guard let source = state.source else { return nil }
            let listener = LiveListener(id: state.nextListener)
            state.nextListener += 1
            for buffer in state.streamHeaders { _ = listener.offer(buffer, lagLimit: .max) }
            for buffer in state.recent { _ = listener.offer(buffer, lagLimit: .max) }
            state.listeners[listener.id] = listener
            return (listener, source)
        }
    }

    func removeListener(_ listener: LiveListener) {
        state.withLock { _ = $0.listeners.removeValue(forKey: listener.id) }
        listener.finish()
    }

    /// A snapshot for the API and metrics.
    struct Status: Sendable {
        var source: SourceInfo?
        var title: String?
        var listeners: Int
        var droppedListeners: Int
        var bytesIn: Int
        var mediaSeconds: Double
        var ladderError: String?
    }

    var status: Status {
        state.withLock { state in
            Status(source: state.source, title: state.title, listeners: state.listeners.count, droppedListeners: state.droppedListeners,
                   bytesIn: state.bytesIn, mediaSeconds: state.mediaSeconds, ladderError: state.ladderError)
        }
    }

    var title: String? { state.withLock { $0.title } }

    /// The LL-HLS view of the current source's ladder (or the last one's, ended).
    var hls: LiveHLS? { state.withLock { $0.hls } }
}

/// One listener's queue: the buffers not yet written to its connection, counted in bytes.
final class LiveListener: Sendable {
    let id: UInt64
    let buffers: AsyncStream<ByteBuffer>
    private let continuation: AsyncStream<ByteBuffer>.Continuation
    private let queued = Atomic<Int>(0)
    private let dropped = Atomic<Bool>(false)

    /// Whether the listener was disconnected for falling behind.
    var wasDropped: Bool { dropped.load(ordering: .relaxed) }

    init(id: UInt64) {
        self.id = id
        (buffers, continuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .unbounded)
    }

    /// Queues `buffer`, or ends the stream and returns false when the listener already has
    /// `lagLimit` bytes waiting (it cannot keep up).
    func offer(_ buffer: ByteBuffer, lagLimit: Int) -> Bool {
        let size = buffer.readableBytes
        let waiting = queued.add(size, ordering: .relaxed).newValue
        guard waiting - size <= lagLimit else {
            dropped.store(true, ordering: .relaxed)
            continuation.finish()
            return false
        }
        if case .terminated = continuation.yield(buffer) { return false }
        return true
    }

    /// The connection wrote `bytes` of the queue.
    func consumed(_ bytes: Int) {
        queued.subtract(bytes, ordering: .relaxed)
    }

    func finish() { continuation.finish() }
}
