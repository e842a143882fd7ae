import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Prometheus
import Logging
import NIOCore
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOHTTP1
import StreamKit
import Synchronization

/// Answers the hot playback requests on the event loop, below the router, for requests
/// carrying a signed `?token=` (or in public mode):
/// - segments and init segments in the ``ObjectCache``, from memory (filled by the router, so
///   mostly with S3 storage);
/// - the playlists and MPD of tracks the catalog said were ready within the last ten seconds;
/// - every other published object on local disk (progressive files paced), with `sendfile`
///   (see ``PlaybackFastPathHandler``).
///
/// Why: a listener costs the router a trip from the event loop to a Swift task and back per
/// request (several per second for a paced stream), and the connection's task keeps the deepest
/// stack of async frames it ever reached (about 18 KiB through the middleware chain) for as long
/// as the connection lives. Answered here, a request costs a few dictionary lookups (the token's
/// grant is kept after its first HMAC) and one write of a buffer shared with the cache, or of a
/// file region.
///
/// Everything else, and anything this path is unsure of, goes to the router unchanged: cache
/// misses with S3 storage (the router fills the cache), bearer tokens (verified
/// asynchronously, with revocation), invalid or missing tokens (the router answers 401/403 with
/// the API's error body), requests over their rate (429), multiple and unsatisfiable ranges,
/// redirect mode. The answers are the router's: same validators, ranges, caching fields, CORS,
/// request id, rate-limit fields, pacing, metrics (route labels included) and debug log line.
final class PlaybackFastPath: Sendable {
    let delivery: DeliveryRoutes
    let cache: ObjectCache
    let manifests: ManifestCache
    let policy: RateLimitPolicy
    /// Whose forwarding headers are believed (trusted proxies).
    let clientAddresses: ClientAddressResolver
    let metrics: HostMetrics
    let logger: Logger
    let serverName: String
    /// Local disk storage, whose objects are sent with `sendfile` (nil with S3).
    let localDisk: LocalDiskStorage?
    private let date = Mutex<(second: Int64, text: String)>((0, ""))
    private let slots = Mutex<[ObjectIdentifier: PacingSlots]>([:])

    /// The paced streams' timers of `loop` (made on first use).
    func pacingSlots(for loop: any EventLoop) -> PacingSlots {
        slots.withLock { slots in
            if let known = slots[ObjectIdentifier(loop)] { return known }
            let made = PacingSlots(loop: loop)
            slots[ObjectIdentifier(loop)] = made
            return made
        }
    }

    init(delivery: DeliveryRoutes, cache: ObjectCache, manifests: ManifestCache, policy: RateLimitPolicy,
         clientAddresses: ClientAddressResolver, metrics: HostMetrics, logger: Logger, serverName: String) {
        self.clientAddresses = clientAddresses
        self.delivery = delivery
        self.cache = cache
        self.manifests = manifests
        self.policy = policy
        self.metrics = metrics
        self.logger = logger
        self.serverName = serverName
        localDisk = delivery.storage as? LocalDiskStorage
    }

    /// A complete answer: head and body (nil for HEAD and 304), or a head and a file to stream.
    struct Answer {
        var head: HTTPResponse
        var body: ByteBuffer?
        var file: FileBody?
    }

    /// Bytes of an open file (shared with the other responses sending it, see
    /// ``OpenFileCache``) sent with `sendfile`, paced for progressive files.
    struct FileBody {
        var file: OpenFileCache.File
        var range: Range<Int64>
        var pacing: ObjectResponder.Pacing?
        var kind: ObjectResponder.Kind
    }

    /// The peer of a connection, looked up once per connection.
    struct Client {
        /// The peer's address: the client, unless the peer is a trusted proxy.
        var peer: IPAddress?
        /// `peer` as the rate limits' key.
        var key: String?
        /// Whether the peer is a trusted proxy, whose forwarding headers name each request's client.
        var isTrustedProxy: Bool
        /// The connection's event loop, whose descriptors of open files it uses
        /// (``OpenFileCache``).
        var loop: ObjectIdentifier

        init(_ address: SocketAddress?, loop: any EventLoop, resolver: ClientAddressResolver) {
            peer = address?.ipAddress.flatMap { IPAddress($0) }
            key = peer?.description
            isTrustedProxy = resolver.trusts(peer)
            self.loop = ObjectIdentifier(loop)
        }
    }

    /// The fields of a request head the fast path reads, picked out in one pass over NIO's
    /// header list: the request is not converted to HTTP types (that conversion validates and
    /// lowercases every field name, and was 4 % of the host's CPU at 10,000 listeners).
    struct RequestFields {
        var authorization = false
        var origin = false
        var requestID: String?
        /// `Forwarded`, `X-Forwarded-For` and `X-Real-IP` values, read only for a trusted proxy's requests.
        var forwarded: [String] = []
        var xForwardedFor: [String] = []
        var xRealIP: [String] = []
        /// Range and validators (If-Range, If-None-Match, If-Modified-Since), as HTTP types'
        /// fields for ``ObjectResponder/plan(info:request:contentType:cacheControl:now:)``;
        /// empty for an unconditional request of the whole object.
        var conditional = HTTPFields()

        init(_ headers: HTTPHeaders, forwarding: Bool = false) {
            for (name, value) in headers {
                // Hand-written: NIO's case-insensitive comparison of header names is internal.
                switch name.utf8.count {
                case 9 where forwarding && name.equalsASCIICaseInsensitive("forwarded"):
                    forwarded.append(value)
                case 9 where forwarding && name.equalsASCIICaseInsensitive("x-real-ip"):
                    xRealIP.append(value)
                case 15 where forwarding && name.equalsASCIICaseInsensitive("x-forwarded-for"):
                    xForwardedFor.append(value)
                case 5 where name.equalsASCIICaseInsensitive("range"):
                    conditional.append(HTTPField(name: .range, value: value))
                case 6 where name.equalsASCIICaseInsensitive("origin"):
                    origin = true
                case 8 where name.equalsASCIICaseInsensitive("if-range"):
                    conditional.append(HTTPField(name: .ifRange, value: value))
                case 12 where name.equalsASCIICaseInsensitive("x-request-id"):
                    if requestID == nil { requestID = value }
                case 13 where name.equalsASCIICaseInsensitive("authorization"):
                    authorization = true
                case 13 where name.equalsASCIICaseInsensitive("if-none-match"):
                    conditional.append(HTTPField(name: .ifNoneMatch, value: value))
                case 17 where name.equalsASCIICaseInsensitive("if-modified-since"):
                    conditional.append(HTTPField(name: .ifModifiedSince, value: value))
                default:
                    break
                }
            }
        }
    }

    /// The answer to `request`, or nil to hand it to the router. Only HTTP/1.1 GET and HEAD
    /// without `Authorization` are answered here (HTTP/1.0 and its keep-alive rules go to the
    /// router).
    func answer(_ request: HTTPRequestHead, client: Client) -> Answer? {
        let method: HTTPRequest.Method
        switch request.method {
        case .GET: method = .get
        case .HEAD: method = .head
        default: return nil
        }
        guard request.version == .http1_1, let target = Target(request.uri) else { return nil }
        let fields = RequestFields(request.headers, forwarding: client.isTrustedProxy)
        guard !fields.authorization else { return nil }
        // Behind a trusted proxy, the client it names (limits, logs, client-bound tokens).
        var clientAddress = client.peer
        var clientKey = client.key
        if client.isTrustedProxy {
            let resolution = clientAddresses.resolve(peer: client.peer, forwarded: fields.forwarded,
                                                     xForwardedFor: fields.xForwardedFor, xRealIP: fields.xRealIP)
            if let header = resolution.malformed { metrics.malformedForwarding(header) }
            clientAddress = resolution.address
            clientKey = resolution.address?.description
        }
        let start = ContinuousClock.now
        let path = String(target.path)
        let id = String(target.id)

        var token: String?
        if !delivery.auth.isPublic {
            guard let given = target.token,
                  let valid = try? delivery.auth.verifySignedPath(path, token: String(given), now: Date(), client: clientAddress)
            else { return nil }
            token = valid
        }

        var status = HTTPResponse.Status.ok
        var headers: HTTPFields
        var body: ByteBuffer?
        var file: FileBody?
        let route: String
        var served: ObjectResponder.Kind?
        switch target.service {
        case .media:
            let rest = String(target.rest)
            guard !delivery.configuration.redirectMedia, let kind = DeliveryRoutes.publishedObjectKind(rest) else { return nil }
            let key = "tracks/\(id)/\(rest)"
            guard kind.metricsKind != "progressive", let object = cache.object(key), let contents = object.contents else {
                guard let opened = openFile(key: key, rest: rest, id: id, kind: kind, loop: client.loop) else { return nil }
                file = opened
                route = "/media/{id}/**"
                let contentType = MediaContentType.forKey(rest)
                let plan = fields.conditional.isEmpty
                    ? opened.file.unconditionalPlan(contentType: contentType, cacheControl: DeliveryRoutes.immutable)
                    : ObjectResponder.plan(info: opened.file.info, request: fields.conditional, contentType: contentType,
                                           cacheControl: DeliveryRoutes.immutable)
                switch plan {
                case .notModified(let fields):
                    status = .notModified
                    headers = fields
                    file = nil
                case .full(let fields):
                    headers = fields
                case .single(let fields, let range):
                    status = .partialContent
                    headers = fields
                    file?.range = range.lowerBound..<(range.upperBound + 1)
                    file?.kind.isStreamStart = kind.isStreamStart && range.lowerBound == 0
                case .multipart, .refused:
                    return nil
                }
                break
            }
            let plan = ObjectResponder.plan(info: object.info, request: fields.conditional,
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
        case .hls, .dash:
            let name = target.rest
            guard !name.utf8.contains(UInt8(ascii: "/")), let (manifest, version) = readyTrack(id) else { return nil }
            let document: DeliveryRoutes.Document
            if target.service == .dash {
                guard name == "manifest.mpd" else { return nil }
                document = .mpd
            } else {
                guard let playlist = DeliveryRoutes.Document(hlsPlaylist: String(name)) else { return nil }
                document = playlist
            }
            guard let rendered = try? delivery.render(document, id: id, manifest: manifest, version: version, token: token) else {
                return nil
            }
            (headers, body) = delivery.document(rendered, type: document.contentType, signed: token != nil, authorization: false)
            route = document.route
        }

        // The rate limit last, so that a request handed to the router is counted once.
        var verdict: RateLimitPolicy.Verdict?
        if let clientKey {
            verdict = policy.check(method: method, path: path, key: clientKey)
            if verdict?.retryAfter != nil { return nil }
        }
        if let verdict { RateLimitPolicy.annotate(&headers, verdict) }
        if fields.origin {
            headers[.accessControlAllowOrigin] = "*"
            headers[.accessControlExposeHeaders] = ExposeHeadersMiddleware<HostRequestContext>.exposed
        }
        let requestID = fields.requestID.flatMap(RequestIDs.sanitised) ?? RequestIDs.make()
        headers[RequestIDs.header] = requestID
        headers[.date] = httpDate()
        headers[.server] = serverName
        if method == .head {
            body = nil
            file = nil
        }
        if let streamed = file, streamed.range.isEmpty { file = nil }

        if let served, let body {
            metrics.bytesServed(body.readableBytes, kind: served.metricsKind)
            if served.isStreamStart { metrics.streamStart.record(ContinuousClock.now - start) }
        }
        metrics.requestFinished(route: route, method: method.rawValue, status: status.code, duration: ContinuousClock.now - start)
        metrics.fastPathAnswered()
        if logger.logLevel <= .debug {
            var logger = logger
            logger[metadataKey: "request_id"] = .string(requestID)
            RequestIDs.log(logger: logger, method: method, route: route, path: path,
                                                        status: status.code, start: start, client: clientAddress, error: nil)
        }
        return Answer(head: HTTPResponse(status: status, headerFields: headers), body: body, file: file)
    }

    /// Opens a published object on local disk for streaming with `sendfile`: progressive files
    /// (paced, with the ready track's manifest; nil when the fast path does not know it) and
    /// every object not in the memory cache. Misses are not handed to the router: when a hot
    /// segment's cache entry expired, the listeners asking for it at that moment would each
    /// start the router's per-connection task (and keep its memory). nil hands the request to
    /// the router (S3, a missing object, errors).
    private func openFile(key: String, rest: String, id: String, kind: ObjectResponder.Kind, loop: ObjectIdentifier) -> FileBody? {
        guard let localDisk else { return nil }
        var pacing: ObjectResponder.Pacing?
        let progressive = kind.metricsKind == "progressive"
        if progressive && delivery.configuration.pacingMultiple > 0 {
            guard let (manifest, version) = readyTrack(id) else { return nil }
            pacing = delivery.pacing(manifest: manifest, version: version, path: rest)
        }
        guard let file = localDisk.sharedFile(key, loop: loop) else { return nil }
        return FileBody(file: file, range: 0..<file.info.size, pacing: pacing, kind: kind)
    }

    /// A playback request target, split without building a URI or a query dictionary: the
    /// path `/{service}/{id}/{rest}` and the raw value of the first `token` parameter.
    struct Target {
        enum Service { case media, hls, dash }
        var service: Service
        var path: Substring
        var id: Substring
        /// What follows `/{service}/{id}/`.
        var rest: Substring
        var token: Substring?
        /// `token=` (``HostAuth/tokenParameter``).
        static let tokenPrefix: StaticString = "token="

        /// Nil for anything but a plain playback path in origin form (another prefix, an empty
        /// id, a percent-encoded path or token, a fragment, an absolute-form target): the router
        /// decodes and decides those.
        init?(_ target: String) {
            var target = target
            // One pass over the bytes: offsets of the id, the end of the path and the token.
            typealias Offsets = (service: Service, idStart: Int, idEnd: Int, pathEnd: Int, token: Range<Int>?)
            let scanned = target.withUTF8 { bytes -> Offsets? in
                let service: Service
                let idStart: Int
                if bytes.hasPrefix("/media/") {
                    (service, idStart) = (.media, 7)
                } else if bytes.hasPrefix("/hls/") {
                    (service, idStart) = (.hls, 5)
                } else if bytes.hasPrefix("/dash/") {
                    (service, idStart) = (.dash, 6)
                } else {
                    return nil
                }
                var idEnd: Int?
                var index = idStart
                path: while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "%"), UInt8(ascii: "#"): return nil
                    case UInt8(ascii: "?"): break path
                    case UInt8(ascii: "/") where idEnd == nil: idEnd = index
                    default: break
                    }
                    index += 1
                }
                guard let idEnd, idEnd > idStart else { return nil }
                let pathEnd = index
                var token: Range<Int>?
                // The query: the first `token=` parameter.
                while index < bytes.count {
                    index += 1   // past '?' or '&'
                    let parameterStart = index
                    var parameterEnd = index
                    while parameterEnd < bytes.count, bytes[parameterEnd] != UInt8(ascii: "&") {
                        if bytes[parameterEnd] == UInt8(ascii: "#") { return nil }
                        parameterEnd += 1
                    }
                    if token == nil, UnsafeBufferPointer(rebasing: bytes[parameterStart..<parameterEnd]).hasPrefix(Self.tokenPrefix) {
                        let value = (parameterStart + Self.tokenPrefix.utf8CodeUnitCount)..<parameterEnd
                        // Percent-encoded or '+': the router decodes it.
                        if bytes[value].contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) { return nil }
                        token = value
                    }
                    index = parameterEnd
                }
                return (service, idStart, idEnd, pathEnd, token)
            }
            guard let scanned else { return nil }
            let utf8 = target.utf8
            func at(_ offset: Int) -> String.Index { utf8.index(utf8.startIndex, offsetBy: offset) }
            service = scanned.service
            path = target[..<at(scanned.pathEnd)]
            id = target[at(scanned.idStart)..<at(scanned.idEnd)]
            rest = target[at(scanned.idEnd + 1)..<at(scanned.pathEnd)]
            token = scanned.token.map { target[at($0.lowerBound)..<at($0.upperBound)] }
        }
    }

    /// A track the catalog said was ready; starts the entry's refresh when it is due.
    private func readyTrack(_ id: String) -> (TrackManifest, Int)? {
        guard let ready = manifests.readyTrack(id) else { return nil }
        if ready.refresh {
            let delivery = self.delivery
            Task { await delivery.refreshReady(id) }
        }
        return (ready.manifest, ready.version)
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
/// It works on NIO's HTTP/1 parts, right after ``ConnectionGuard`` (which so sees every request
/// and response, for its deadlines) and before the conversion to HTTP types
/// (``OriginFormHTTPServerCodec``), Hummingbird's connection-state handler and the async
/// channel that feed the router: a request answered here is never converted. Responses leave in
/// request order: while the router has a request of this connection in hand (pipelining), every
/// later request goes to the router too, and while a file is being streamed, later requests wait
/// here. A client that does not read (the channel is not writable) is handed to the router, whose
/// writer waits for the socket instead of queueing more. A graceful shutdown
/// (`ChannelShouldQuiesceEvent`) lets the file being streamed finish, then closes the
/// connection, as the connection-state handler does for the router's responses.
///
/// Files are sent as file regions (`sendfile`, so no byte passes through user space), a region
/// whenever the socket takes more and, for paced files, the budget (burst + rate × elapsed)
/// allows it: a slot of the event loop's ``PacingSlots``, no task and no timer per stream.
final class PlaybackFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let fastPath: PlaybackFastPath
    /// Succeeds with true when the router is first needed on this connection, with false when
    /// the connection closes before that (see ``PlaybackHTTP1Channel``).
    let routerNeeded: EventLoopPromise<Bool>
    private var routerStarted = false
    /// Requests passed to the router whose response has not ended.
    private var routed = 0
    /// Dropping the rest (body, end) of a request answered here.
    private var skipping = false
    /// A graceful shutdown asked for while a file was being streamed: the connection closes
    /// when it is sent.
    private var quiesceHeld = false

    /// A file being sent.
    private final class Stream {
        let file: OpenFileCache.File
        var offset: Int64
        let end: Int64
        let pacing: ObjectResponder.Pacing?
        let kind: ObjectResponder.Kind
        let closeAfter: Bool
        let started = NIODeadline.now()
        let requestStart: ContinuousClock.Instant
        var sent: Int64 = 0
        var waited: Int64 = 0
        /// Waiting for its pacing slot (``PacingSlots``), which resumes it.
        var sleeping = false

        init(_ body: PlaybackFastPath.FileBody, closeAfter: Bool, requestStart: ContinuousClock.Instant) {
            file = body.file
            offset = body.range.lowerBound
            end = body.range.upperBound
            pacing = body.pacing
            kind = body.kind
            self.closeAfter = closeAfter
            self.requestStart = requestStart
        }
    }
    private var stream: Stream?
    private var pumping = false
    /// Request parts that arrived while a file was being sent, handled once it is done.
    private var waiting: [NIOAny] = []
    /// Largest region written at once.
    static let regionBytes: Int64 = 1 << 20
    /// Paced streams resume on a 20 ms grid, so that the streams due within the same 20 ms wake
    /// the event loop once (a thousand streams resuming once a second would otherwise wake
    /// it up to 1,000 times a second). The budget is computed from the time elapsed, so the
    /// rate is kept; a piece goes out at most 20 ms later.
    static let pacingGrid: Int64 = 20_000_000

    static func coalesced(_ deadline: NIODeadline) -> NIODeadline {
        let nanoseconds = Int64(deadline.uptimeNanoseconds)
        let rounded = (nanoseconds + pacingGrid - 1) / pacingGrid * pacingGrid
        return .uptimeNanoseconds(UInt64(rounded))
    }

    init(fastPath: PlaybackFastPath, routerNeeded: EventLoopPromise<Bool>) {
        self.fastPath = fastPath
        self.routerNeeded = routerNeeded
    }

    private var knownClient: PlaybackFastPath.Client?
    private var knownSlots: PacingSlots?

    private func pacingSlots(_ context: ChannelHandlerContext) -> PacingSlots {
        if let knownSlots { return knownSlots }
        let slots = fastPath.pacingSlots(for: context.eventLoop)
        knownSlots = slots
        return slots
    }

    private func client(_ context: ChannelHandlerContext) -> PlaybackFastPath.Client {
        if let knownClient { return knownClient }
        let client = PlaybackFastPath.Client(context.channel.remoteAddress, loop: context.eventLoop, resolver: fastPath.clientAddresses)
        knownClient = client
        return client
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The async channel behind only needs it for reads it was given (it delivers them to
        // the router in batches at read-complete).
        if routerStarted { context.fireChannelReadComplete() }
    }

    private func startRouter(_ context: ChannelHandlerContext) {
        guard !routerStarted else { return }
        routerStarted = true
        routerNeeded.succeed(true)
        // The changes held back before: the writer starts out taking the channel as writable.
        if !context.channel.isWritable { context.fireChannelWritabilityChanged() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandonStream()
        if !routerStarted {
            routerStarted = true
            routerNeeded.succeed(false)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandonStream()
        if !routerStarted {
            routerStarted = true
            routerNeeded.succeed(false)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parse error is answered (400) by the router's connection loop.
        startRouter(context)
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The connection-state handler behind closes the connection at once when the router has
        // no response in hand: a stream is let finish first.
        if event is ChannelShouldQuiesceEvent, stream != nil {
            quiesceHeld = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, stream != nil { pump(context) }
        // The router's writer hears of writability only once it exists (each change otherwise
        // costs a trip through the async channel's writer for every paced stream).
        if routerStarted { context.fireChannelWritabilityChanged() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard stream == nil else {
            waiting.append(data)
            // A client may send its next request early; one that floods is not a player.
            if waiting.count > 64 { context.close(promise: nil) }
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let request):
            let start = ContinuousClock.now
            if routed == 0, context.channel.isWritable,
               let answer = fastPath.answer(request, client: client(context)) {
                skipping = true
                let closeAfter = !request.isKeepAlive
                context.write(wrapOutboundOut(.head(HTTPResponseHead(answer.head))), promise: nil)
                if let file = answer.file {
                    stream = Stream(file, closeAfter: closeAfter, requestStart: start)
                    fastPath.metrics.activeStreams.increment()
                    if file.pacing != nil { fastPath.metrics.pacedResponseStarted() }
                    pump(context)
                    return
                }
                if let body = answer.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
                end(context, closeAfter: closeAfter)
                return
            }
            skipping = false
            routed += 1
            startRouter(context)
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

    private func end(_ context: ChannelHandlerContext, closeAfter: Bool, then done: (@Sendable () -> Void)? = nil) {
        guard closeAfter || done != nil else {
            // No completion to wait for: no promise to allocate.
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            done?()
            if closeAfter { loopBound.value.close(promise: nil) }
        }
    }

    /// Sends what the socket and the pacing budget allow now, then waits for writability or
    /// for the budget (a ``PacingSlots`` deadline); ends the response when the range is sent.
    private func pump(_ context: ChannelHandlerContext) {
        // A flush may change writability inline and call back in here: the running loop goes on.
        // While a paced stream waits for its budget, its slot resumes it: a writability change
        // meanwhile has nothing to send. (No cancel: NIO cancels a scheduled task by a linear
        // search of the loop's timer heap, which holds a timer per connection.)
        guard !pumping, let stream, !stream.sleeping else { return }
        pumping = true
        defer { pumping = false }
        while stream.offset < stream.end {
            // Abandoned (the connection closed) during the last write.
            guard self.stream === stream, context.channel.isActive else { return }
            guard context.channel.isWritable else { return }   // channelWritabilityChanged resumes
            var allowed = min(stream.end - stream.offset, Self.regionBytes)
            if let pacing = stream.pacing {
                let elapsed = Double((NIODeadline.now() - stream.started).nanoseconds) / 1e9
                let budget = Int64(Double(pacing.burstBytes) + pacing.bytesPerSecond * elapsed) - stream.sent
                // Regions of at least a second at the paced rate (or what is left): a wake-up per
                // second per stream. (The router's pieces are a quarter second, as they are read
                // into memory; a file region costs no memory.) The budget caps what is sent, so
                // the piece size changes only how often a stream wakes.
                let piece = min(stream.end - stream.offset, max(4096, Int64(pacing.bytesPerSecond)))
                if budget < piece {
                    let wait = Double(piece - budget) / pacing.bytesPerSecond
                    let due = Self.coalesced(NIODeadline.now() + .nanoseconds(Int64(wait * 1e9) + 1_000_000))
                    stream.waited += (due - NIODeadline.now()).nanoseconds
                    stream.sleeping = true
                    pacingSlots(context).schedule(at: due) { [self] in
                        stream.sleeping = false
                        // An abandoned stream's slot is left to fire (see abandonStream).
                        if self.stream === stream { pump(context) }
                    }
                    return
                }
                allowed = min(allowed, budget)
            }
            let region = FileRegion(fileHandle: stream.file.handle, readerIndex: Int(stream.offset), endIndex: Int(stream.offset + allowed))
            let first = stream.sent == 0
            if first, stream.kind.isStreamStart {
                fastPath.metrics.streamStart.record(ContinuousClock.now - stream.requestStart)
            }
            stream.offset += allowed
            stream.sent += allowed
            // The head (written, not yet flushed) and the first region leave in the same TCP
            // segments: corked, the head's `write` only queues its bytes and `sendfile` fills the
            // rest of the segment; uncorking sends the tail. Without it the head is a segment of
            // its own, a transmit and a wakeup of the client for 300 bytes (nginx does the same
            // with `tcp_nopush`).
            let corked = first && setCork(context, true)
            context.writeAndFlush(wrapOutboundOut(.body(.fileRegion(region))), promise: nil)
            if corked { _ = setCork(context, false) }
        }
        // Sent: end the response, let go of the file once the last region is out (it closes
        // when no response and no cache entry has it), then take up any request that arrived
        // meanwhile.
        guard self.stream === stream else { return }
        self.stream = nil
        finishMetrics(stream)
        let file = stream.file
        // A graceful shutdown held back closes the connection once the end is written.
        end(context, closeAfter: stream.closeAfter || quiesceHeld) { withExtendedLifetime(file) {} }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.drainWaiting(context)
        }
    }

    /// `TCP_CORK` (Linux): while set, only full segments are sent; clearing it sends the rest.
    private static let cork = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: CInt(TCP_CORK)))

    /// Sets or clears `TCP_CORK` on the connection; false if the socket refused (closed).
    private func setCork(_ context: ChannelHandlerContext, _ on: Bool) -> Bool {
        guard let options = context.channel.syncOptions else { return false }
        return (try? options.setOption(Self.cork, value: on ? 1 : 0)) != nil
    }

    private func drainWaiting(_ context: ChannelHandlerContext) {
        guard !waiting.isEmpty else { return }
        while stream == nil, !waiting.isEmpty, context.channel.isActive {
            let next = waiting.removeFirst()
            channelRead(context: context, data: next)
        }
        // Outside a socket read: the async channel hands what it got to the router only on a
        // read-complete event.
        context.fireChannelReadComplete()
    }

    private func finishMetrics(_ stream: Stream) {
        fastPath.metrics.activeStreams.decrement()
        fastPath.metrics.bytesServed(Int(stream.sent), kind: stream.kind.metricsKind)
        if stream.pacing != nil { fastPath.metrics.pacingWaited(.nanoseconds(stream.waited)) }
    }

    /// The connection went away mid-file.
    private func abandonStream() {
        guard let stream else { return }
        self.stream = nil
        // Its pacing slot, if any, fires within a second and finds the stream gone.
        // The writes of its regions have failed by now (the channel is inactive or the handler
        // gone): the file may close.
        finishMetrics(stream)
        waiting.removeAll()
    }
}

/// Hummingbird's HTTP/1.1 channel with ``ConnectionGuard`` and ``PlaybackFastPathHandler``
/// added in front of its HTTP types codec, which is replaced by ``OriginFormHTTPServerCodec``,
/// and the router's connection loop started only when a request of the connection needs it:
///
///     HTTP/1 decoder and encoder → ConnectionGuard → PlaybackFastPathHandler
///         → OriginFormHTTPServerCodec → ContinueHandler → HTTPConnectionStateHandler → router
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
    /// The connection's guard (deadlines, connections per address).
    let makeGuard: @Sendable () -> ConnectionGuard
    /// SO_SNDBUF of each connection (0: the kernel's autotuning).
    let sendBuffer: Int

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let fastPath = self.fastPath
        let makeGuard = self.makeGuard
        let sendBuffer = self.sendBuffer
        return http1.setup(channel: channel, logger: logger).flatMapThrowing { connection in
            if sendBuffer > 0 {
                try channel.syncOptions?.setOption(.socketOption(.so_sndbuf), value: SocketOptionValue(sendBuffer))
            }
            let pipeline = channel.pipeline.syncOperations
            // The same conversion to HTTP types, without a URL parse per request (see ``OriginFormHTTPServerCodec``).
            let libraryCodec = try pipeline.context(handlerType: HTTP1ToHTTPServerCodec.self)
            let codec = OriginFormHTTPServerCodec()
            try pipeline.addHandler(codec, position: .after(libraryCodec.handler))
            pipeline.removeHandler(context: libraryCodec, promise: nil)
            // In front of the codec: a request answered by the fast path is never converted.
            let routerNeeded = channel.eventLoop.makePromise(of: Bool.self)
            let fastPathHandler = PlaybackFastPathHandler(fastPath: fastPath, routerNeeded: routerNeeded)
            try pipeline.addHandler(fastPathHandler, position: .before(codec))
            try pipeline.addHandler(makeGuard(), position: .before(fastPathHandler))
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


extension OpenFileCache.File {
    /// ``ObjectResponder/plan(info:request:contentType:cacheControl:now:)`` for a request without
    /// range or validators: a 200 whose fields (validators, dates, length) are the file's own, so
    /// they are computed on first use and kept with the open file.
    func unconditionalPlan(contentType: String, cacheControl: String) -> ObjectResponder.Plan {
        if let kept = fullResponse.withLock({ $0 }), kept.contentType == contentType, kept.cacheControl == cacheControl {
            return .full(kept.fields)
        }
        let plan = ObjectResponder.plan(info: info, request: [:], contentType: contentType, cacheControl: cacheControl)
        if case .full(let fields) = plan { fullResponse.withLock { $0 = (contentType, cacheControl, fields) } }
        return plan
    }
}

extension String {
    /// Whether this header name is `lowercase` (a lowercase ASCII name) up to ASCII case,
    /// without allocating a lowercased copy.
    func equalsASCIICaseInsensitive(_ lowercase: StaticString) -> Bool {
        guard utf8.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        var index = 0
        // `| 0x20` folds ASCII capitals onto lowercase and leaves '-' alone; the only other byte
        // it maps onto a letter or '-' is CR onto '-', and the parser refuses CR in a name.
        for byte in utf8 {
            guard byte | 0x20 == expected[index] else { return false }
            index += 1
        }
        return true
    }
}

/// The timers of the paced streams of one event loop, grouped by deadline: one NIO timer per
/// deadline in use, however many streams wait for it. Paced streams resume on a 20 ms grid
/// (``PlaybackFastPathHandler/coalesced(_:)``), so at most 50 timers a second per loop remain,
/// against one per stream and second before: with 1,000 progressive listeners, inserting into
/// and popping from NIO's timer heap (which also holds a timer per connection, 10,000 with as
/// many listeners) took about 3.5 % of the host's CPU (perf, 2026-12-02).
///
/// Hand-written: NIO has no grouped timers. Its state lives in NIO's loop-bound box, which
/// checks that every access is on the loop, so it needs no lock; nothing is cancelled (a
/// resumed stream that is gone does nothing).
final class PacingSlots: Sendable {
    let loop: any EventLoop
    /// What resumes at each deadline (in `uptimeNanoseconds`).
    private let waiting: NIOLoopBoundBox<[UInt64: [() -> Void]]>

    init(loop: any EventLoop) {
        self.loop = loop
        waiting = .makeBoxSendingValue([:], eventLoop: loop)
    }

    /// Calls `resume` on the loop at `deadline` (or at once if it has passed).
    func schedule(at deadline: NIODeadline, _ resume: @escaping () -> Void) {
        let key = deadline.uptimeNanoseconds
        let isNew = waiting.withValue { waiting in
            if waiting[key]?.append(resume) != nil { return false }
            waiting[key] = [resume]
            return true
        }
        guard isNew else { return }
        loop.assumeIsolated().scheduleTask(deadline: deadline) { self.fire(key) }
    }

    /// Deadlines with streams waiting (for tests).
    var pending: Int { waiting.value.count }

    private func fire(_ key: UInt64) {
        guard let due = waiting.withValue({ $0.removeValue(forKey: key) }) else { return }
        for resume in due { resume() }
    }
}
