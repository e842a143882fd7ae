import Foundation
import Synchronization

/// One live listener's session as the live path saw it end: an ICY or WebSocket connection, or
/// an LL-HLS or DASH player (``LiveAudience``) gone for longer than its window.
struct LiveListenerSession: Sendable {
    var mount: String
    /// `icy` (the relay), `icy-ladder` (a rung as an ICY stream), `websocket`, `hls`, `dash`.
    var transport: String
    /// The rung (or `relay`), when known.
    var rendition: String?
    var codec: String?
    var address: IPAddress?
    var userAgent: String?
    /// Seconds since 1970.
    var startedAt: Double
    var endedAt: Double
    var bytes: Int64 = 0
    var requests = 1
    /// The show ended while the listener was still there.
    var showEnded = false

    /// The track id its listening is stored under: `live:{mount}` (`GET /v1/analytics/tracks/live:{mount}`).
    var track: String { "live:" + mount }
}

/// Where the live path hands its listeners' sessions to listening analytics: connected by the
/// host when analytics are on (until then, and with analytics off, sessions are dropped).
final class LiveListening: Sendable {
    private let sink = Mutex<(@Sendable (LiveListenerSession) -> Void)?>(nil)

    func connect(_ record: @escaping @Sendable (LiveListenerSession) -> Void) {
        sink.withLock { $0 = record }
    }

    func ended(_ session: LiveListenerSession) {
        sink.withLock { $0 }?(session)
    }
}

extension ListeningTracker {
    /// A live listener's finished session, taken by the next sweep: listening time is the time
    /// connected (ICY, WebSocket) or from the player's first request to its last (LL-HLS, DASH);
    /// `completed` when the show ended while it listened, else `skipped` under the play
    /// threshold and `abandoned` over it; `bot` for a bot's User-Agent.
    func recordLive(_ live: LiveListenerSession) {
        let listened = max(0, live.endedAt - live.startedAt)
        let clientType = Self.clientType(live.userAgent)
        let outcome: FinishedSession.Outcome
        if clientType == "bot" {
            outcome = .bot
        } else if live.showEnded {
            outcome = .completed
        } else {
            outcome = listened < configuration.playThresholdSeconds ? .skipped : .abandoned
        }
        let session = FinishedSession(
            id: PlaybackSessionLabel.randomID(), track: live.track, subjectTag: nil, startedAt: live.startedAt, endedAt: max(live.endedAt, live.startedAt),
            listenedSeconds: (listened * 1000).rounded() / 1000, fetchedSeconds: (listened * 1000).rounded() / 1000, outcome: outcome,
            isPlay: outcome != .bot && listened >= configuration.playThresholdSeconds, stalls: 0, seeks: 0, beacons: 0,
            rendition: live.rendition ?? live.transport, codec: live.codec,
            clientPrefix: configuration.keepsClientNetworks ? live.address?.networkPrefix : nil, clientType: clientType,
            country: live.address.flatMap { countries?.country($0) }, mediaRequests: live.requests, playlistRequests: 0, bytes: live.bytes)
        liveEnded.withLock { $0.append(session) }
    }
}
