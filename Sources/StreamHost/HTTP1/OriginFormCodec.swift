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
/// library's conversion unchanged. Responses are converted as that codec converts them.
final class OriginFormHTTPServerCodec: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
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
            context.write(wrapOutboundOut(.head(HTTPResponseHead(response))), promise: promise)
        case .body(let body):
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: promise)
        case .end(let trailers):
            context.write(wrapOutboundOut(.end(trailers.map(HTTPHeaders.init))), promise: promise)
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
