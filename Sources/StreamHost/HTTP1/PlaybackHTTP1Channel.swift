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

/// Hummingbird's HTTP/1.1 channel with ``ConnectionGuard`` and ``PlaybackFastPathHandler``
/// added in front of its HTTP types codec, which is replaced by ``OriginFormHTTPServerCodec``,
/// and the router's connection loop started only when a request of the connection needs it:
///
///     LiveSourceHandler (until the first bytes show an HTTP request, not a live source)
///         → HTTP/1 decoder and encoder → ConnectionGuard → PlaybackFastPathHandler
///         → WebSocketUpgradeHandler → OriginFormHTTPServerCodec → ContinueHandler
///         → HTTPConnectionStateHandler → router
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
    /// What a live source's connection needs (``LiveSourceHandler`` looks at every connection's
    /// first bytes, in front of the HTTP decoder).
    let liveSources: LiveSourceHandler.Dependencies

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let fastPath = self.fastPath
        let makeGuard = self.makeGuard
        let sendBuffer = self.sendBuffer
        let liveSources = self.liveSources
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
            // Between them: a 101 from the WebSocket route takes the connection out of HTTP.
            try pipeline.addHandler(WebSocketUpgradeHandler(upgrades: liveSources.mounts.webSockets, metrics: liveSources.metrics), position: .before(codec))
            try pipeline.addHandler(makeGuard(), position: .before(fastPathHandler))
            try pipeline.addHandler(LiveSourceHandler(dependencies: liveSources), position: .first)
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
