import Hummingbird
import Foundation
import HTTPTypes
import NIOCore
import StreamKit
import Synchronization

/// Decoded `manifest.json`s of recently played tracks, keyed by track and version (published
/// versions never change, so an entry never goes stale; the catalog lookup on each request
/// still notices deletion and replacement).
final class ManifestCache: Sendable {
    private let entries = Mutex<[String: TrackManifest]>([:])
    static let capacity = 512

    /// A track the catalog said was ready, and when it said so.
    struct ReadyTrack {
        var version: Int
        var manifest: TrackManifest
        var seen: ContinuousClock.Instant
        /// A refresh from the catalog is under way (see ``readyTrack(_:now:)``).
        var refreshing = false
        /// When a refresh is next asked for: half-way through the entry's life, then a second
        /// after a failed one (a catalog that fails fast is not asked once per request).
        var refreshAfter: ContinuousClock.Instant

        init(version: Int, manifest: TrackManifest, seen: ContinuousClock.Instant) {
            self.version = version
            self.manifest = manifest
            self.seen = seen
            refreshAfter = seen + ManifestCache.readyTimeToLive / 2
        }
    }
    /// Between two refreshes of an entry when the catalog fails.
    static let refreshRetry: Duration = .seconds(1)
    private let ready = Mutex<[String: ReadyTrack]>([:])
    /// How long the fast path trusts the catalog's last word that a track is ready: a delete
    /// through this host is seen at once, through another host within this time, which is the
    /// default `delivery.playlistMaxAge` that clients cache playlists for anyway.
    static let readyTimeToLive: Duration = .seconds(10)

    /// Records that the catalog has just said `id` is ready at `version`.
    func rememberReady(id: String, version: Int, manifest: TrackManifest, now: ContinuousClock.Instant = .now) {
        ready.withLock { ready in
            if ready.count >= Self.capacity { ready.removeAll(keepingCapacity: true) }
            ready[id] = ReadyTrack(version: version, manifest: manifest, seen: now)
        }
    }

    /// A track the fast path may serve: its manifest and version, and whether the caller
    /// should refresh the entry from the catalog (``DeliveryRoutes/refreshReady(_:)``).
    struct Ready {
        var manifest: TrackManifest
        var version: Int
        var refresh: Bool
    }

    /// The manifest and version of `id` if the catalog said it was ready within
    /// ``readyTimeToLive``. Past half of that, one caller (until the refresh ends) is asked to
    /// refresh the entry in the background: a popular track's entry is renewed before it
    /// expires, instead of sending every request that arrives at its expiry to the router (its
    /// per-connection task and a catalog query each) until one of them has renewed it.
    func readyTrack(_ id: String, now: ContinuousClock.Instant = .now) -> Ready? {
        ready.withLock { ready in
            guard var entry = ready[id], now - entry.seen < Self.readyTimeToLive else { return nil }
            var refresh = false
            if !entry.refreshing, now >= entry.refreshAfter {
                entry.refreshing = true
                ready[id] = entry
                refresh = true
            }
            return Ready(manifest: entry.manifest, version: entry.version, refresh: refresh)
        }
    }

    /// The manifest and version of a track seen ready lately, without starting a refresh (for
    /// readers other than the delivery paths, which keep the entry fresh).
    func peekReady(_ id: String) -> (manifest: TrackManifest, version: Int)? {
        ready.withLock { ready in ready[id].map { ($0.manifest, $0.version) } }
    }

    /// A refresh of `id` ended without renewing it (the catalog failed): a caller may try
    /// again a second later, while the entry lasts.
    func refreshFailed(_ id: String, now: ContinuousClock.Instant = .now) {
        ready.withLock { ready in
            ready[id]?.refreshing = false
            ready[id]?.refreshAfter = now + Self.refreshRetry
        }
    }

    /// The catalog no longer says `id` is ready: the fast path stops serving it.
    func notReady(_ id: String) {
        _ = ready.withLock { $0.removeValue(forKey: id) }
    }

    private let templates = Mutex<(entries: [String: [String]], bytes: Int)>(([:], 0))
    /// Bytes of rendered templates kept at most (all are dropped when full: they are cheap to
    /// render again).
    static let templateBytes = 16 << 20

    /// A rendered document of a published version, split around its token placeholder (empty:
    /// no such document).
    func template(_ key: String) -> [String]? {
        templates.withLock { $0.entries[key] }
    }

    private static func templateSize(_ key: String, _ pieces: [String]) -> Int {
        pieces.reduce(key.utf8.count) { $0 + $1.utf8.count }
    }

    func storeTemplate(_ key: String, _ pieces: [String]) {
        let size = Self.templateSize(key, pieces)
        templates.withLock { templates in
            if templates.bytes + size > Self.templateBytes { templates = ([:], 0) }
            templates.entries[key] = pieces
            templates.bytes += size
        }
    }

    /// Forgets that `id` was ready (it is being deleted).
    func forget(_ id: String) {
        _ = ready.withLock { $0.removeValue(forKey: id) }
        templates.withLock { templates in
            for key in templates.entries.keys where key.hasPrefix(id + "/") {
                templates.bytes -= Self.templateSize(key, templates.entries.removeValue(forKey: key)!)
            }
        }
    }

    func manifest(id: String, version: Int, json: String) throws -> TrackManifest {
        let key = "\(id)/v\(version)"
        if let cached = entries.withLock({ $0[key] }) { return cached }
        let manifest: TrackManifest
        do {
            manifest = try JSONDecoder().decode(TrackManifest.self, from: Data(json.utf8))
        } catch {
            throw APIError(.internalServerError, code: "internal_error", "the published manifest of \(id) does not decode: \(error)")
        }
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = manifest
        }
        return manifest
    }

    /// The manifest of a ready track, or nil (not ready, or a manifest that does not decode).
    func published(_ record: TrackRecord) -> TrackManifest? {
        guard record.status == .ready, let json = record.manifestJSON,
              let manifest = try? manifest(id: record.id, version: record.version, json: json) else { return nil }
        rememberReady(id: record.id, version: record.version, manifest: manifest)
        return manifest
    }
}
