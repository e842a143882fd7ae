import Foundation
import Synchronization

/// Who is listening to a mount over HTTP playlists (LL-HLS, DASH), where no connection stays
/// open to count: a player is a client (address as the proxy chain resolved it, and user agent)
/// that asked for one of the protocol's documents or parts within ``window``.
///
/// A playlist or part request marks its client as an LL-HLS listener, an MPD request as a DASH
/// listener; a segment request (both protocols address the same segments) renews whichever its
/// client already is. A player paused longer than the window stops counting, and its listening
/// session ends (``takeEnded(now:)``): from its first request to its last.
final class LiveAudience: Sendable {
    enum Kind: String, Sendable, CaseIterable {
        case hls
        case dash
    }

    /// A player's requests so far.
    struct Player: Sendable {
        var first: Double
        var last: Double
        var lastInstant: ContinuousClock.Instant
        var requests: Int
        var address: IPAddress?
        var userAgent: String?
    }

    /// How long a player counts after its last request: players poll an LL-HLS playlist every
    /// part, and ask for a segment at least every 3.84 s.
    static let window: Duration = .seconds(12)

    private let seen = Mutex<[Kind: [String: Player]]>([:])

    /// Records a request of a client (`address`, `userAgent`) for a document or part of `kind`
    /// (nil: a segment).
    func touch(_ kind: Kind?, address: IPAddress?, userAgent: String?, now: ContinuousClock.Instant = .now,
               wall: Double = Date().timeIntervalSince1970) {
        let client = (address?.description ?? "-") + "\u{0}" + (userAgent ?? "")
        seen.withLock { seen in
            func renew(_ kind: Kind) {
                if var player = seen[kind]?[client], now - player.lastInstant < Self.window {
                    player.last = wall
                    player.lastInstant = now
                    player.requests += 1
                    seen[kind]![client] = player
                } else {
                    // New, or back after the window (its earlier session is taken by takeEnded).
                    if let gone = seen[kind]?[client] { pendingEnded.withLock { $0.append((kind, gone)) } }
                    seen[kind, default: [:]][client] = Player(first: wall, last: wall, lastInstant: now, requests: 1,
                                                              address: address, userAgent: userAgent)
                }
            }
            if let kind {
                renew(kind)
            } else {
                for kind in Kind.allCases where seen[kind]?[client] != nil { renew(kind) }
            }
        }
    }

    /// Sessions that ended when their client came back after the window (before a sweep took them).
    private let pendingEnded = Mutex<[(Kind, Player)]>([])

    /// Listeners per protocol now.
    func counts(now: ContinuousClock.Instant = .now) -> [Kind: Int] {
        seen.withLock { seen in
            var counts: [Kind: Int] = [:]
            for kind in Kind.allCases {
                counts[kind] = seen[kind]?.values.count { now - $0.lastInstant < Self.window } ?? 0
            }
            return counts
        }
    }

    /// Forgets the players gone for longer than the window and returns their sessions.
    func takeEnded(now: ContinuousClock.Instant = .now) -> [(kind: Kind, player: Player)] {
        var ended = pendingEnded.withLock { pending in
            defer { pending = [] }
            return pending.map { (kind: $0.0, player: $0.1) }
        }
        seen.withLock { seen in
            for kind in Kind.allCases {
                guard let players = seen[kind] else { continue }
                for (client, player) in players where now - player.lastInstant >= Self.window {
                    ended.append((kind, player))
                    seen[kind]![client] = nil
                }
            }
        }
        return ended
    }
}
