import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An `http://` URL whose host is a loopback address: where a listener connects and what it asks for.
///
/// Anything else is refused, so the load generator cannot be pointed at a real server by mistake.
/// `localhost` is taken as `127.0.0.1`; the connection never goes through a proxy.
struct LoopbackURL: Sendable, Hashable, CustomStringConvertible {
    /// The IP literal connected to.
    var host: String
    /// The port.
    var port: Int
    /// The path and query, starting with `/`.
    var path: String

    /// Parses `http://HOST[:PORT]/PATH[?QUERY]`; `nil` for anything else or a non-loopback host.
    init?(_ text: String) {
        guard text.hasPrefix("http://") else { return nil }
        let rest = text.dropFirst("http://".count)
        let pathStart = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<pathStart]
        path = rest[pathStart...].hasPrefix("/") ? String(rest[pathStart...]) : "/" + rest[pathStart...]
        port = 80
        if let colon = authority.lastIndex(of: ":"), !authority[colon...].contains("]") {
            guard let number = Int(authority[authority.index(after: colon)...]), (1...65535).contains(number) else { return nil }
            port = number
            authority = authority[..<colon]
        }
        if authority.hasPrefix("[") && authority.hasSuffix("]") { authority = authority.dropFirst().dropLast() }
        switch authority {
        case "localhost": host = "127.0.0.1"
        case "::1": host = "::1"
        default:
            let octets = authority.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
            guard octets.count == 4, octets[0] == 127 else { return nil }
            host = String(authority)
        }
    }

    /// `HOST:PORT`, for the `Host` header.
    var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    var description: String { "http://\(authority)\(path)" }

    /// `reference` (a playlist URI) resolved against this URL as RFC 3986 §5.2 says, for the
    /// forms playlists use: absolute `http://` URLs on the same host and port, absolute paths and
    /// relative paths (with `.` and `..` segments). `nil` when it leaves this host and port.
    func resolving(_ reference: String) -> LoopbackURL? {
        if reference.hasPrefix("http://") {
            guard let url = LoopbackURL(reference), url.host == host, url.port == port else { return nil }
            return url
        }
        guard !reference.contains("://"), !reference.hasPrefix("//") else { return nil }
        var resolved = self
        if reference.hasPrefix("/") {
            resolved.path = reference
        } else {
            let basePath = path.prefix { $0 != "?" }
            let directory = basePath[...(basePath.lastIndex(of: "/") ?? basePath.startIndex)]
            let query = reference.firstIndex(of: "?").map { reference[$0...] } ?? ""
            var segments: [Substring] = []
            for segment in (directory + reference.prefix { $0 != "?" }).split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
                switch segment {
                case ".": continue
                case "..": _ = segments.popLast()
                default: segments.append(segment)
                }
            }
            resolved.path = "/" + segments.joined(separator: "/") + query
        }
        return resolved
    }
}

/// Why a request got no complete response.
enum ConnectionFailure: Error {
    /// Nothing of the response arrived on a connection that had served earlier ones: the server
    /// closed an idle keep-alive connection, which a player reopens without an error.
    case stale
    /// The connection closed before the response ended.
    case lost
    /// Nothing arrived for the timeout while a response part was awaited; the connection was closed.
    case timedOut
}

/// One response, read to the end.
struct HTTPResponse {
    /// The status code.
    var status: Int
    /// The body, when asked for.
    var body: ByteBuffer?
    /// Body bytes received.
    var bytes: Int
    /// From sending the request to the response head.
    var timeToFirstByte: Duration
    /// From sending the request to the end of the body.
    var duration: Duration
    /// When the end of the body arrived.
    var arrived: ContinuousClock.Instant

    var isSuccess: Bool { (200..<300).contains(status) }
}

/// One listener's HTTP/1.1 keep-alive connection: a channel handler after NIO's HTTP/1 client
/// codec, confined to the channel's event loop like the listener that uses it. One request at a
/// time; its body is counted (segments) or kept (playlists) as it arrives and the listener gets
/// the whole response at its end, or streamed to the listener part by part and read from the
/// socket only as fast as the listener asks (``pause()``, ``resume()``: progressive).
///
/// Every time is taken on the event loop as the bytes arrive. Every wait for a part of a
/// response is bounded by the timeout, as players bound theirs: one timer per connection,
/// rescheduled only when it fires (a timer per awaited part, cancelled on arrival, would cost a
/// linear search of the loop's timer heap per cancel, with a timer per listener in it).
final class ListenerConnection: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    /// A streamed response, part by part.
    enum StreamEvent {
        case head(HTTPResponseHead, timeToFirstByte: Duration)
        case chunk(ByteBuffer)
        case end
    }

    private enum Receiver {
        case whole(keepBody: Bool, (HTTPResponse) -> Void)
        case stream((StreamEvent) -> Void)
    }

    private let headers: HTTPHeaders
    private let timeout: TimeAmount
    /// Called when the connection closes while a response is awaited (not after ``close()``).
    private let onFailure: (ConnectionFailure) -> Void
    private var context: ChannelHandlerContext?
    private var receiver: Receiver?
    private var sent = ContinuousClock.now
    private var head: HTTPResponseHead?
    private var firstByte = ContinuousClock.now
    private var body: ByteBuffer?
    private var bytes = 0
    /// Responses read to the end.
    private var served = 0
    /// The last response said `Connection: close`.
    private var closing = false
    /// By when the next part of the response must arrive (`nil`: none is awaited).
    private var deadline: NIODeadline?
    private var timedOut = false
    /// Streaming: the listener does not want more bytes yet; a read NIO asked for is held.
    private var paused = false
    private var readHeld = false
    /// The path of the request in flight (for the timeout diagnostic).
    private var path = ""
    /// Timeouts described on standard error so far, over all connections (the first few only).
    private static let timeoutsDescribed = Atomic<Int>(0)

    /// - Parameter forwardedFor: sent as `X-Forwarded-For` on every request (a listener behind a
    ///   proxy: the client address the server should see).
    init(host: String, forwardedFor: String? = nil, timeout: TimeAmount, onFailure: @escaping (ConnectionFailure) -> Void) {
        var headers: HTTPHeaders = ["Host": host, "User-Agent": "veza-loadgen", "Accept": "*/*"]
        if let forwardedFor { headers.add(name: "X-Forwarded-For", value: forwardedFor) }
        self.headers = headers
        self.timeout = timeout
        self.onFailure = onFailure
    }

    /// Whether a request can be sent: the connection is up and its last response did not close it.
    var isOpen: Bool { context != nil && !closing }

    /// `GET path`; `completion` gets the response once its end has arrived (its body only when `keepBody`).
    func get(_ path: String, keepBody: Bool, _ completion: @escaping (HTTPResponse) -> Void) {
        send(path, .whole(keepBody: keepBody, completion))
    }

    /// `GET path`; `events` gets its head, each chunk of its body and its end.
    func stream(_ path: String, _ events: @escaping (StreamEvent) -> Void) {
        send(path, .stream(events))
    }

    /// `POST path` with a JSON `body` (a player's beacons); `completion` gets the response (with
    /// its body) once its end has arrived.
    func post(_ path: String, json body: ByteBuffer, _ completion: @escaping (HTTPResponse) -> Void) {
        send(path, .whole(keepBody: true, completion), method: .POST, body: body)
    }

    /// Streaming: no more socket reads until ``resume()`` (no timeout runs meanwhile).
    func pause() {
        paused = true
        deadline = nil
    }

    /// Streaming: reads again.
    func resume() {
        guard paused, let context else { return }
        paused = false
        if receiver != nil { deadline = .now() + timeout }
        if readHeld {
            readHeld = false
            context.read()
        }
    }

    /// Closes the connection; nothing more is reported.
    func close() {
        receiver = nil
        context?.close(promise: nil)
    }

    private func send(_ path: String, _ receiver: Receiver, method: HTTPMethod = .GET, body requestBody: ByteBuffer? = nil) {
        guard let context, self.receiver == nil else {
            onFailure(.lost)
            return
        }
        self.receiver = receiver
        self.path = path
        sent = .now
        head = nil
        body = nil
        bytes = 0
        deadline = .now() + timeout
        var requestHeaders = headers
        if let requestBody {
            requestHeaders.add(name: "Content-Type", value: "application/json")
            requestHeaders.add(name: "Content-Length", value: String(requestBody.readableBytes))
        }
        context.write(wrapOutboundOut(.head(HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: requestHeaders))), promise: nil)
        if let requestBody { context.write(wrapOutboundOut(.body(.byteBuffer(requestBody))), promise: nil) }
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        watch(at: .now() + timeout)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let receiver else {
            // A response nobody asked for: the server is broken.
            context.close(promise: nil)
            return
        }
        if deadline != nil { deadline = .now() + timeout }
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            firstByte = .now
            switch receiver {
            case .stream(let events): events(.head(head, timeToFirstByte: firstByte - sent))
            case .whole(let keepBody, _): if keepBody { body = ByteBuffer() }
            }
        case .body(var chunk):
            bytes += chunk.readableBytes
            switch receiver {
            case .stream(let events): events(.chunk(chunk))
            case .whole: body?.writeBuffer(&chunk)
            }
        case .end:
            self.receiver = nil
            deadline = nil
            served += 1
            closing = !(head?.isKeepAlive ?? false)
            if closing { context.close(promise: nil) }
            switch receiver {
            case .stream(let events): events(.end)
            case .whole(_, let completion):
                let now = ContinuousClock.now
                completion(HTTPResponse(status: Int(head?.status.code ?? 0), body: body, bytes: bytes,
                                        timeToFirstByte: firstByte - sent, duration: now - sent, arrived: now))
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readHeld = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        if receiver != nil {
            receiver = nil
            onFailure(timedOut ? .timedOut : head == nil && served > 0 ? .stale : .lost)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Says what the first few timed-out requests were waiting for: a timeout is an error of
    /// the run, and whether it hit a head or a body, paused or not, tells a slow server from
    /// a client that stopped reading.
    private func describeTimeout() {
        guard Self.timeoutsDescribed.add(1, ordering: .relaxed).oldValue < 10 else { return }
        let waited = (ContinuousClock.now - sent).seconds
        let awaited = head == nil ? "the response head" : "body bytes (\(bytes) counted so far)"
        let line = "timeout: GET \(path.prefix { $0 != "?" }) waited \(waited.formatted(.number.precision(.fractionLength(1)))) s for \(awaited); "
            + "response \(served + 1) on its connection, paused \(paused), read held \(readHeld)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    // The timer is always due no later than the deadline in force: it is scheduled for the
    // deadline, or for a full timeout from now when none is in force, and a deadline set
    // later is later still.
    private func watch(at due: NIODeadline) {
        guard let context else { return }
        context.eventLoop.assumeIsolated().scheduleTask(deadline: due) { [self] in
            guard let context = self.context else { return }
            let now = NIODeadline.now()
            if let deadline, deadline <= now {
                timedOut = true
                describeTimeout()
                context.close(promise: nil)
            } else {
                watch(at: deadline ?? now + timeout)
            }
        }
    }
}
