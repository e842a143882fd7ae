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
            let key = TrackLayout(track: id).object(rest)
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
            // A watermarked track's playlists are the router's: each session is recorded first.
            guard !name.utf8.contains(UInt8(ascii: "/")), let (manifest, version) = readyTrack(id), manifest.watermark == nil else { return nil }
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
        if method == .get, status.code < 300, let analytics = delivery.analytics, let token, let label = PlaybackSessionLabel.of(token: token) {
            let object = target.service == .media ? DeliveredObject(mediaPath: target.rest, range: file?.range) : .playlist
            analytics.observe(label: label, track: id, object: object, bytes: body?.readableBytes ?? file.map { Int($0.range.count) } ?? 0,
                              client: clientAddress, userAgent: { request.headers.first(name: "user-agent") }, at: Date().timeIntervalSince1970)
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
