import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// NIOHTTPTypesHTTP1's `HTTP1ToHTTPServerCodec`, without a URL parse per request: it replaces
/// that codec in the host's HTTP/1.1 pipeline (see ``PlaybackHTTP1Channel``).
///
/// The codec it replaces builds each request's path with `URLComponents(string:)`, to turn an
/// absolute-form target (`GET http://host/path`, what proxies are sent) into a path; an
/// origin-form target (`/path?query`, what every other client sends) comes out unchanged. That
/// parse was 1.6 % of the host's CPU at 10,000 listeners (perf, 2026-12-02), for targets of 150
/// bytes with a token. Here an origin-form target is converted from a head whose target is
/// `/`, then set as the path: the same request, fields and validation (`HTTPRequest`'s own
/// conversion for everything else), without parsing it as a URL. Every other target takes the
/// library's conversion unchanged. Responses are converted as that codec converts them, except
/// for HTTP/1.0 requests (VLC's ICY client, old players and proxies): their responses say
/// HTTP/1.0 (NIO then frames a body of unknown length by closing the connection, not in chunks,
/// which a 1.0 client cannot read), and the connection closes after such a body.
final class OriginFormHTTPServerCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Whether the request being answered is HTTP/1.0.
    private var http10 = false
    /// Whether the response's body ends with the connection.
    private var closeAfterResponse = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            http10 = head.version == .http1_0
            do {
                context.fireChannelRead(wrapInboundOut(.head(try Self.request(head))))
            } catch {
                context.fireErrorCaught(error)
            }
        case .body(let body):
            context.fireChannelRead(wrapInboundOut(.body(body)))
        case .end(let trailers):
            context.fireChannelRead(wrapInboundOut(.end(trailers.map { HTTPFields($0, splitCookie: false) })))
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let response):
            var head = HTTPResponseHead(response)
            if http10 {
                head.version = .http1_0
                if !head.headers.contains(name: "content-length") {
                    head.headers.replaceOrAdd(name: "connection", value: "close")
                    closeAfterResponse = true
                }
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .body(let body):
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: promise)
        case .end(let trailers):
            guard closeAfterResponse else {
                context.write(wrapOutboundOut(.end(trailers.map(HTTPHeaders.init))), promise: promise)
                return
            }
            closeAfterResponse = false
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            let channel = context.channel
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        }
    }

    /// The request `HTTP1ToHTTPServerCodec(secure: false)` makes of `head`.
    static func request(_ head: HTTPRequestHead) throws -> HTTPRequest {
        guard head.uri.utf8.first == UInt8(ascii: "/") else {
            return try HTTPRequest(head, secure: false, splitCookie: false)
        }
        var root = head
        root.uri = "/"
        var request = try HTTPRequest(root, secure: false, splitCookie: false)
        request.path = head.uri
        return request
    }
}
