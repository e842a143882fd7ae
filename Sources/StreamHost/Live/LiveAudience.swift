import Foundation
import Synchronization

/// Who is listening to a mount over HTTP playlists (LL-HLS, DASH), where no connection stays
/// open to count: a player is a client (address as the proxy chain resolved it, and user agent)
/// that asked for one of the protocol's documents or parts within ``window``.
///
/// A playlist or part request marks its client as an LL-HLS listener, an MPD request as a DASH
/// listener; a segment request (both protocols address the same segments) renews whichever its
/// client already is. A player paused longer than the window stops counting.
final class LiveAudience: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case hls
        case dash
    }

    /// How long a player counts after its last request: players poll an LL-HLS playlist every
    /// part, and ask for a segment at least every 3.84 s.
    static let window: Duration = .seconds(12)

    private let seen = Mutex<[Kind: [String: ContinuousClock.Instant]]>([:])

    /// Records a request of `client` for a document or part of `kind` (nil: a segment).
    func touch(_ kind: Kind?, client: String, now: ContinuousClock.Instant = .now) {
        seen.withLock { seen in
            if let kind {
                seen[kind, default: [:]][client] = now
            } else {
                for kind in Kind.allCases where seen[kind]?[client] != nil { seen[kind]?[client] = now }
            }
        }
    }

    /// Listeners per protocol now (and forgets those gone for longer than the window).
    func counts(now: ContinuousClock.Instant = .now) -> [Kind: Int] {
        seen.withLock { seen in
            var counts: [Kind: Int] = [:]
            for kind in Kind.allCases {
                seen[kind] = seen[kind]?.filter { now - $0.value < Self.window }
                counts[kind] = seen[kind]?.count ?? 0
            }
            return counts
        }
    }
}
