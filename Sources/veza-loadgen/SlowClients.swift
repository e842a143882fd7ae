import NIOCore
import NIOPosix
import Synchronization
import Foundation

/// Hostile connections opened beside the listeners, to show that they do not degrade them and
/// that the server's timeouts close them:
/// - **trickle** (slowloris): a request head sent one byte per interval, never finished;
/// - **non-reading**: a complete request (for a large file) whose answer is never read, with a
///   4 KiB receive buffer so that the server's socket fills up at once.
///
/// Each connection records when the server closed it; those still open at the end of the run
/// are counted as such (and closed by the load generator). A non-reading connection learns of
/// the close only by reading: at the end it drains for up to 3 s, and a close found then is
/// dated at the end of the run.
enum SlowClients {
    enum Kind: String, Codable, Sendable {
        case trickle
        case nonReading
    }

    /// What happened to one kind of slow connection.
    struct Result: Codable, Sendable {
        var kind: Kind
        var connections: Int
        var connectFailed = 0
        /// Closed by the server before the end of the run.
        var closedByServer = 0
        var stillOpenAtEnd = 0
        /// Seconds from connecting to the server's close: median and largest.
        var closeSecondsP50 = 0.0
        var closeSecondsMax = 0.0

        var summary: String {
            func f(_ value: Double) -> String { String(format: "%.1f", value) }
            return "\(kind.rawValue) \(connections): \(closedByServer) closed by the server (after p50 \(f(closeSecondsP50)) s, max \(f(closeSecondsMax)) s), \(stillOpenAtEnd) still open at the end, \(connectFailed) failed to connect"
        }
    }

    /// Runs `count` connections of `kind` against `url`, started evenly over `ramp` from
    /// `start`, until `end`.
    static func run(_ kind: Kind, count: Int, url: LoopbackURL, interval: Duration, start: ContinuousClock.Instant,
                    ramp: Duration, end: ContinuousClock.Instant) async -> Result {
        /// nil: could not connect; .infinity: still open at the end; else seconds to the close.
        let outcomes = await withTaskGroup(of: Double?.self) { group in
            for index in 0..<count {
                let at = start + ramp * (Double(index) / Double(max(count, 1)))
                group.addTask { await one(kind, url: url, interval: interval, at: at, end: end) }
            }
            var all: [Double?] = []
            for await outcome in group { all.append(outcome) }
            return all
        }
        var result = Result(kind: kind, connections: count)
        result.connectFailed = outcomes.count { $0 == nil }
        result.stillOpenAtEnd = outcomes.count { $0 == .infinity }
        let closed = outcomes.compactMap { $0 }.filter { $0 != .infinity }.sorted()
        result.closedByServer = closed.count
        if !closed.isEmpty {
            result.closeSecondsP50 = closed[closed.count / 2]
            result.closeSecondsMax = closed[closed.count - 1]
        }
        return result
    }

    private static func one(_ kind: Kind, url: LoopbackURL, interval: Duration, at: ContinuousClock.Instant,
                            end: ContinuousClock.Instant) async -> Double? {
        guard (try? await Task.sleep(until: at)) != nil else { return .infinity }
        let opened = ContinuousClock.now
        let channel: any Channel
        do {
            var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    // Whatever arrives is dropped (the trickling connection never gets an answer).
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Discard()) }
                }
            if kind == .nonReading {
                bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: 4096).channelOption(.autoRead, value: false)
            }
            channel = try await bootstrap.connect(host: url.host, port: url.port).get()
        } catch {
            return nil
        }
        let closed = Mutex<ContinuousClock.Instant?>(nil)
        channel.closeFuture.whenComplete { _ in closed.withLock { $0 = .now } }
        let head = "GET \(url.path) HTTP/1.1\r\nHost: \(url.authority)\r\nUser-Agent: veza-loadgen-slow\r\n"
        switch kind {
        case .nonReading:
            channel.writeAndFlush(ByteBuffer(string: head + "\r\n"), promise: nil)
            // Until the server closes it or the run ends, whichever comes first (no polling:
            // 250 connections polling four times a second took more CPU than the listeners).
            await closedOrElapsed(channel, end - .now)
            // A server's close (its FIN) queues behind the bytes this connection never read, so
            // it is seen only by reading: drain for up to 3 s; the end of the stream says the
            // server had closed the connection (when exactly is unknown: reported as the end).
            if closed.withLock({ $0 }) == nil {
                let drained = ContinuousClock.now
                channel.setOption(.autoRead, value: true).whenComplete { _ in channel.read() }
                await closedOrElapsed(channel, .seconds(3))
                if closed.withLock({ $0 }) != nil { return (drained - opened).seconds }
            }
        case .trickle:
            channel.writeAndFlush(ByteBuffer(string: head), promise: nil)
            // One byte per interval of an endless run of header lines.
            let trickle = Array("X-Slow: 1\r\n".utf8)
            var index = 0
            while ContinuousClock.now < end, closed.withLock({ $0 }) == nil {
                // Cancelled (the run ended): stop, instead of trickling at full speed.
                guard (try? await Task.sleep(until: min(end, .now + interval))) != nil else { break }
                guard closed.withLock({ $0 }) == nil else { break }
                channel.writeAndFlush(ByteBuffer(bytes: [trickle[index % trickle.count]]), promise: nil)
                index += 1
            }
        }
        if let at = closed.withLock({ $0 }) { return (at - opened).seconds }
        try? await channel.close()
        return .infinity
    }

    /// Returns when `channel` is closed or `limit` has passed, whichever is first. Waits on the
    /// event loop, not with `Task.sleep`, which returns at once in a cancelled task.
    private static func closedOrElapsed(_ channel: any Channel, _ limit: Duration) async {
        let settled = channel.eventLoop.makePromise(of: Void.self)
        channel.closeFuture.whenComplete { _ in settled.succeed() }   // a second success is ignored
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(limit)) { settled.succeed() }
        try? await settled.futureResult.get()
        timer.cancel()
    }

    private final class Discard: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }
}
