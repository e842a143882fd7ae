public import Hummingbird
import Logging
import Foundation
public import NIOCore
import Synchronization
import HTTPTypes
import NIOHTTPTypes
import CoreFoundation

/// A request context that knows the request's client address: the peer's, or the one a
/// trusted proxy forwarded (set by `ClientAddressMiddleware`). Rate limits, logs and signed-URL
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
    /// The host's address the connection reached (WebRTC answers offer it as a candidate).
    public let localAddress: SocketAddress?
    public var clientAddress: IPAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        localAddress = source.channel.localAddress
        clientAddress = remoteAddress?.ipAddress.flatMap { IPAddress($0) }
    }
}
