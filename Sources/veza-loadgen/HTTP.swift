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

/// The connection of one listener was lost or must be replaced.
struct ConnectionLost: Error {
    /// Nothing of the current response arrived and the connection had served earlier ones: the
    /// server closed an idle keep-alive connection, which a player reopens without an error.
    var stale: Bool
}

/// Nothing arrived for ``HTTPConnection/timeout`` while a response was awaited; the connection was closed.
struct RequestTimedOut: Error {}

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
}

/// A channel carrying HTTP/1.1 client messages.
typealias HTTPClientChannel = NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

/// One HTTP/1.1 keep-alive connection, used for one request at a time, by one task, inside
/// `NIOAsyncChannel.executeThenClose`. Body chunks are read only when asked for, so a slow reader
/// holds the server back (NIOAsyncChannel stops reading the socket when its buffer is full).
/// Every wait for a part of a response is bounded by ``timeout``, as players bound theirs.
struct HTTPConnection {
    private var responses: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private let requests: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    private let channel: any Channel
    private let hostHeader: String
    /// How long to wait for the next part of a response before closing the connection.
    let timeout: Duration
    /// Responses read to the end on this connection.
    private(set) var served = 0
    /// Whether the last response said `Connection: close`.
    private var closing = false

    /// Opens a TCP connection to `url`'s host with the HTTP/1.1 client handlers.
    static func open(_ url: LoopbackURL) async throws -> HTTPClientChannel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // One read per wake-up: NIO keeps a pool of that many receive buffers (up to 64 KiB
            // each) per channel, which is 512 MiB for 2,000 listeners at its default of 4.
            .channelOption(.maxMessagesPerRead, value: 1)
            .connect(host: url.host, port: url.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    // Few parts buffered: a paced reader stops the socket reads sooner, and 2,000
                    // listeners do not hold 10 × 64 KiB each (NIO's default high watermark).
                    return try HTTPClientChannel(
                        wrappingChannelSynchronously: channel,
                        configuration: .init(backPressureStrategy: .init(lowWatermark: 1, highWatermark: 2)))
                }
            }
    }

    /// Wraps the two halves that `executeThenClose` hands over.
    init(_ channel: HTTPClientChannel, _ inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>,
         _ outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>, url: LoopbackURL, timeout: Duration) {
        responses = inbound.makeAsyncIterator()
        requests = outbound
        self.channel = channel.channel
        hostHeader = url.authority
        self.timeout = timeout
        watchdog = Watchdog(timeout: TimeAmount(timeout))
        watchdog.start(on: channel.channel)
    }

    private let watchdog: Watchdog

    /// The next part of the response, or `nil` when the connection was closed or failed; throws
    /// ``RequestTimedOut`` (having closed the connection) when none arrives within ``timeout``.
    private mutating func nextPart() async throws(RequestTimedOut) -> HTTPClientResponsePart? {
        let waiting = ContinuousClock.now   // before the deadline is set: a close by the watchdog is ≥ timeout after it
        watchdog.awaiting()
        let part = try? await responses.next()
        watchdog.arrived()
        if part == nil, ContinuousClock.now - waiting >= timeout { throw RequestTimedOut() }
        return part
    }

    /// Sends `GET path` and waits for the response head; returns it with the instant of sending.
    mutating func start(_ path: String) async throws -> (head: HTTPResponseHead, sent: ContinuousClock.Instant) {
        guard !closing else { throw ConnectionLost(stale: true) }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path,
                                   headers: ["Host": hostHeader, "User-Agent": "veza-loadgen", "Accept": "*/*"])
        let sent = ContinuousClock.now
        if (try? await requests.write(contentsOf: [.head(head), .end(nil)])) != nil,
           case .head(let response)? = try await nextPart() {
            closing = !response.isKeepAlive
            return (response, sent)
        }
        throw ConnectionLost(stale: served > 0)
    }

    /// The next chunk of the body, or `nil` at its end.
    mutating func nextChunk() async throws -> ByteBuffer? {
        switch try await nextPart() {
        case .body(let chunk)?: return chunk
        case .end?:
            served += 1
            return nil
        case .head?, nil: throw ConnectionLost(stale: false)
        }
    }

    /// `GET path`, read to the end; the body is kept only when `keepBody`.
    mutating func get(_ path: String, keepBody: Bool = false) async throws -> HTTPResponse {
        let (head, sent) = try await start(path)
        let firstByte = ContinuousClock.now
        var body: ByteBuffer? = keepBody ? ByteBuffer() : nil
        var bytes = 0
        while var chunk = try await nextChunk() {
            bytes += chunk.readableBytes
            body?.writeBuffer(&chunk)
        }
        return HTTPResponse(status: Int(head.status.code), body: body, bytes: bytes,
                            timeToFirstByte: firstByte - sent, duration: ContinuousClock.now - sent)
    }
}

/// Closes a connection on which a response part has been awaited for longer than the timeout,
/// with one timer per connection, rescheduled only when it fires.
///
/// Scheduling and cancelling a timer per awaited part cost two cross-thread hops to the event
/// loop per part (each a wake-up of its thread) and a linear search of the loop's timer heap
/// per cancel, which holds a timer per listener: with 10,000 listeners most of the load
/// generator's CPU went to that, on the cores the server under test shares.
final class Watchdog: Sendable {
    let timeout: TimeAmount
    /// Uptime in nanoseconds by which the awaited part must arrive; 0 while none is awaited.
    private let deadline = Atomic<UInt64>(0)

    init(timeout: TimeAmount) { self.timeout = timeout }

    /// Arms the timer on `channel`'s event loop; it stops once the channel is closed.
    func start(on channel: any Channel) {
        channel.eventLoop.execute { self.schedule(channel, at: .now() + self.timeout) }
    }

    /// A part is awaited from now on.
    func awaiting() {
        deadline.store((NIODeadline.now() + timeout).uptimeNanoseconds, ordering: .relaxed)
    }

    /// The awaited part arrived (or the connection ended).
    func arrived() {
        deadline.store(0, ordering: .relaxed)
    }

    // The timer is always due no later than the deadline in force: it is scheduled for the
    // deadline, or for a full timeout from now when none is in force, and a deadline set
    // later is later still.
    private func schedule(_ channel: any Channel, at due: NIODeadline) {
        channel.eventLoop.scheduleTask(deadline: due) { self.fired(channel) }
    }

    private func fired(_ channel: any Channel) {
        guard channel.isActive else { return }
        let due = deadline.load(ordering: .relaxed)
        let now = NIODeadline.now()
        if due != 0, due <= now.uptimeNanoseconds {
            channel.close(promise: nil)
        } else {
            schedule(channel, at: due != 0 ? .uptimeNanoseconds(due) : now + timeout)
        }
    }
}
