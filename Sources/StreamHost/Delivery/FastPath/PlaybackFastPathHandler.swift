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

/// The channel handler in front of the router: hands each request head to ``PlaybackFastPath``
/// and writes its answer, or passes the request on.
///
/// It works on NIO's HTTP/1 parts, right after ``ConnectionGuard`` (which so sees every request
/// and response, for its deadlines) and before the conversion to HTTP types
/// (``OriginFormHTTPServerCodec``), Hummingbird's connection-state handler and the async
/// channel that feed the router: a request answered here is never converted. Responses leave in
/// request order: while the router has a request of this connection in hand (pipelining), every
/// later request goes to the router too, and while a file is being streamed, later requests wait
/// here. A client that does not read (the channel is not writable) is handed to the router, whose
/// writer waits for the socket instead of queueing more. A graceful shutdown
/// (`ChannelShouldQuiesceEvent`) lets the file being streamed finish, then closes the
/// connection, as the connection-state handler does for the router's responses.
///
/// Files are sent as file regions (`sendfile`, so no byte passes through user space), a region
/// whenever the socket takes more and, for paced files, the budget (burst + rate × elapsed)
/// allows it: a slot of the event loop's ``PacingSlots``, no task and no timer per stream.
final class PlaybackFastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let fastPath: PlaybackFastPath
    /// Succeeds with true when the router is first needed on this connection, with false when
    /// the connection closes before that (see ``PlaybackHTTP1Channel``).
    let routerNeeded: EventLoopPromise<Bool>
    private var routerStarted = false
    /// Requests passed to the router whose response has not ended.
    private var routed = 0
    /// Dropping the rest (body, end) of a request answered here.
    private var skipping = false
    /// A graceful shutdown asked for while a file was being streamed: the connection closes
    /// when it is sent.
    private var quiesceHeld = false

    /// A file being sent.
    private final class Stream {
        let file: OpenFileCache.File
        var offset: Int64
        let end: Int64
        let pacing: ObjectResponder.Pacing?
        let kind: ObjectResponder.Kind
        let closeAfter: Bool
        let started = NIODeadline.now()
        let requestStart: ContinuousClock.Instant
        var sent: Int64 = 0
        var waited: Int64 = 0
        /// Waiting for its pacing slot (``PacingSlots``), which resumes it.
        var sleeping = false

        init(_ body: PlaybackFastPath.FileBody, closeAfter: Bool, requestStart: ContinuousClock.Instant) {
            file = body.file
            offset = body.range.lowerBound
            end = body.range.upperBound
            pacing = body.pacing
            kind = body.kind
            self.closeAfter = closeAfter
            self.requestStart = requestStart
        }
    }
    private var stream: Stream?
    private var pumping = false
    /// Request parts that arrived while a file was being sent, handled once it is done.
    private var waiting: [NIOAny] = []
    /// Largest region written at once.
    static let regionBytes: Int64 = 1 << 20
    /// Paced streams resume on a 20 ms grid, so that the streams due within the same 20 ms wake
    /// the event loop once (a thousand streams resuming once a second would otherwise wake
    /// it up to 1,000 times a second). The budget is computed from the time elapsed, so the
    /// rate is kept; a piece goes out at most 20 ms later.
    static let pacingGrid: Int64 = 20_000_000

    static func coalesced(_ deadline: NIODeadline) -> NIODeadline {
        let nanoseconds = Int64(deadline.uptimeNanoseconds)
        let rounded = (nanoseconds + pacingGrid - 1) / pacingGrid * pacingGrid
        return .uptimeNanoseconds(UInt64(rounded))
    }

    init(fastPath: PlaybackFastPath, routerNeeded: EventLoopPromise<Bool>) {
        self.fastPath = fastPath
        self.routerNeeded = routerNeeded
    }

    private var knownClient: PlaybackFastPath.Client?
    private var knownSlots: PacingSlots?

    private func pacingSlots(_ context: ChannelHandlerContext) -> PacingSlots {
        if let knownSlots { return knownSlots }
        let slots = fastPath.pacingSlots(for: context.eventLoop)
        knownSlots = slots
        return slots
    }

    private func client(_ context: ChannelHandlerContext) -> PlaybackFastPath.Client {
        if let knownClient { return knownClient }
        let client = PlaybackFastPath.Client(context.channel.remoteAddress, loop: context.eventLoop, resolver: fastPath.clientAddresses)
        knownClient = client
        return client
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // The async channel behind only needs it for reads it was given (it delivers them to
        // the router in batches at read-complete).
        if routerStarted { context.fireChannelReadComplete() }
    }

    private func startRouter(_ context: ChannelHandlerContext) {
        guard !routerStarted else { return }
        routerStarted = true
        routerNeeded.succeed(true)
        // The changes held back before: the writer starts out taking the channel as writable.
        if !context.channel.isWritable { context.fireChannelWritabilityChanged() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        abandonStream()
        if !routerStarted {
            routerStarted = true
            routerNeeded.succeed(false)
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        abandonStream()
        if !routerStarted {
            routerStarted = true
            routerNeeded.succeed(false)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A parse error is answered (400) by the router's connection loop.
        startRouter(context)
        context.fireErrorCaught(error)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The connection-state handler behind closes the connection at once when the router has
        // no response in hand: a stream is let finish first.
        if event is ChannelShouldQuiesceEvent, stream != nil {
            quiesceHeld = true
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, stream != nil { pump(context) }
        // The router's writer hears of writability only once it exists (each change otherwise
        // costs a trip through the async channel's writer for every paced stream).
        if routerStarted { context.fireChannelWritabilityChanged() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard stream == nil else {
            waiting.append(data)
            // A client may send its next request early; one that floods is not a player.
            if waiting.count > 64 { context.close(promise: nil) }
            return
        }
        switch unwrapInboundIn(data) {
        case .head(let request):
            let start = ContinuousClock.now
            if routed == 0, context.channel.isWritable,
               let answer = fastPath.answer(request, client: client(context)) {
                skipping = true
                let closeAfter = !request.isKeepAlive
                context.write(wrapOutboundOut(.head(HTTPResponseHead(answer.head))), promise: nil)
                if let file = answer.file {
                    stream = Stream(file, closeAfter: closeAfter, requestStart: start)
                    fastPath.metrics.activeStreams.increment()
                    if file.pacing != nil { fastPath.metrics.pacedResponseStarted() }
                    pump(context)
                    return
                }
                if let body = answer.body { context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil) }
                end(context, closeAfter: closeAfter)
                return
            }
            skipping = false
            routed += 1
            startRouter(context)
            context.fireChannelRead(data)
        case .body:
            if !skipping { context.fireChannelRead(data) }
        case .end:
            if skipping { skipping = false } else { context.fireChannelRead(data) }
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), routed > 0 { routed -= 1 }
        context.write(data, promise: promise)
    }

    private func end(_ context: ChannelHandlerContext, closeAfter: Bool, then done: (@Sendable () -> Void)? = nil) {
        guard closeAfter || done != nil else {
            // No completion to wait for: no promise to allocate.
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            done?()
            if closeAfter { loopBound.value.close(promise: nil) }
        }
    }

    /// Sends what the socket and the pacing budget allow now, then waits for writability or
    /// for the budget (a ``PacingSlots`` deadline); ends the response when the range is sent.
    private func pump(_ context: ChannelHandlerContext) {
        // A flush may change writability inline and call back in here: the running loop goes on.
        // While a paced stream waits for its budget, its slot resumes it: a writability change
        // meanwhile has nothing to send. (No cancel: NIO cancels a scheduled task by a linear
        // search of the loop's timer heap, which holds a timer per connection.)
        guard !pumping, let stream, !stream.sleeping else { return }
        pumping = true
        defer { pumping = false }
        while stream.offset < stream.end {
            // Abandoned (the connection closed) during the last write.
            guard self.stream === stream, context.channel.isActive else { return }
            guard context.channel.isWritable else { return }   // channelWritabilityChanged resumes
            var allowed = min(stream.end - stream.offset, Self.regionBytes)
            if let pacing = stream.pacing {
                let elapsed = Double((NIODeadline.now() - stream.started).nanoseconds) / 1e9
                let budget = Int64(Double(pacing.burstBytes) + pacing.bytesPerSecond * elapsed) - stream.sent
                // Regions of at least a second at the paced rate (or what is left): a wake-up per
                // second per stream. (The router's pieces are a quarter second, as they are read
                // into memory; a file region costs no memory.) The budget caps what is sent, so
                // the piece size changes only how often a stream wakes.
                let piece = min(stream.end - stream.offset, max(4096, Int64(pacing.bytesPerSecond)))
                if budget < piece {
                    let wait = Double(piece - budget) / pacing.bytesPerSecond
                    let due = Self.coalesced(NIODeadline.now() + .nanoseconds(Int64(wait * 1e9) + 1_000_000))
                    stream.waited += (due - NIODeadline.now()).nanoseconds
                    stream.sleeping = true
                    pacingSlots(context).schedule(at: due) { [self] in
                        stream.sleeping = false
                        // An abandoned stream's slot is left to fire (see abandonStream).
                        if self.stream === stream { pump(context) }
                    }
                    return
                }
                allowed = min(allowed, budget)
            }
            let region = FileRegion(fileHandle: stream.file.handle, readerIndex: Int(stream.offset), endIndex: Int(stream.offset + allowed))
            let first = stream.sent == 0
            if first, stream.kind.isStreamStart {
                fastPath.metrics.streamStart.record(ContinuousClock.now - stream.requestStart)
            }
            stream.offset += allowed
            stream.sent += allowed
            // The head (written, not yet flushed) and the first region leave in the same TCP
            // segments: corked, the head's `write` only queues its bytes and `sendfile` fills the
            // rest of the segment; uncorking sends the tail. Without it the head is a segment of
            // its own, a transmit and a wakeup of the client for 300 bytes (nginx does the same
            // with `tcp_nopush`).
            let corked = first && setCork(context, true)
            context.writeAndFlush(wrapOutboundOut(.body(.fileRegion(region))), promise: nil)
            if corked { _ = setCork(context, false) }
        }
        // Sent: end the response, let go of the file once the last region is out (it closes
        // when no response and no cache entry has it), then take up any request that arrived
        // meanwhile.
        guard self.stream === stream else { return }
        self.stream = nil
        finishMetrics(stream)
        let file = stream.file
        // A graceful shutdown held back closes the connection once the end is written.
        end(context, closeAfter: stream.closeAfter || quiesceHeld) { withExtendedLifetime(file) {} }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.drainWaiting(context)
        }
    }

    /// `TCP_CORK` (Linux): while set, only full segments are sent; clearing it sends the rest.
    private static let cork = ChannelOptions.Types.SocketOption(level: .tcp, name: .init(rawValue: CInt(TCP_CORK)))

    /// Sets or clears `TCP_CORK` on the connection; false if the socket refused (closed).
    private func setCork(_ context: ChannelHandlerContext, _ on: Bool) -> Bool {
        guard let options = context.channel.syncOptions else { return false }
        return (try? options.setOption(Self.cork, value: on ? 1 : 0)) != nil
    }

    private func drainWaiting(_ context: ChannelHandlerContext) {
        guard !waiting.isEmpty else { return }
        while stream == nil, !waiting.isEmpty, context.channel.isActive {
            let next = waiting.removeFirst()
            channelRead(context: context, data: next)
        }
        // Outside a socket read: the async channel hands what it got to the router only on a
        // read-complete event.
        context.fireChannelReadComplete()
    }

    private func finishMetrics(_ stream: Stream) {
        fastPath.metrics.activeStreams.decrement()
        fastPath.metrics.bytesServed(Int(stream.sent), kind: stream.kind.metricsKind)
        if stream.pacing != nil { fastPath.metrics.pacingWaited(.nanoseconds(stream.waited)) }
    }

    /// The connection went away mid-file.
    private func abandonStream() {
        guard let stream else { return }
        self.stream = nil
        // Its pacing slot, if any, fires within a second and finds the stream gone.
        // The writes of its regions have failed by now (the channel is inactive or the handler
        // gone): the file may close.
        finishMetrics(stream)
        waiting.removeAll()
    }
}
