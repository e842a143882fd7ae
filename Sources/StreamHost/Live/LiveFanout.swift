import DequeModule
import NIOCore
import Synchronization

/// One continuous stream to many ICY listeners: the header pages a joining listener needs first
/// (Ogg), a burst of recent audio so that playback starts at once (Icecast's `burst-size`), and
/// each listener's queue, bounded: a listener more than `lagBytes` behind is disconnected.
///
/// A buffer is shared by every listener's queue (no copy per listener). Used for a mount's
/// source relayed as it is and for each rung of its ladder served as ADTS or Ogg Opus.
final class LiveFanout: Sendable {
    let burstBytes: Int
    let lagBytes: Int
    /// Audio published within this long is sent to listeners as one buffer (0: each at once).
    let coalesce: Duration

    private struct State {
        var recent = Deque<ByteBuffer>()
        var recentBytes = 0
        var headers: [ByteBuffer] = []
        var headersComplete = true
        var listeners: [UInt64: LiveListener] = [:]
        var nextListener: UInt64 = 0
        var dropped = 0
        /// Audio not yet sent (coalescing), and when its first bytes came.
        var pending: ByteBuffer?
        var pendingSince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    /// - Parameter coalesce: how long audio may wait to be sent with the audio after it. A relay
    ///   publishes each source frame (38 MP3 frames a second): each is a write and a wake-up per
    ///   listener, which at thousands of listeners costs more than everything else. Coalesced
    ///   over 100 ms, listeners get about 10 writes a second (Icecast sends 4 KiB at a time).
    init(burstBytes: Int, lagBytes: Int, coalesce: Duration = .zero) {
        self.burstBytes = burstBytes
        self.lagBytes = lagBytes
        self.coalesce = coalesce
    }

    /// Sends `buffer` to every listener (with the audio waiting to be coalesced, once it has
    /// waited ``coalesce``). A header buffer (an Ogg chain's first pages) is kept for listeners
    /// who join later, in place of the previous chain's headers; audio is kept in the burst.
    func publish(_ buffer: ByteBuffer, isHeader: Bool = false, now: ContinuousClock.Instant = .now) {
        var buffer = buffer
        if coalesce > .zero {
            let ready: ByteBuffer? = state.withLock { state in
                if isHeader {
                    // Headers are not coalesced: what waits goes first (flush) and the header is sent.
                    return nil
                }
                if state.pending == nil {
                    state.pending = buffer
                    state.pendingSince = now
                } else {
                    state.pending!.writeImmutableBuffer(buffer)
                }
                guard let since = state.pendingSince, now - since >= coalesce else { return ByteBuffer() }
                defer { state.pending = nil; state.pendingSince = nil }
                return state.pending
            }
            if isHeader {
                flush()
            } else {
                guard let ready, ready.readableBytes > 0 else { return }
                buffer = ready
            }
        }
        send(buffer, isHeader: isHeader)
    }

    /// Sends the audio waiting to be coalesced now (the source paused or left).
    func flush() {
        let pending: ByteBuffer? = state.withLock { state in
            defer { state.pending = nil; state.pendingSince = nil }
            return state.pending
        }
        if let pending, pending.readableBytes > 0 { send(pending, isHeader: false) }
    }

    private func send(_ buffer: ByteBuffer, isHeader: Bool) {
        let burst = burstBytes
        let listeners: [LiveListener] = state.withLock { state in
            if isHeader {
                if state.headersComplete { state.headers = [] }
                state.headersComplete = false
                state.headers.append(buffer)
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
        var dropped: [UInt64] = []
        for listener in listeners where !listener.offer(buffer, lagLimit: lagBytes) { dropped.append(listener.id) }
        if !dropped.isEmpty {
            state.withLock { state in
                for id in dropped where state.listeners.removeValue(forKey: id) != nil { state.dropped += 1 }
            }
        }
    }

    /// Sets the headers a joining listener gets first (not sent to current listeners).
    func setHeaders(_ headers: [ByteBuffer]) {
        state.withLock { state in
            state.headers = headers
            state.headersComplete = true
        }
    }

    /// A new listener, its queue starting with the headers and the burst.
    func addListener() -> LiveListener {
        state.withLock { state in
            let listener = LiveListener(id: state.nextListener)
            state.nextListener += 1
            for buffer in state.headers { _ = listener.offer(buffer, lagLimit: .max) }
            for buffer in state.recent { _ = listener.offer(buffer, lagLimit: .max) }
            state.listeners[listener.id] = listener
            return listener
        }
    }

    func removeListener(_ listener: LiveListener) {
        state.withLock { _ = $0.listeners.removeValue(forKey: listener.id) }
        listener.finish()
    }

    /// Ends every listener's stream and forgets the headers and the burst (a new stream follows).
    func reset() {
        let listeners: [LiveListener] = state.withLock { state in
            let listeners = Array(state.listeners.values)
            state = State(nextListener: state.nextListener, dropped: state.dropped)
            return listeners
        }
        for listener in listeners { listener.finish() }
    }

    var listenerCount: Int { state.withLock { $0.listeners.count } }
    var droppedCount: Int { state.withLock { $0.dropped } }
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
