import Foundation
public import Configuration
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

    /// - Parameter capacity: the most keys remembered at once (default 65,536: a few MiB).
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

/// The limits of the host (`limits.*` keys).
public struct LimitsConfiguration: Sendable {
    /// API calls per client address (`limits.api.rate`, `limits.api.burst`). Default 50/s, burst 100.
    public var api = RateLimit(rate: 50, burst: 100)
    /// Uploads per client address and per token subject (`limits.upload.*`). Default 2/s, burst 10.
    public var upload = RateLimit(rate: 2, burst: 10)
    /// Playlist, segment and file requests per client address (`limits.media.*`). Default 500/s,
    /// burst 1000: a listener asks for a segment every few seconds; one address may be a NAT.
    public var media = RateLimit(rate: 500, burst: 1000)
    /// Open connections per client address (`limits.connectionsPerClient`, 0: no cap). Default 256.
    public var connectionsPerClient = 256
    /// Seconds a connection may take to send a complete request head (`limits.headerTimeout`):
    /// slowloris connections that trickle headers are closed after it. Default 10.
    public var headerTimeout: Double = 10
    /// Seconds from the end of a response to the next complete request head on a kept-alive
    /// connection (`limits.keepAliveTimeout`). Default 60.
    public var keepAliveTimeout: Double = 60
    /// Seconds a response may wait for a client that reads nothing (`limits.sendTimeout`): the
    /// connection is closed when its socket stays full that long, as nginx's `send_timeout`.
    /// A player that reads at real-time pace drains its socket within seconds. Default 30.
    public var sendTimeout: Double = 30
    /// Bytes of kernel send buffer per connection (`limits.sendBuffer`, SO_SNDBUF; 0: the
    /// kernel's autotuning). Autotuning grows it to `net.ipv4.tcp_wmem`'s maximum (4 MiB), which
    /// a client that stops reading pins for minutes of paced audio before the send timeout can
    /// even start. 256 KiB carries 20 Mbit/s at 100 ms round trip. Default 262,144.
    public var sendBuffer = 262_144
    /// Keys the limiter remembers at once (`limits.trackedClients`). Default 65,536.
    public var trackedClients = 65_536

    public init() {}

    /// Reads the `limits.*` keys, keeping defaults for those missing.
    public init(reader: ConfigReader) {
        func limit(_ name: String, _ fallback: RateLimit) -> RateLimit {
            RateLimit(rate: max(0, reader.double(forKey: ConfigKey("limits.\(name).rate"), default: fallback.rate)),
                      burst: reader.double(forKey: ConfigKey("limits.\(name).burst"), default: fallback.burst))
        }
        api = limit("api", api)
        upload = limit("upload", upload)
        media = limit("media", media)
        connectionsPerClient = max(0, reader.int(forKey: "limits.connectionsPerClient", default: connectionsPerClient))
        headerTimeout = max(0.5, reader.double(forKey: "limits.headerTimeout", default: headerTimeout))
        keepAliveTimeout = max(1, reader.double(forKey: "limits.keepAliveTimeout", default: keepAliveTimeout))
        sendTimeout = max(1, reader.double(forKey: "limits.sendTimeout", default: sendTimeout))
        sendBuffer = max(0, reader.int(forKey: "limits.sendBuffer", default: sendBuffer))
        trackedClients = max(1024, reader.int(forKey: "limits.trackedClients", default: trackedClients))
    }
}

/// The host's rate limiting: which class a request falls in (uploads, media, the rest of the
/// API; health, readiness, metrics and preflights are never limited), one ``RateLimiter`` for
/// every key (client addresses, and token subjects once a bearer token is verified), and the
/// 429 answer. Shared by ``RateLimitMiddleware``, ``HostAuth`` and the event-loop fast path.
final class RateLimitPolicy: Sendable {
    let limiter: RateLimiter
    let limits: LimitsConfiguration
    let metrics: HostMetrics?

    /// The outcome of one check.
    struct Verdict {
        var name: String
        var limit: RateLimit
        /// Seconds until a token is available; nil when the request may go on.
        var retryAfter: Double?
        var remaining: Int
    }

    init(limits: LimitsConfiguration, metrics: HostMetrics?) {
        self.limits = limits
        self.metrics = metrics
        limiter = RateLimiter(capacity: limits.trackedClients)
    }

    /// The class of a request and its limit; nil for requests never limited.
    func classify(method: HTTPRequest.Method, path: String) -> (name: String, limit: RateLimit)? {
        if path == "/healthz" || path == "/readyz" || path == "/metrics" || method == .options { return nil }
        if method == .post && path == "/v1/tracks" { return ("upload", limits.upload) }
        if path.hasPrefix("/media/") || path.hasPrefix("/hls/") || path.hasPrefix("/dash/") { return ("media", limits.media) }
        return ("api", limits.api)
    }

    /// Takes a token for `key` (a client address, `subject:…`) in the request's class.
    func check(method: HTTPRequest.Method, path: String, key: String) -> Verdict? {
        guard let (name, limit) = classify(method: method, path: path), limit.isEnabled else { return nil }
        let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        let (retryAfter, remaining) = limiter.acquire(name + "|" + key, limit: limit, now: now)
        return Verdict(name: name, limit: limit, retryAfter: retryAfter, remaining: remaining)
    }

    /// 429 with `Retry-After` and `RateLimit-*` fields (draft-ietf-httpapi-ratelimit-headers).
    func refusal(_ verdict: Verdict, who: String) -> APIError {
        metrics?.rateLimited(verdict.name)
        let seconds = max(1, Int((verdict.retryAfter ?? 1).rounded(.up)))
        return APIError(.tooManyRequests, code: "rate_limited", "too many \(verdict.name) requests from this \(who); retry in \(seconds) s",
                        retryAfter: seconds,
                        headers: [Self.limitField: String(Int(verdict.limit.burst)),
                                  Self.remainingField: "0",
                                  HTTPField.Name("RateLimit-Reset")!: String(seconds)])
    }

    /// `RateLimit-Limit` and `RateLimit-Remaining` on an allowed response.
    static func annotate(_ headers: inout HTTPFields, _ verdict: Verdict) {
        headers[limitField] = String(Int(verdict.limit.burst))
        headers[remainingField] = String(verdict.remaining)
    }

    /// Parsed once: a name is validated when it is made, and these go on every limited response.
    static let limitField = HTTPField.Name("RateLimit-Limit")!
    static let remainingField = HTTPField.Name("RateLimit-Remaining")!
}

/// Applies ``RateLimitPolicy`` per client address (behind a trusted proxy, the client it
/// forwarded: see ``ClientAddressMiddleware``) and answers 429 when a bucket is empty.
struct RateLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: RateLimitPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let address = (context as? any ClientAddressRequestContext)?.clientAddress,
              let verdict = policy.check(method: request.method, path: request.uri.path, key: address.description)
        else { return try await next(request, context) }
        if verdict.retryAfter != nil { throw policy.refusal(verdict, who: "client") }
        var response = try await next(request, context)
        RateLimitPolicy.annotate(&response.headers, verdict)
        return response
    }
}

/// Per-connection protections below HTTP: a cap on open connections per client address, a
/// deadline for each request head (slowloris: headers trickled byte by byte keep resetting an
/// idle timeout, not this deadline), the keep-alive deadline for the next head, a stall
/// timeout while a request body (an upload) is read, and a send timeout (a client that stops
/// reading while a response waits on its full socket).
///
/// It works on NIO's HTTP/1 parts, in front of the playback fast path, so it sees the requests
/// and responses of both the fast path and the router (see ``PlaybackHTTP1Channel``).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Open connections per address, shared by every connection's guard.
    final class Counter: Sendable {
        private let counts = Mutex<[String: Int]>([:])

        func open(_ address: String, cap: Int) -> Bool {
            counts.withLock { counts in
                let current = counts[address, default: 0]
                guard cap <= 0 || current < cap else { return false }
                counts[address] = current + 1
                return true
            }
        }

        func close(_ address: String) {
            counts.withLock { counts in
                let left = counts[address, default: 1] - 1
                counts[address] = left > 0 ? left : nil
            }
        }
    }

    let counter: Counter
    let cap: Int
    /// A trusted proxy's connections are not capped per address: its clients are limited by
    /// their own addresses, request by request.
    let clientAddresses: ClientAddressResolver
    let headerTimeout: TimeAmount
    let keepAliveTimeout: TimeAmount
    let sendTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    /// The address counted against the cap (nil for a trusted proxy's connection).
    private var address: String?
    private var started = false
    /// When the connection is closed unless the request body being read moves on (nil: no
    /// body awaited).
    private var bodyDue: NIODeadline?
    /// When the connection is closed unless a request head arrives (nil: none awaited).
    private var headDue: NIODeadline?
    /// When the connection is closed unless its full socket drains (nil: it is writable).
    private var sendDue: NIODeadline?
    /// The one timer of the connection. Deadlines move with every request, and cancelling and
    /// scheduling a task per request costs NIO a linear search of its timer heap, which holds one
    /// entry per connection: with 10,000 listeners that was a fifth of the host's CPU. So the
    /// timer is rescheduled only when it fires, for whatever deadline is then due.
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?
    /// Requests whose response has not ended (pipelining).
    private var inFlight = 0

    /// - Parameters:
    ///   - headerTimeout: from connecting to a complete first request head.
    ///   - keepAliveTimeout: from the end of a response to the next complete request head.
    ///   - sendTimeout: how long the socket may stay full before the connection is closed.
    ///   - bodyTimeout: how long a request body (an upload) may stall between two parts.
    init(counter: Counter, cap: Int, clientAddresses: ClientAddressResolver, headerTimeout: TimeAmount, keepAliveTimeout: TimeAmount,
         sendTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.counter = counter
        self.cap = cap
        self.clientAddresses = clientAddresses
        self.headerTimeout = headerTimeout
        self.keepAliveTimeout = keepAliveTimeout
        self.sendTimeout = sendTimeout
        self.bodyTimeout = bodyTimeout
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendDue = nil
        } else if sendDue == nil {
            sendDue = .now() + sendTimeout
            ensureTimer(context)
        }
        context.fireChannelWritabilityChanged()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let ip = context.channel.remoteAddress?.ipAddress
        if !clientAddresses.trusts(ip.flatMap { IPAddress($0) }) {
            guard counter.open(ip ?? "unknown", cap: cap) else {
                context.close(promise: nil)
                return
            }
            address = ip ?? "unknown"
        }
        headDue = .now() + headerTimeout
        ensureTimer(context)
    }

    /// The earliest deadline in force.
    private var nextDue: NIODeadline? {
        func earlier(_ a: NIODeadline?, _ b: NIODeadline?) -> NIODeadline? {
            guard let a else { return b }
            guard let b else { return a }
            return min(a, b)
        }
        return earlier(earlier(headDue, sendDue), bodyDue)
    }

    /// Schedules the timer unless one already fires no later than the next deadline.
    private func ensureTimer(_ context: ChannelHandlerContext) {
        guard let due = nextDue else { return }
        if let timerAt, timerAt <= due { return }
        timer?.cancel()
        timerAt = due
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: due) {
            let (handler, context) = loopBound.value
            handler.timerFired(context)
        }
    }

    private func timerFired(_ context: ChannelHandlerContext) {
        timer = nil
        timerAt = nil
        guard let due = nextDue else { return }
        if due <= .now() {
            context.close(promise: nil)
        } else {
            ensureTimer(context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            headDue = nil
            inFlight += 1
            // A body follows: it must keep coming (uploads). Requests without one (every
            // playback request) leave the timer alone.
            if request.headers.contains(name: "transfer-encoding") || (request.headers.first(name: "content-length").flatMap { Int($0) } ?? 0) > 0 {
                bodyDue = .now() + bodyTimeout
                ensureTimer(context)
            }
        case .body:
            // Only later: the timer, when it fires, reschedules for it.
            if bodyDue != nil { bodyDue = .now() + bodyTimeout }
        case .end:
            bodyDue = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // The next request head is due within the keep-alive timeout of the response's end
        // (a client still reading the end is covered by the send timeout).
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(0, inFlight - 1)
            if inFlight == 0 {
                headDue = .now() + keepAliveTimeout
                ensureTimer(context)
            }
        }
        context.write(data, promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        timerAt = nil
        headDue = nil
        sendDue = nil
        bodyDue = nil
        if let address { counter.close(address) }
        address = nil
        context.fireChannelInactive()
    }
}
