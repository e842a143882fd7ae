import Foundation
import Configuration
import NIOHTTP1
import Hummingbird
import HTTPTypes
import NIOCore
import Synchronization

/// How fast one client may go in one class of requests: `rate` requests per second on average,
/// bursts of up to `burst`. A rate of 0 turns the limit off.
public struct RateLimit: Sendable, Hashable {
    public var rate: Double
    public var burst: Double

    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    public var isEnabled: Bool { rate > 0 }
}

/// Per-client token buckets with bounded memory.
///
/// Keys (a client address, a token subject) are spread over shards, each a dictionary capped at
/// `capacity / shards` entries; a full shard forgets its oldest key first. Forgetting a key
/// only refills that client's bucket, so under a flood of distinct addresses memory stays fixed
/// and the worst case is leniency toward the forgotten, never a refusal of an innocent client.
public final class RateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var updated: Double
    }

    struct Shard {
        var buckets: [String: Bucket] = [:]
        var order: [String] = []
        var head = 0
    }

    final class ShardBox: Sendable {
        let state = Mutex(Shard())
    }

    private let shards: [ShardBox]
    let capacityPerShard: Int

    /// - Parameters:
    ///   - capacity: the most keys remembered at once (default 65,536: a few MiB).
    ///   - shards: independently locked parts of the table (default 16), so that requests on
    ///     several event loops rarely wait for one lock.
    public init(capacity: Int = 65_536, shards: Int = 16) {
        self.shards = (0..<max(1, shards)).map { _ in ShardBox() }
        capacityPerShard = max(16, capacity / max(1, shards))
    }

    /// Takes one token from `key`'s bucket at time `now` (seconds, any monotonic origin).
    /// Returns nil when allowed, else the seconds until a token is available.
    public func acquire(_ key: String, limit: RateLimit, now: Double) -> (retryAfter: Double?, remaining: Int) {
        guard limit.isEnabled else { return (nil, Int(limit.burst)) }
        var hasher = Hasher()
        hasher.combine(key)
        let shard = shards[Int(UInt(bitPattern: hasher.finalize()) % UInt(shards.count))]
        let capacity = capacityPerShard
        return shard.state.withLock { shard in
            var bucket = shard.buckets[key] ?? {
                // A new key: remember it, forgetting the oldest when the shard is full.
                if shard.buckets.count >= capacity {
                    while shard.head < shard.order.count {
                        let oldest = shard.order[shard.head]
                        shard.head += 1
                        if shard.buckets.removeValue(forKey: oldest) != nil { break }
                    }
                }
                shard.order.append(key)
                if shard.head > capacity {
                    shard.order.removeFirst(shard.head)
                    shard.head = 0
                }
                return Bucket(tokens: limit.burst, updated: now)
            }()
            bucket.tokens = min(limit.burst, bucket.tokens + (now - bucket.updated) * limit.rate)
            bucket.updated = now
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                shard.buckets[key] = bucket
                return (nil, Int(bucket.tokens))
            }
            shard.buckets[key] = bucket
            return ((1 - bucket.tokens) / limit.rate, 0)
        }
    }

    /// Keys remembered now (for tests and metrics).
    public var count: Int { shards.reduce(0) { $0 + $1.state.withLock { $0.buckets.count } } }
}
