public import Hummingbird
public import Logging
import Foundation
public import NIOCore
import Synchronization
import HTTPTypes
import NIOHTTPTypes
import CoreFoundation

/// A request context that knows the request's client address: the peer's, or the one a
/// trusted proxy forwarded (set by ``ClientAddressMiddleware``). Rate limits, logs and signed-URL
/// client binding use it.
public protocol ClientAddressRequestContext: RequestContext {
    /// The client's address (nil when the connection has none, e.g. a Unix socket).
    var clientAddress: IPAddress? { get set }
}

/// The request context of the host: Hummingbird's core context plus the peer address and the
/// client address (the peer's unless a trusted proxy says otherwise).
public struct HostRequestContext: RequestContext, RemoteAddressRequestContext, ClientAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public var clientAddress: IPAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        clientAddress = remoteAddress?.ipAddress.flatMap { IPAddress($0) }
    }
}

/// Sets ``ClientAddressRequestContext/clientAddress`` from `Forwarded`, `X-Forwarded-For` or
/// `X-Real-IP` when the peer is a trusted proxy (``ClientAddressResolver``); counts malformed
/// values. First in the chain, so that logs and limits see the client.
struct ClientAddressMiddleware<Context: ClientAddressRequestContext>: RouterMiddleware {
    let resolver: ClientAddressResolver
    let metrics: HostMetrics?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard resolver.trusts(context.clientAddress) else { return try await next(request, context) }
        var context = context
        let resolution = resolver.resolve(
            peer: context.clientAddress, forwarded: request.headers[values: .forwarded],
            xForwardedFor: request.headers[values: .xForwardedFor], xRealIP: request.headers[values: .xRealIP])
        if let header = resolution.malformed { metrics?.malformedForwarding(header) }
        context.clientAddress = resolution.address
        return try await next(request, context)
    }
}

extension HTTPField.Name {
    /// RFC 7239.
    static let forwarded = HTTPField.Name("Forwarded")!
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let xRealIP = HTTPField.Name("X-Real-IP")!
}

/// Gives every request an id (the client's `X-Request-Id` when it is sane, else a fresh one),
/// echoes it in the response, puts it in the request's logger metadata, and logs one line per
/// request: method, route pattern, path without query (signed tokens stay out of logs), status,
/// duration, and the client's network prefix (IPv4 /24, IPv6 /48: never the full address).
///
/// Successful GET/HEAD requests log at `debug` (a listener fetches a segment every few
/// seconds); everything else at `info`.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = request.headers[RequestIDs.header].flatMap(RequestIDs.sanitised) ?? RequestIDs.make()
        context.logger[metadataKey: "request_id"] = .string(id)
        let start = ContinuousClock.now
        do {
            var response = try await next(request, context)
            response.headers[RequestIDs.header] = id
            log(request, context, status: response.status.code, start: start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            log(request, context, status: status, start: start, error: error)
            guard var httpError = error as? APIError else { throw error }
            httpError.headers[RequestIDs.header] = id
            throw httpError
        }
    }

    private func log(_ request: Request, _ context: Context, status: Int, start: ContinuousClock.Instant, error: (any Error)? = nil) {
        RequestIDs.log(logger: context.logger, method: request.method, route: context.endpointPath ?? "unmatched", path: request.uri.path,
                 status: status, start: start, client: (context as? any ClientAddressRequestContext)?.clientAddress, error: error)
    }

}

/// One JSON object per line on standard error: `ts`, `level`, `logger`, `msg`, the metadata
/// (merged, string values), `source`. swift-log ships no JSON handler, hence this small one.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    private static let output = Mutex<Void>(())

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var object: [String: Any] = [
            "ts": Self.timestamp(),
            "level": event.level.rawValue,
            "logger": label,
            "msg": event.message.description,
            "source": event.source,
        ]
        for (key, value) in merged where object[key] == nil { object[key] = Self.plain(value) }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(0x0A)
        Self.output.withLock { _ in
            line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        }
    }

    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(plain)
        case .dictionary(let values): values.mapValues(plain)
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
                      Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), Int(now.tv_nsec / 1_000_000))
    }
}

/// Request ids and the per-request log line, shared by ``RequestIDMiddleware`` and the playback
/// fast path.
enum RequestIDs {
    static let header = HTTPField.Name("X-Request-Id")!

    /// The request's log line (written by ``RequestIDMiddleware`` and by the fast path, which bypasses it).
    static func log(logger: Logger, method: HTTPRequest.Method, route: String, path: String, status: Int,
                    start: ContinuousClock.Instant, client: IPAddress?, error: (any Error)?) {
        let level: Logger.Level = (status < 400 && (method == .get || method == .head)) ? .debug : .info
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "method": .string(method.rawValue),
            "route": .string(route),
            "path": .string(path),
            "status": .stringConvertible(status),
            "duration_ms": .stringConvertible(((ContinuousClock.now - start) / .microseconds(1)).rounded() / 1000),
        ]
        if let client { metadata["client"] = .string(client.networkPrefix) }
        if let error = error as? APIError { metadata["error"] = .string(error.code) }
        logger.log(level: level, "request", metadata: metadata)
    }

    /// A random per-process prefix and a counter: unique, cheap, and sortable within a process.
    static func make() -> String {
        prefix + String(counter.add(1, ordering: .relaxed).newValue, radix: 36)
    }

    /// A client-supplied id, if it is 1–64 characters of `[A-Za-z0-9._-]` (no log injection).
    static func sanitised(_ value: String) -> String? {
        guard (1...64).contains(value.utf8.count),
              value.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 46 || $0 == 95 })
        else { return nil }
        return value
    }

    static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        return String((0..<8).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] }) + "-"
    }()
    static let counter = Atomic<UInt64>(0)
}

/// Answers `Expect: 100-continue` (RFC 9110 §10.1.1) with an interim `100 Continue`, which
/// Hummingbird does not send: without it curl waits a second before every upload over 1 MiB and
/// stricter clients wait for good. Not sent when the declared length already exceeds the upload
/// limit: the route then answers 413 before any body is sent.
final class ContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let maxBodyBytes: Int

    init(maxBodyBytes: Int) { self.maxBodyBytes = maxBodyBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let request) = unwrapInboundIn(data),
           request.headerFields[.expect]?.lowercased() == "100-continue",
           (request.headerFields[.contentLength].flatMap { Int($0) } ?? 0) <= maxBodyBytes {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }
}
