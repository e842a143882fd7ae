import Foundation
import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// `--websocket URL`: N WebSocket listeners of a live mount (`/ws/live/{mount}`), each on its own
/// TCP connection: the opening handshake, then the frames as they come (server frames are not
/// masked: a small parser here). A listener checks that the parts are consecutive (their `mfhd`
/// sequence numbers) and plays them on a clock that starts one second after its first part
/// (the buffer an MSE player keeps at this delay): an underrun is a part that arrives after its
/// turn to play, after which the clock waits for it.
enum WebSocketLoad {
    struct Report: Codable {
        var url: String
        var listeners: Int
        var connected: Int
        var failed: [String: Int]
        var durationSeconds: Double
        var parts: Int
        var gaps: Int
        var underruns: Int
        var bytes: Int
        var timeToFirstPartMs: LoadGenReport.Latency
        var server: LoadGenReport.ProcessUse?
        var loadgen: LoadGenReport.ProcessUse
        var steadyServerCores: Double?
    }

    /// What every listener adds to.
    struct Counts {
        var connected = 0
        var failed: [String: Int] = [:]
        var parts = 0
        var gaps = 0
        var underruns = 0
        var bytes = 0
        var firstPart = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }
    typealias Totals = Tally<Counts>

    static func run(url text: String, listeners: Int, duration: Double, ramp: Double, serverPIDs: [Int32], json: String?) async throws {
        guard let components = URLComponents(string: text), let host = components.host, let port = components.port else {
            throw SetupError(description: "--websocket \(text): a ws://HOST:PORT/ws/live/{mount}[?rung=R&token=T] URL")
        }
        let path = components.percentEncodedPath + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
        let totals = Totals(Counts())
        let start = ContinuousClock.now
        let end = start + .seconds(duration)
        let steadyFrom = start + .seconds(ramp + 5)
        let samplers = sampleProcesses(serverPIDs: serverPIDs, steadyFrom: steadyFrom)
        var finished: [EventLoopFuture<Void>] = []
        for index in 0..<listeners {
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            let at = start + .seconds(ramp * Double(index) / Double(listeners))
            let done = loop.makePromise(of: Void.self)
            finished.append(done.futureResult)
            loop.scheduleTask(deadline: NIODeadline.now() + .nanoseconds(Int64(((at - .now).seconds * 1e9).rounded()))) {
                let started = ContinuousClock.now
                ClientBootstrap(group: loop)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(Listener(host: host, port: port, path: path, totals: totals, started: started))
                        }
                    }
                    .connect(host: host, port: port)
                    .whenComplete { result in
                        switch result {
                        case .success(let channel):
                            loop.scheduleTask(deadline: NIODeadline.now() + .nanoseconds(Int64(((end - .now).seconds * 1e9).rounded()))) {
                                channel.close(promise: nil)
                            }
                            channel.closeFuture.whenComplete { _ in done.succeed() }
                        case .failure:
                            totals.update { $0.failed["connect", default: 0] += 1 }
                            done.succeed()
                        }
                    }
            }
        }
        for future in finished { try? await future.get() }
        samplers.cancel()
        let samples = await samplers.value
        let counts = totals.counts.withLock { $0 }
        let report = Report(url: text, listeners: listeners, connected: counts.connected, failed: counts.failed,
                            durationSeconds: (ContinuousClock.now - start).seconds, parts: counts.parts, gaps: counts.gaps,
                            underruns: counts.underruns, bytes: counts.bytes, timeToFirstPartMs: .init(counts.firstPart), server: samples.server,
                            loadgen: samples.loadgen, steadyServerCores: samples.steadyServerCores)
        try emit(report, json: json)
    }

    /// One listener's connection: the handshake, then frames.
    final class Listener: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let host: String
        let port: Int
        let path: String
        let totals: Totals
        let started: ContinuousClock.Instant
        private var buffer = ByteBuffer()
        private var upgraded = false
        private var messages = 0
        private var partSeconds = 0.32
        private var lastSequence: UInt32?
        /// The wall time the part numbered `clock.sequence` plays at.
        private var clock: (sequence: UInt32, at: ContinuousClock.Instant)?

        init(host: String, port: Int, path: String, totals: Totals, started: ContinuousClock.Instant) {
            self.host = host
            self.port = port
            self.path = path
            self.totals = totals
            self.started = started
        }

        func channelActive(context: ChannelHandlerContext) {
            let key = Data((0..<16).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: request)), promise: nil)
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var incoming = unwrapInboundIn(data)
            buffer.writeBuffer(&incoming)
            if !upgraded {
                guard let view = buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
                let head = buffer.readString(length: view.upperBound - buffer.readableBytesView.startIndex) ?? ""
                guard head.hasPrefix("HTTP/1.1 101") else {
                    let status = head.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
                    totals.update { $0.failed["HTTP \(status)", default: 0] += 1 }
                    context.close(promise: nil)
                    return
                }
                upgraded = true
                totals.update { $0.connected += 1 }
            }
            // Server frames: FIN/opcode, unmasked length (7, 16 or 64 bits), payload.
            while buffer.readableBytes >= 2 {
                let start = buffer.readerIndex
                let second = buffer.getInteger(at: start + 1, as: UInt8.self)!
                var length = Int(second & 0x7F)
                var headerLength = 2
                if length == 126 {
                    guard let value = buffer.getInteger(at: start + 2, as: UInt16.self) else { return }
                    length = Int(value)
                    headerLength = 4
                } else if length == 127 {
                    guard let value = buffer.getInteger(at: start + 2, as: UInt64.self) else { return }
                    length = Int(value)
                    headerLength = 10
                }
                guard buffer.readableBytes >= headerLength + length else { return }
                let opcode = buffer.getInteger(at: start, as: UInt8.self)! & 0x0F
                let payload = buffer.getSlice(at: start + headerLength, length: length)!
                buffer.moveReaderIndex(forwardBy: headerLength + length)
                message(opcode: opcode, payload)
            }
            buffer.discardReadBytes()
        }

        private func message(opcode: UInt8, _ payload: ByteBuffer) {
            messages += 1
            if opcode == 1, let text = payload.getString(at: payload.readerIndex, length: payload.readableBytes),
               let greeting = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] {
                partSeconds = greeting["partSeconds"] as? Double ?? partSeconds
                return
            }
            guard opcode == 2, messages > 2 else { return }  // the init segment is the first binary message
            let now = ContinuousClock.now
            guard let at = payload.readableBytesView.firstRange(of: Array("mfhd".utf8)),
                  let sequence = payload.getInteger(at: at.upperBound + 4, as: UInt32.self) else { return }
            let gap = lastSequence.map { sequence != $0 &+ 1 } ?? false
            let first = lastSequence == nil
            lastSequence = sequence
            var underrun = false
            if let clock {
                let due = clock.at + .seconds(Double(Int64(sequence) - Int64(clock.sequence)) * partSeconds)
                if now > due {
                    underrun = true
                    self.clock = (sequence, now)
                }
            } else {
                clock = (sequence, now + .seconds(1))
            }
            totals.update {
                $0.parts += 1
                $0.bytes += payload.readableBytes
                if gap { $0.gaps += 1 }
                if underrun { $0.underruns += 1 }
                if first { $0.firstPart.record((now - started).microseconds) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
