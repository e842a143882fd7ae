import Hummingbird
import Prometheus
import Foundation
import HTTPTypes
import NIOCore
import StreamKit
import Synchronization

/// Published objects recently served, held in memory (bounded by bytes) so that hot segments
/// skip the trip to storage: published objects are immutable, so an entry can only go stale
/// when its track is deleted. A local delete drops the track's entries at once
/// (``removeTrack(_:)``); entries also expire after ``timeToLive`` so that a delete made through
/// another host stops being served here within that time.
final class ObjectCache: Sendable {
    struct Entry {
        var info: ObjectInfo
        var contents: ByteBuffer
        var stored: ContinuousClock.Instant
    }
    private struct State {
        var entries: [String: Entry] = [:]
        /// Insertion order, for first-in-first-out eviction.
        var order: [String] = []
        var head = 0
        var bytes = 0
    }
    private let state = Mutex(State())
    let capacityBytes: Int
    let maximumObjectBytes: Int
    let timeToLive: Duration

    init(capacityBytes: Int, maximumObjectBytes: Int = 512 * 1024, timeToLive: Duration = .seconds(60)) {
        self.capacityBytes = capacityBytes
        self.maximumObjectBytes = maximumObjectBytes
        self.timeToLive = timeToLive
    }

    func object(_ key: String) -> CachedObject? {
        guard capacityBytes > 0 else { return nil }
        let now = ContinuousClock.now
        return state.withLock { state in
            guard let entry = state.entries[key] else { return nil }
            guard now - entry.stored < timeToLive else {
                state.entries[key] = nil
                state.bytes -= entry.contents.readableBytes
                return nil
            }
            return CachedObject(info: entry.info, contents: entry.contents)
        }
    }

    func insert(_ key: String, info: ObjectInfo, contents: ByteBuffer) {
        let size = contents.readableBytes
        guard capacityBytes > 0, size <= maximumObjectBytes, size <= capacityBytes else { return }
        state.withLock { state in
            if let old = state.entries[key] { state.bytes -= old.contents.readableBytes }
            else { state.order.append(key) }
            state.entries[key] = Entry(info: info, contents: contents, stored: .now)
            state.bytes += size
            while state.bytes > capacityBytes, state.head < state.order.count {
                let victim = state.order[state.head]
                state.head += 1
                if let entry = state.entries.removeValue(forKey: victim) { state.bytes -= entry.contents.readableBytes }
            }
            // Compact the order list once half of it is evicted keys.
            if state.head > 1024 && state.head * 2 > state.order.count {
                state.order = state.order[state.head...].filter { state.entries[$0] != nil }
                state.head = 0
            }
        }
    }

    /// Drops every entry of a track (its storage keys start with `tracks/{id}/`).
    func removeTrack(_ id: String) {
        let prefix = TrackLayout(track: id).prefix
        state.withLock { state in
            for key in state.entries.keys where key.hasPrefix(prefix) {
                state.bytes -= state.entries.removeValue(forKey: key)!.contents.readableBytes
            }
        }
    }
}

/// An object served from ``ObjectCache``.
struct CachedObject: StoredObject {
    let info: ObjectInfo
    let contents: ByteBuffer?

    init(info: ObjectInfo, contents: ByteBuffer) {
        self.info = info
        self.contents = contents
    }

    func read(_ range: ClosedRange<Int64>, chunkSize: Int, into body: (ByteBuffer) async throws -> Void) async throws {
        guard let contents else { return }
        try await StoredObjects.read(contents, range, chunkSize: chunkSize, into: body)
    }
}
