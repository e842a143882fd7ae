import Foundation
import Configuration
import NIOHTTP1
import Hummingbird
import HTTPTypes
import NIOCore
import Synchronization

/// Per-connection protections below HTTP: a cap on open connections per client address, a
/// deadline for each request head (slowloris: headers trickled byte by byte keep resetting an
/// idle timeout, not this deadline), the keep-alive deadline for the next head, a stall
/// timeout while a request body (an upload) is read, and a send timeout (a client that stops
/// reading while a response waits on its full socket).
///
/// It works on NIO's HTTP/1 parts, in front of the playback fast path, so it sees the requests
/// and responses of both the fast path and the router (see ``PlaybackHTTP1Channel``).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Open connections per address, shared by every connection's guard.
    final class Counter: Sendable {
        private let counts = Mutex<[String: Int]>([:])

        func open(_ address: String, cap: Int) -> Bool {
            counts.withLock { counts in
                let current = counts[address, default: 0]
                guard cap <= 0 || current < cap else { return false }
                counts[address] = current + 1
                return true
            }
        }

        func close(_ address: String) {
            counts.withLock { counts in
                let left = counts[address, default: 1] - 1
                counts[address] = left > 0 ? left : nil
            }
        }
    }

    let counter: Counter
    let cap: Int
    /// A trusted proxy's connections are not capped per address: its clients are limited by
    /// their own addresses, request by request.
    let clientAddresses: ClientAddressResolver
    let headerTimeout: TimeAmount
    let keepAliveTimeout: TimeAmount
    /// The request being answered carries `Upgrade`.
    private var upgradeAsked = false
    /// The response being written ends the connection (a refused upgrade).
    private var closeAfterResponse = false
    let sendTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    /// The address counted against the cap (nil for a trusted proxy's connection).
    private var address: String?
    private var started = false
    /// When the connection is closed unless the request body being read moves on (nil: no
    /// body awaited).
    private var bodyDue: NIODeadline?
    /// When the connection is closed unless a request head arrives (nil: none awaited).
    private var headDue: NIODeadline?
    /// When the connection is closed unless its full socket drains (nil: it is writable).
    private var sendDue: NIODeadline?
    /// The one timer of the connection. Deadlines move with every request, and cancelling and
    /// scheduling a task per request costs NIO a linear search of its timer heap, which holds one
    /// entry per connection: with 10,000 listeners that was a fifth of the host's CPU. So the
    /// timer is rescheduled only when it fires, for whatever deadline is then due.
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?
    /// Requests whose response has not ended (pipelining).
    private var inFlight = 0

    /// - Parameters:
    ///   - headerTimeout: from connecting to a complete first request head.
    ///   - keepAliveTimeout: from the end of a response to the next complete request head.
    ///   - sendTimeout: how long the socket may stay full before the connection is closed.
    ///   - bodyTimeout: how long a request body (an upload) may stall between two parts.
    init(counter: Counter, cap: Int, clientAddresses: ClientAddressResolver, headerTimeout: TimeAmount, keepAliveTimeout: TimeAmount,
         sendTimeout: TimeAmount, bodyTimeout: TimeAmount) {
        self.counter = counter
        self.cap = cap
        self.clientAddresses = clientAddresses
        self.headerTimeout = headerTimeout
        self.keepAliveTimeout = keepAliveTimeout
        self.sendTimeout = sendTimeout
        self.bodyTimeout = bodyTimeout
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            sendDue = nil
        } else if sendDue == nil {
            sendDue = .now() + sendTimeout
            ensureTimer(context)
        }
        context.fireChannelWritabilityChanged()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let ip = context.channel.remoteAddress?.ipAddress
        if !clientAddresses.trusts(ip.flatMap { IPAddress($0) }) {
            guard counter.open(ip ?? "unknown", cap: cap) else {
                context.close(promise: nil)
                return
            }
            address = ip ?? "unknown"
        }
        headDue = .now() + headerTimeout
        ensureTimer(context)
    }

    /// The earliest deadline in force.
    private var nextDue: NIODeadline? {
        func earlier(_ a: NIODeadline?, _ b: NIODeadline?) -> NIODeadline? {
            guard let a else { return b }
            guard let b else { return a }
            return min(a, b)
        }
        return earlier(earlier(headDue, sendDue), bodyDue)
    }

    /// Schedules the timer unless one already fires no later than the next deadline.
    private func ensureTimer(_ context: ChannelHandlerContext) {
        guard let due = nextDue else { return }
        if let timerAt, timerAt <= due { return }
        timer?.cancel()
        timerAt = due
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: due) {
            let (handler, context) = loopBound.value
            handler.timerFired(context)
        }
    }

    private func timerFired(_ context: ChannelHandlerContext) {
        timer = nil
        timerAt = nil
        guard let due = nextDue else { return }
        if due <= .now() {
            context.close(promise: nil)
        } else {
            ensureTimer(context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            headDue = nil
            inFlight += 1
            upgradeAsked = request.headers.contains(name: "upgrade")
            // A body follows: it must keep coming (uploads). Requests without one (every
            // playback request) leave the timer alone.
            if request.headers.contains(name: "transfer-encoding") || (request.headers.first(name: "content-length").flatMap { Int($0) } ?? 0) > 0 {
                bodyDue = .now() + bodyTimeout
                ensureTimer(context)
            }
        case .body:
            // Only later: the timer, when it fires, reschedules for it.
            if bodyDue != nil { bodyDue = .now() + bodyTimeout }
        case .end:
            bodyDue = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // A request that asked to change protocols and got anything but 101: the HTTP decoder
        // has stopped parsing at its upgrade, so no later request on the connection would be
        // read. The answer says `Connection: close` and the connection closes after it.
        if upgradeAsked, case .head(var head) = unwrapOutboundIn(data), head.status != .switchingProtocols {
            upgradeAsked = false
            closeAfterResponse = true
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.write(wrapOutboundOut(.head(head)), promise: promise)
            return
        }
        if closeAfterResponse, case .end = unwrapOutboundIn(data) {
            closeAfterResponse = false
            let channel = context.channel
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
            return
        }
        // The next request head is due within the keep-alive timeout of the response's end
        // (a client still reading the end is covered by the send timeout).
        if case .end = unwrapOutboundIn(data) {
            inFlight = max(0, inFlight - 1)
            if inFlight == 0 {
                headDue = .now() + keepAliveTimeout
                ensureTimer(context)
            }
        }
        context.write(data, promise: promise)
    }

    /// A handler in front took the connection over for something other than HTTP requests (a
    /// live source, ``LiveSourceHandler``), which keeps deadlines of its own: the request
    /// deadlines stop; the connection still counts against its address's cap.
    struct TakenOver {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is TakenOver { stopDeadlines() }
        context.fireUserInboundEventTriggered(event)
    }

    /// Cancels the timer and forgets every deadline.
    private func stopDeadlines() {
        timer?.cancel()
        timer = nil
        timerAt = nil
        headDue = nil
        sendDue = nil
        bodyDue = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopDeadlines()
        if let address { counter.close(address) }
        address = nil
        context.fireChannelInactive()
    }

    /// Removed when the connection leaves HTTP (a WebSocket upgrade): its HTTP deadlines end,
    /// and it still counts against its address until it closes.
    func handlerRemoved(context: ChannelHandlerContext) {
        stopDeadlines()
        guard let address else { return }
        self.address = nil
        let counter = self.counter
        context.channel.closeFuture.whenComplete { _ in counter.close(address) }
    }
}
