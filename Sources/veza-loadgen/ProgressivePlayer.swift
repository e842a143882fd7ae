import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import StreamKit
import Synchronization

/// A progressive player: one GET of the whole file per session, on a connection of its own,
/// read no faster than real time (`--progressive-kbps × speed`, plus
/// ``ListenerSettings/bufferSeconds`` read ahead), so that TCP backpressure holds the server
/// back; it stops after ``ListenerSettings/listenSeconds`` (closing the connection, as the
/// response is unfinished) or at the end of the file.
final class ProgressivePlayer: Listener {
    /// Body bytes received over the run.
    private var bytes = 0
    /// Wall seconds spent listening over the run.
    private var listened = 0.0
    /// The current session's playback (from its response head on).
    private var playback: Playback?
    /// The current session: when it started, when it stops listening, bytes received.
    private var started = ContinuousClock.now
    private var stopAt = ContinuousClock.now
    private var received = 0
    /// Counts sessions, so that a timer of an earlier one does nothing.
    private var generation = 0
    private var listening = false
    private var bytesPerMediaSecond: Double { settings.progressiveKbps * 1000 / 8 }

    init(loop: any EventLoop, url: LoopbackURL, settings: ListenerSettings) {
        super.init(loop: loop, server: url, settings: settings)
    }

    override var outcome: ListenerOutcome { .progressive(bytes: bytes, seconds: listened) }

    /// Starts a session.
    override func play() {
        generation += 1
        let session = generation
        started = .now
        stopAt = started + .seconds(settings.listenSeconds)
        received = 0
        listening = true
        after(stopAt) { if self.generation == session, self.listening { self.endSession() } }
        connected { connection in
            guard self.generation == session, self.listening else { return }
            self.stats.update { $0.sessions += 1 }
            connection.stream(self.server.path) { event in self.receive(event, on: connection) }
        }
    }

    private func receive(_ event: ListenerConnection.StreamEvent, on connection: ListenerConnection) {
        guard listening else { return }
        switch event {
        case .head(let head, let timeToFirstByte):
            stats.update {
                $0.requests += 1
                $0.timeToFirstByte.record(timeToFirstByte.microseconds)
            }
            guard (200..<300).contains(Int(head.status.code)) else {
                stats.update { $0.errors.status += 1 }
                stopListening()
                hangUp()
                return after(.now + .seconds(1)) { self.restartOrRetire() }
            }
            playback = Playback(speed: settings.speed)
            pace(connection)
        case .chunk(let chunk):
            let now = ContinuousClock.now
            // A listener who stops at `stopAt` has closed the connection by then: bytes that
            // arrive later are not received.
            guard now < stopAt else { return endSession() }
            received += chunk.readableBytes
            bytes += chunk.readableBytes
            let first = playback?.start == nil
            let stall = playback?.arrived(Double(chunk.readableBytes) / bytesPerMediaSecond, at: now)
            stats.update {
                $0.bytes += chunk.readableBytes
                if first { $0.progressiveFirstAudio.record((now - started).microseconds) }
                $0.count(stall: stall)
            }
            pace(connection)
        case .end:
            stats.update { $0.sessionsCompleted += 1 }
            endSession()
        }
    }

    /// Reads no further ahead of the playhead than the buffer allows (before playback: one buffer).
    private func pace(_ connection: ListenerConnection) {
        guard let current = playback, listening else { return }
        let now = ContinuousClock.now
        let allowed = (current.played(at: now) + settings.bufferSeconds) * bytesPerMediaSecond
        guard Double(received) >= allowed else { return connection.resume() }
        connection.pause()
        let wait = (Double(received) - allowed) / bytesPerMediaSecond / settings.speed
        let session = generation
        after(min(stopAt, now + .seconds(max(wait, 0.01)))) {
            if self.generation == session { self.pace(connection) }
        }
    }

    /// The session is over (played to the end, or listened long enough): the connection closes.
    private func endSession() {
        guard listening else { return }
        stopListening()
        playback = nil
        hangUp()
        restartOrRetire()
    }

    private func stopListening() {
        listening = false
        listened += (min(ContinuousClock.now, stopAt) - started).seconds
    }

    private func restartOrRetire() {
        if settings.restart { play() } else { retire() }
    }

    /// A lost connection ends the session (the next one starts on a new connection); its
    /// playback is kept, so that a stall still going on at the end of the run is counted.
    override func connectionFailed() {
        if listening { stopListening() }
    }

    override func finish(at time: ContinuousClock.Instant) {
        if listening { stopListening() }
        stats.record(stall: playback?.stall(at: time))
    }
}
