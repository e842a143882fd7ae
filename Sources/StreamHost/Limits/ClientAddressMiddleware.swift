import Hummingbird
import Logging
import Foundation
import NIOCore
import Synchronization
import HTTPTypes
import NIOHTTPTypes
import CoreFoundation

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
