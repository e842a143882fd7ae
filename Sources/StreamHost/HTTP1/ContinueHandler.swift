import Hummingbird
import Logging
import Foundation
import NIOCore
import Synchronization
import HTTPTypes
import NIOHTTPTypes
import CoreFoundation

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
