import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Prometheus
import Logging
import NIOCore
import NIOHTTPTypes
import StreamKit
import Synchronization

/// Answers the hot playback requests on the event loop, below the router: segments and init
/// segments in the ``ObjectCache``, and the playlists and MPD of tracks the catalog said were
/// ready within the last two seconds, for requests carrying a signed `?token=` (or in public
/// mode).
///
/// Why: a listener costs the router a trip from the event loop to a Swift task and back per
/// request, and the connection's task keeps the deepest stack of async frames it ever reached
/// (about 18 KiB through the middleware chain) for as long as the connection lives. Answered
/// here, a request costs a dictionary lookup, an HMAC and one write of a buffer shared with the
/// cache; 10,000 kept-alive listeners keep only the connection's baseline memory.
///
/// Everything else, and anything this path is unsure of, goes to the router unchanged: cache
/// misses, bearer tokens (verified asynchronously, with revocation), invalid or missing tokens
/// (the router answers 401/403 with the API's error body), requests over their rate (429),
/// multiple ranges, unsatisfiable ranges, progressive files (paced), redirect mode. The answers
/// are the router's: same validators, ranges, caching fields, CORS, request id, rate-limit
/// fields, metrics (route labels included) and debug log line.
final class PlaybackFastPath: Sendable {
    let delivery: DeliveryRoutes
    let cache: ObjectCache
    let manifests: ManifestCache
    let policy: RateLimitPolicy
    let metrics: HostMetrics
    let logger: Logger
    let serverName: String
    private let date = Mutex<(second: Int64, text: String)>((0, ""))

    init(delivery: DeliveryRoutes, cache: ObjectCache, manifests: ManifestCache, policy: RateLimitPolicy, metrics: HostMetrics,
         logger: Logger, serverName: String) {
        self.delivery = delivery
        self.cache = cache
        self.manifests = manifests
        self.policy = policy
        self.metrics = metrics
        self.logger = logger
        self.serverName = serverName
    }

    /// A complete answer: head and body (nil for HEAD and 304).
    struct Answer {
        var head: HTTPResponse
        var body: ByteBuffer?
    }

    /// The answer to `request`, or nil to hand it to the router.
    func answer(_ request: HTTPRequest, remote: SocketAddress?) -> Answer? {
        guard request.method == .get || request.method == .head, let target = request.path,
              target.hasPrefix("/media/") || target.hasPrefix("/hls/") || target.hasPrefix("/dash/"),
              request.headerFields[.authorization] == nil
        else { return nil }
        let start = ContinuousClock.now
        let uri = URI(target)
        let path = uri.path
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 4, !parts[2].isEmpty else { return nil }
        let id = String(parts[2])

        var token: String?
        if !delivery.auth.isPublic {
            guard let given = uri.queryParameters.get(HostAuth.tokenParameter),
                  let valid = try? delivery.auth.verifySignedPath(path, token: given, now: Date())
            else { return nil }
            token = valid
        }

        var status = HTTPResponse.Status.ok
        var headers: HTTPFields
        var body: ByteBuffer?
        let route: String
        var served: ObjectResponder.Kind?
        switch parts[1] {
        case "media":
            let rest = parts[3...].joined(separator: "/")
            guard !delivery.configuration.redirectMedia, let kind = DeliveryRoutes.publishedObjectKind(rest),
                  kind.metricsKind != "progressive", let object = cache.object("tracks/\(id)/\(rest)"), let contents = object.contents
            else { return nil }
            let plan = ObjectResponder.plan(info: object.info, request: request.headerFields,
                                            contentType: MediaContentType.forKey(rest), cacheControl: DeliveryRoutes.immutable)
            switch plan {
            case .notModified(let fields):
                status = .notModified
                headers = fields
            case .full(let fields):
                headers = fields
                body = contents
                served = kind
            case .single(let fields, let range):
                guard let slice = contents.getSlice(at: contents.readerIndex + Int(range.lowerBound), length: range.count) else { return nil }
                status = .partialContent
                headers = fields
                body = slice
                served = .init(metricsKind: kind.metricsKind, isStreamStart: kind.isStreamStart && range.lowerBound == 0)
            case .multipart, .refused:
                return nil
            }
            route = "/media/{id}/**"
        case "hls", "dash":
            guard parts.count == 4, let (manifest, version) = manifests.readyTrack(id) else { return nil }
            let name = parts[3]
            let document: DeliveryRoutes.Document
            if parts[1] == "dash" {
                guard name == "manifest.mpd" else { return nil }
                document = .mpd
            } else if name == "master.m3u8" {
                document = .master
            } else {
                guard name.hasSuffix(".m3u8") else { return nil }
                document = .media(String(name.dropLast(5)))
            }
            guard let rendered = try? delivery.render(document, id: id, manifest: manifest, version: version, token: token) else {
                return nil
            }
            (headers, body) = delivery.document(rendered.0, type: rendered.1, signed: token != nil, authorization: false)
            route = document.route
        default:
            return nil
        }

        // The rate limit last, so that a request handed to the router is counted once.
        var verdict: RateLimitPolicy.Verdict?
        if let address = remote?.ipAddress {
            verdict = policy.check(method: request.method, path: path, key: address)
            if verdict?.retryAfter != nil { return nil }
        }
        if let verdict { RateLimitPolicy.annotate(&headers, verdict) }
        if request.headerFields[.origin] != nil {
            headers[.accessControlAllowOrigin] = "*"
            headers[.accessControlExposeHeaders] = ExposeHeadersMiddleware<HostRequestContext>.exposed
        }
        let requestID = request.headerFields[RequestIDMiddleware<HostRequestContext>.header]
            .flatMap(RequestIDMiddleware<HostRequestContext>.sanitised) ?? RequestIDMiddleware<HostRequestContext>.makeID()
        headers[RequestIDMiddleware<HostRequestContext>.header] = requestID
        headers[.date] = httpDate()
        headers[.server] = serverName
        if request.method == .head { body = nil }

        if let served, let body {
            metrics.bytesServed(body.readableBytes, kind: served.metricsKind)
            if served.isStreamStart { metrics.streamStart.record(ContinuousClock.now - start) }
        }
        metrics.requestFinished(route: route, method: request.method.rawValue, status: status.code, duration: ContinuousClock.now - start)
        metrics.fastPathAnswered()
        if logger.logLevel <= .debug {
            var logger = logger
            logger[metadataKey: "request_id"] = .string(requestID)
            RequestIDMiddleware<HostRequestContext>.log(logger: logger, method: request.method, route: route, path: path,
                                                        status: status.code, start: start, client: remote, error: nil)
        }
        return Answer(head: HTTPResponse(status: status, headerFields: headers), body: body)
    }

    /// The `Date` field, formatted once per second.
    private func httpDate() -> String {
        let now = Date().timeIntervalSince1970
        let second = Int64(now)
        return date.withLock { cached in
            if cached.second != second {
                cached = (second, HTTPDate.render(Timestamp(millisecondsSince1970: second * 1000)))
            }
            return cached.text
        }
    }
}

/// The channel handler in front of the router: hands each request head to ``PlaybackFastPath``
/// and writes its answer, or passes the request on.
///
/// It sits after Hummingbird's connection-state handler (which so sees every request and
/// response, for its idle timeout and graceful shutdown) and before the async channel that
/// feeds the router. Responses leave in request order: while the router has a request of this
/// connection in hand (pipelining), every later request goes to the router too. A client that
/// does not read (the channel is not writable) is handed to the router as well, whose writer
/// waits for the socket instead of queueing more.
final class PlaybackFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let fastPath: PlaybackFastPath
    /// Succeeds with true when the router is first needed on this connection, with false when
    /// the connection closes before that (see ``PlaybackHTTP1Channel``).
    let routerNeeded: EventLoopPromise<Bool>
    private var routerStarted = false
    /// Requests passed to the router whose response has not ended.
    private var routed = 0
    /// Dropping the rest (body, end) of a request answered here.
    private var skipping = false

    init(fastPath: PlaybackFastPath, routerNeeded: EventLoopPromise<Bool>) {
        self.fastPath = fastPath
        self.routerNeeded = routerNeeded
    }

    private func startRouter() {
        guard !routerStarted else { return }
        routerStarted = true
        routerNeeded.succeed(true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !routerStarted {
            routerStarted = true
            routerNeeded.succeed(false)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if !routerStarted {
            routerStarted = true
            routerNeeded.succeed(false)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parse error is answered (400) by the router's connection loop.
        startRouter()
        context.fireErrorCaught(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            if routed == 0, context.channel.isWritable,
               let answer = fastPath.answer(request, remote: context.channel.remoteAddress) {
                skipping = true
                context.write(wrapOutboundOut(.head(answer.head)), promise: nil)
                if let body = answer.body { context.write(wrapOutboundOut(.body(body)), promise: nil) }
                if request.headerFields[.connection]?.lowercased() == "close" {
                    let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
                    context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
                } else {
                    context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                }
                return
            }
            skipping = false
            routed += 1
            startRouter()
            context.fireChannelRead(data)
        case .body:
            if !skipping { context.fireChannelRead(data) }
        case .end:
            if skipping { skipping = false } else { context.fireChannelRead(data) }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routed > 0 { routed -= 1 }
        context.write(data, promise: promise)
    }
}

/// Hummingbird's HTTP/1.1 channel with ``PlaybackFastPathHandler`` added after its
/// connection-state handler, and the router's connection loop started only when a request of
/// the connection needs it.
///
/// Hummingbird runs one task per connection whose async frames stay allocated for as long as
/// the connection lives (about 11 KiB at rest). A listener whose requests are all answered by
/// the fast path never needs that loop: its task only waits, in a few hundred bytes, for the
/// router to be needed or the connection to close.
struct PlaybackHTTP1Channel: ServerChildChannel {
    struct Value: ServerChildChannelValue {
        let connection: HTTP1Channel.Value
        let routerNeeded: EventLoopFuture<Bool>
        var channel: any Channel { connection.channel }
    }

    let http1: HTTP1Channel
    let fastPath: PlaybackFastPath
    /// SO_SNDBUF of each connection (0: the kernel's autotuning).
    let sendBuffer: Int

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let fastPath = self.fastPath
        let sendBuffer = self.sendBuffer
        return http1.setup(channel: channel, logger: logger).flatMapThrowing { connection in
            if sendBuffer > 0 {
                try channel.syncOptions?.setOption(.socketOption(.so_sndbuf), value: SocketOptionValue(sendBuffer))
            }
            let pipeline = channel.pipeline.syncOperations
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            let routerNeeded = channel.eventLoop.makePromise(of: Bool.self)
            try pipeline.addHandler(PlaybackFastPathHandler(fastPath: fastPath, routerNeeded: routerNeeded), position: .after(state))
            return Value(connection: connection, routerNeeded: routerNeeded.futureResult)
        }
    }

    func handle(value: Value, logger: Logger) async {
        if (try? await value.routerNeeded.get()) == true {
            await http1.handle(value: value.connection, logger: logger)
        } else {
            // Closed without ever needing the router.
            try? await value.connection.executeThenClose { _, _ in }
        }
    }
}
