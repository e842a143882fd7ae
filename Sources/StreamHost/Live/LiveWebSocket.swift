import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import Synchronization

/// WebSocket listening to a live mount (`GET /ws/live/{mount}?rung=R`): for MSE players that
/// want less delay than LL-HLS without WebRTC.
///
/// The protocol, one WebSocket message per unit:
/// 1. a text message, JSON: `{"mount", "rung", "mimeType", "codecs", "timescale", "partSeconds"}`
///    (`mimeType` is what `MediaSource.addSourceBuffer` takes);
/// 2. a binary message: the rung's CMAF initialization segment (`ftyp` + `moov`);
/// 3. binary messages, one per CMAF part as soon as the ladder has encoded it (`moof` + `mdat`,
///    with an `emsg` of ID3 timed metadata first when the title changes): the most recent part
///    first, then each new one. Parts are consecutive: a listener that cannot keep up is
///    disconnected (close code 1008) instead of skipping parts.
///
/// The route authorises the listener as the LL-HLS routes do (a mount token or a bearer token)
/// and answers 101; ``WebSocketUpgradeHandler`` then takes the connection out of HTTP. Each
/// part is one buffer shared by every listener of the rung (``LiveFanout``): no copy and no
/// encode per listener.
///
/// (Hummingbird-websocket's upgrade channel replaces the whole HTTP/1.1 channel, and the host's
/// is its own: sources sniffed before the HTTP decoder, the playback fast path, the origin-form
/// codec. So the frames are NIO's, `NIOWebSocket`, which that library uses too, and the
/// handshake, RFC 6455 §4.2.2's accept key, is done here.)
extension LiveRoutes {
    func webSocket(_ request: Request, _ context: some RequestContext, mount name: String) async throws -> Response {
        guard let key = Self.webSocketKey(request) else {
            throw APIError(HTTPResponse.Status(code: 426, reasonPhrase: "Upgrade Required"), code: "upgrade_required",
                           "this is a WebSocket endpoint: GET with Upgrade: websocket, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key")
        }
        guard let mount = await mounts.find(name) else { throw APIError.notFound("no live mount \(name.prefix(64))") }
        _ = try await authorise(request, context, mount: mount, relay: true)
        guard let session = mount.session, !session.isEnded else { throw APIError(.notFound, code: "not_live", "mount \(mount.name) has no show now") }
        let presentation = session.hls
        let wanted = request.uri.queryParameters.get("rung")
        guard let rung = wanted.map(presentation.rung) ?? presentation.rungs.first, let fanout = session.partStreams[rung.id] else {
            throw APIError.notFound("no CMAF rung \(wanted?.prefix(64) ?? ""): the rungs are \(presentation.rungs.map(\.id).joined(separator: ", "))")
        }
        let greeting = WebSocketGreeting(mount: mount.name, rung: rung.id, mimeType: "audio/mp4; codecs=\"\(rung.codecs)\"", codecs: rung.codecs,
                                         timescale: presentation.timescale, partSeconds: presentation.partSeconds)
        let listenerSession = LiveListenerSession(mount: mount.name, transport: "websocket", rendition: rung.id, codec: rung.codecs,
                                          address: DeliveryRoutes.client(context), userAgent: request.headers[.userAgent], startedAt: 0, endedAt: 0)
        let id = mounts.webSockets.park(LiveWebSocketUpgrades.Pending(
            listener: fanout.addListener(), fanout: fanout, greeting: Self.greetingText(greeting), session: listenerSession, listening: mounts.listening))
        return Response(status: .switchingProtocols, headers: [
            .upgrade: "websocket", .connection: "Upgrade",
            HTTPField.Name("Sec-WebSocket-Accept")!: Self.webSocketAccept(key),
            LiveWebSocketUpgrades.field: String(id),
        ])
    }

    static func greetingText(_ greeting: WebSocketGreeting) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(greeting)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The client's `Sec-WebSocket-Key` when the request is a WebSocket opening handshake.
    static func webSocketKey(_ request: Request) -> String? {
        guard request.method == .get,
              request.headers[.upgrade]?.lowercased() == "websocket",
              request.headers[.connection]?.lowercased().split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == "upgrade" }) == true,
              request.headers[HTTPField.Name("Sec-WebSocket-Version")!] == "13",
              let key = request.headers[HTTPField.Name("Sec-WebSocket-Key")!], Data(base64Encoded: key)?.count == 16 else { return nil }
        return key
    }

    /// RFC 6455 §4.2.2: base64 of the SHA-1 of the key and the protocol's GUID.
    static func webSocketAccept(_ key: String) -> String {
        Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))).base64EncodedString()
    }
}

/// The first (text) message of a WebSocket listener.
struct WebSocketGreeting: Codable, Sendable {
    var mount: String
    var rung: String
    var mimeType: String
    var codecs: String
    var timescale: Int
    var partSeconds: Double
}

/// Listeners whose 101 the router has answered, until their connection leaves HTTP: the route
/// parks what the connection needs under an id carried in an internal response field, which
/// ``WebSocketUpgradeHandler`` removes from the response and redeems.
final class LiveWebSocketUpgrades: Sendable {
    struct Pending: Sendable {
        var listener: LiveListener
        var fanout: LiveFanout
        var greeting: String
        /// The listener's session (times and bytes filled in when it ends) and where it goes.
        var session: LiveListenerSession
        var listening: LiveListening
    }

    /// The internal response field (never sent).
    static let field = HTTPField.Name("Veza-WebSocket-Upgrade")!
    private let pending = Mutex<(next: UInt64, waiting: [UInt64: Pending])>((1, [:]))

    func park(_ upgrade: Pending) -> UInt64 {
        pending.withLock { state in
            let id = state.next
            state.next += 1
            state.waiting[id] = upgrade
            return id
        }
    }

    func redeem(_ id: UInt64) -> Pending? {
        pending.withLock { $0.waiting.removeValue(forKey: id) }
    }

    /// A parked listener whose response never reached the connection (it closed first).
    func abandon(_ id: UInt64) {
        guard let upgrade = redeem(id) else { return }
        upgrade.fanout.removeListener(upgrade.listener)
    }
}

/// On the response path between the origin-form codec and the fast path: a `101` answer to a
/// WebSocket opening handshake (``LiveRoutes/webSocket(_:_:mount:)``) is sent without its
/// internal field, then the connection leaves HTTP: the HTTP decoder and encoder, the
/// connection guard, the fast path and this handler are removed, NIO's WebSocket frame codec
/// and ``LiveWebSocketHandler`` take their place at the head of the pipeline. The rest of the
/// pipeline (Hummingbird's connection handler and its channel) stays and sees nothing more.
final class WebSocketUpgradeHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let upgrades: LiveWebSocketUpgrades
    let metrics: HostMetrics
    private var upgrading: UInt64?

    init(upgrades: LiveWebSocketUpgrades, metrics: HostMetrics) {
        self.upgrades = upgrades
        self.metrics = metrics
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        switch part {
        case .head(var head) where head.status == .switchingProtocols:
            if let id = head.headers.first(name: LiveWebSocketUpgrades.field.rawName).flatMap(UInt64.init) {
                upgrading = id
                head.headers.remove(name: LiveWebSocketUpgrades.field.rawName)
                // 101 has no body: no framing fields.
                head.headers.remove(name: "content-length")
                head.headers.remove(name: "transfer-encoding")
            }
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end where upgrading != nil:
            let id = upgrading!
            upgrading = nil
            context.writeAndFlush(wrapOutboundOut(part), promise: promise)
            leaveHTTP(context: context, id: id)
        default:
            context.write(data, promise: promise)
        }
    }

    private func leaveHTTP(context: ChannelHandlerContext, id: UInt64) {
        guard let upgrade = upgrades.redeem(id) else {
            context.close(promise: nil)
            return
        }
        let pipeline = context.pipeline.syncOperations
        do {
            // HTTP out first (the encoder sits in front of the decoder), then the frames in at
            // the head, where they meet none of the HTTP handlers left behind.
            let decoder = try pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
            pipeline.removeHandler(context: decoder, promise: nil)
            pipeline.removeHandler(context: try pipeline.context(handlerType: HTTPResponseEncoder.self), promise: nil)
            pipeline.removeHandler(context: try pipeline.context(handlerType: ConnectionGuard.self), promise: nil)
            pipeline.removeHandler(context: try pipeline.context(handlerType: PlaybackFastPathHandler.self), promise: nil)
            pipeline.removeHandler(context: context, promise: nil)
            let listener = LiveWebSocketHandler(upgrade: upgrade, metrics: metrics)
            try pipeline.addHandlers([
                WebSocketFrameEncoder(),
                ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 16)),
                listener,
            ], position: .first)
            listener.start(context: try pipeline.context(handler: listener))
        } catch {
            upgrade.fanout.removeListener(upgrade.listener)
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if let upgrading { upgrades.abandon(upgrading) }
    }
}

/// One WebSocket listener: the greeting, then its queue (``LiveListener``) as binary messages;
/// answers pings and a close. Inbound data frames are ignored (a listener has nothing to say).
final class LiveWebSocketHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let upgrade: LiveWebSocketUpgrades.Pending
    let metrics: HostMetrics
    private var closing = false
    private var startedAt = Date().timeIntervalSince1970
    private var sentBytes: Int64 = 0
    /// The listener's queue ended (the show ended) without the connection failing first.
    private var showEnded = false

    init(upgrade: LiveWebSocketUpgrades.Pending, metrics: HostMetrics) {
        self.upgrade = upgrade
        self.metrics = metrics
    }

    /// Sends the greeting and starts moving the queue to the connection (once the frame codec
    /// is in place).
    func start(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: upgrade.greeting))), promise: nil)
        // The queue is an async sequence: one task per listener moves its buffers to the event
        // loop, where they are written from this handler's context (the pipeline behind it
        // speaks HTTP types).
        let loopContext = NIOLoopBound(context, eventLoop: context.eventLoop)
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let listener = upgrade.listener
        let eventLoop = context.eventLoop
        startedAt = Date().timeIntervalSince1970
        Task {
            var failed = false
            for await buffer in listener.buffers {
                let written = eventLoop.flatSubmit {
                    handler.value.send(buffer, context: loopContext.value)
                }
                do {
                    try await written.get()
                } catch {
                    failed = true
                    break
                }
            }
            let ended = !failed && !listener.wasDropped
            eventLoop.execute {
                handler.value.showEnded = ended
                handler.value.close(context: loopContext.value, code: listener.wasDropped ? .policyViolation : .goingAway)
            }
        }
    }

    private func send(_ buffer: ByteBuffer, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        guard !closing, context.channel.isActive else { return context.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        let bytes = buffer.readableBytes
        let listener = upgrade.listener
        let metrics = self.metrics
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: buffer)), promise: promise)
        sentBytes += Int64(bytes)
        return promise.futureResult.map {
            listener.consumed(bytes)
            metrics.liveBytesOut(bytes)
        }
    }

    private func close(context: ChannelHandlerContext, code: WebSocketErrorCode) {
        guard !closing, context.channel.isActive else { return }
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))).whenComplete { [channel = context.channel] _ in
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            // Echo the close (RFC 6455 §5.5.1), then close the TCP connection.
            if closing {
                context.close(promise: nil)
            } else {
                closing = true
                var code = frame.unmaskedData
                let echo = code.readWebSocketErrorCode().map { code -> ByteBuffer in
                    var data = context.channel.allocator.buffer(capacity: 2)
                    data.write(webSocketErrorCode: code)
                    return data
                } ?? ByteBuffer()
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: echo))).whenComplete { [channel = context.channel] _ in
                    channel.close(promise: nil)
                }
            }
        default:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A protocol error from the frame decoder (1002) or the connection failing.
        close(context: context, code: .protocolError)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        upgrade.fanout.removeListener(upgrade.listener)
        if upgrade.listener.wasDropped { metrics.liveListenerDropped() }
        var session = upgrade.session
        session.startedAt = startedAt
        session.endedAt = Date().timeIntervalSince1970
        session.bytes = sentBytes
        session.showEnded = showEnded
        upgrade.listening.ended(session)
        context.fireChannelInactive()
    }
}
