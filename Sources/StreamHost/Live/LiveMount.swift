import Foundation
import MediaCore
import NIOCore
import Synchronization

/// One live mount: the source on it, its listeners as Icecast serves them (the source's own
/// bytes, relayed), and the show (``LiveSession``) that transcodes it to the live ladder.
///
/// Each unit the source sends (a frame or an Ogg page) becomes one `ByteBuffer` that every
/// relay listener's queue holds by reference (``LiveFanout``). When the source leaves, the
/// show goes on with the fallback for ``LiveConfiguration/graceSeconds``: relay listeners stay
/// connected (and continue when a source of the same format returns), ladder listeners keep
/// playing.
final class LiveMount: Sendable {
    let configuration: LiveMountConfiguration
    let live: LiveConfiguration
    private let context: LiveSession.Context?
    private let state = Mutex(State())
    /// The source's bytes as they are, for `GET /live/{mount}`.
    let relay: LiveFanout

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
        /// The format relay listeners are receiving (that of the last source).
        var relayFormat: LiveStreamFormat?
        var lastSource: SourceInfo?
        /// Increases with each source, so that a source taken over cannot touch its successor.
        var generation: UInt64 = 0
        var title: String?
        var bytesIn = 0
        var mediaSeconds = 0.0
        /// Called to disconnect the current source (a takeover, or the mount being ended).
        var disconnectSource: (@Sendable () -> Void)?
        /// The show running now, if any.
        var session: LiveSession?
        /// The last show, ended (its playlists carry `EXT-X-ENDLIST`; its recording's track).
        var lastSession: LiveSession?
        var ladderError: String?
    }

    /// - Parameter context: what a show needs from the host; nil runs the mount as a relay only.
    init(configuration: LiveMountConfiguration, live: LiveConfiguration, context: LiveSession.Context?) {
        self.configuration = configuration
        self.live = live
        self.context = context
        relay = LiveFanout(burstBytes: live.burstBytes, lagBytes: live.listenerLagBytes, coalesce: .milliseconds(100))
    }

    var name: String { configuration.name }

    /// Other mounts' fallback feeds that play this mount's source while their own is away.
    private let taps = Mutex<[ObjectIdentifier: LiveFallbackFeed]>([:])

    func addTap(_ feed: LiveFallbackFeed) { taps.withLock { $0[ObjectIdentifier(feed)] = feed } }
    func removeTap(_ feed: LiveFallbackFeed) { taps.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(feed)) } }

    private func deliverToTaps(_ samples: [Float]) {
        for feed in taps.withLock({ Array($0.values) }) { feed.push(samples) }
    }

    /// Its LL-HLS and DASH listeners.
    let audience = LiveAudience()

    // MARK: The source

    enum ClaimRefusal: Error {
        case busy
    }

    /// Makes `info` the mount's source and returns its generation, or refuses a second source
    /// (unless the mount is taken over: the current source is then disconnected).
    func claim(_ info: SourceInfo, disconnect: @escaping @Sendable () -> Void) throws(ClaimRefusal) -> UInt64 {
        let (generation, previous, formatChanged, session) = try state.withLock { state throws(ClaimRefusal) in
            if state.source != nil, !configuration.takeover { throw .busy }
            let previous = state.disconnectSource
            if let session = state.session, state.source != nil { session.sourceEnded(generation: state.generation) }
            state.generation += 1
            state.source = info
            state.lastSource = info
            state.disconnectSource = disconnect
            let formatChanged = state.relayFormat != info.format
            state.relayFormat = info.format
            state.mediaSeconds = 0
            return (state.generation, previous, formatChanged, state.session)
        }
        previous?()
        if formatChanged { relay.reset() }
        if let session {
            session.sourceStarted(info.format, generation: generation)
        } else {
            startSession(format: info.format, generation: generation)
        }
        return generation
    }

    /// Starts a show for the source of `generation`.
    private func startSession(format: LiveStreamFormat, generation: UInt64) {
        guard var context, live.ladderEnabled else { return }
        if !configuration.record { context.recordingDirectory = nil }
        context.live = configuration.applied(to: context.live)
        context.title = { [weak self] in self?.title }
        context.tap = { [weak self] samples in self?.deliverToTaps(samples) }
        let configuration = self.configuration
        let (mountNamed, trackAudio, logger) = (context.mountNamed, context.trackAudio, context.logger)
        context.makeFallback = { sampleRate, channelCount in
            if let name = configuration.fallbackMount, name != configuration.name, let other = mountNamed?(name) {
                let feed = LiveFallbackFeed(description: "mount:\(name)", channelCount: channelCount, capacityFrames: sampleRate * 3 / 2)
                other.addTap(feed)
                feed.whenClosed { [weak other, weak feed] in if let feed { other?.removeTap(feed) } }
                return feed
            }
            if let tracks = configuration.fallbackTracks, !tracks.isEmpty, let trackAudio {
                return LiveFallbackFeed.tracks(tracks, sampleRate: sampleRate, channelCount: channelCount, logger: logger, audio: trackAudio)
            }
            return nil
        }
        let onEnd = context.onEnd
        context.onEnd = { [weak self] session in
            self?.sessionEnded(session)
            onEnd(session)
        }
        do {
            let session = try LiveSession(mountName: name, format: format, generation: generation, context: context)
            state.withLock { state in
                state.session = session
                state.lastSession = session
                state.ladderError = nil
            }
            context.onStart(session)
        } catch {
            state.withLock { $0.ladderError = error.message }
        }
    }

    private func sessionEnded(_ session: LiveSession) {
        let relayEnds = state.withLock { state -> Bool in
            guard state.session === session else { return false }
            state.session = nil
            return state.source == nil
        }
        if relayEnds { relay.reset() }
    }

    /// Ends the source of `generation` (if it is still the mount's). Without a show to go on,
    /// its relay listeners' streams end.
    func release(generation: UInt64) {
        let outcome: (LiveSession?, Bool)? = state.withLock { state in
            guard state.generation == generation, state.source != nil else { return nil }
            state.source = nil
            state.disconnectSource = nil
            return (state.session, state.session == nil)
        }
        guard let (session, relayEnds) = outcome else { return }
        relay.flush()
        session?.sourceEnded(generation: generation)
        if relayEnds { relay.reset() }
    }

    /// Disconnects the current source, if any, and ends the show (the mount is being ended).
    func end() {
        let (disconnect, session) = state.withLock { ($0.disconnectSource, $0.session) }
        disconnect?()
        session?.end()
        relay.reset()
    }

    /// Relays one unit from the source of `generation` to every listener and to the show.
    func publish(_ frame: LiveFrame, generation: UInt64) {
        let session: LiveSession?? = state.withLock { state in
            guard state.generation == generation, state.source != nil else { return .none }
            state.bytesIn += frame.bytes.count
            state.mediaSeconds += frame.duration
            if let title = frame.title { state.title = title }
            return .some(state.session)
        }
        guard case .some(let session) = session else { return }
        session?.push(frame, generation: generation)
        relay.publish(ByteBuffer(bytes: frame.bytes), isHeader: frame.isStreamHeader)
    }

    /// Sets the now-playing title (Icecast's `updinfo`).
    func setTitle(_ title: String) {
        state.withLock { $0.title = title }
    }

    // MARK: Listeners

    /// A relay listener, with what its response headers describe; nil when the mount has
    /// neither a source nor a show going on.
    func addListener() -> (LiveListener, SourceInfo)? {
        guard let info = state.withLock({ state in state.source ?? (state.session != nil ? state.lastSource : nil) }) else { return nil }
        return (relay.addListener(), info)
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
        var session: LiveSession.Status?
    }

    var status: Status {
        let (source, title, bytesIn, mediaSeconds, ladderError, session) = state.withLock { state in
            (state.source, state.title, state.bytesIn, state.mediaSeconds, state.ladderError, state.session ?? state.lastSession)
        }
        return Status(source: source, title: title, listeners: relay.listenerCount, droppedListeners: relay.droppedCount,
                      bytesIn: bytesIn, mediaSeconds: mediaSeconds, ladderError: ladderError, session: session?.status)
    }

    var title: String? { state.withLock { $0.title } }

    /// The show now, or the last one (ended).
    var session: LiveSession? { state.withLock { $0.session ?? $0.lastSession } }

    /// The LL-HLS view of the show (or the last one's, ended).
    var hls: LivePresentation? { session?.hls }

    /// Whether this host runs the mount's show now (or relays a source without a ladder).
    var isRunningHere: Bool { status.source != nil || (session.map { !$0.isEnded } ?? false) }
}
