import Foundation
import HTTPTypes
import Logging
import MediaCore
import NIOCore

/// The first handler of every connection: it looks at the connection's first bytes and, when
/// they are a live source's request (`PUT /live/…` or `SOURCE /…`), takes the connection over;
/// otherwise it hands the bytes on to the HTTP codec and leaves the pipeline.
///
/// A source's body is the show itself: no `Content-Length`, lasting hours (or `chunked`, from
/// clients such as curl). It is cut into whole frames or Ogg pages (``StreamFramer``) and
/// relayed to the mount's listeners as it arrives, on the event loop. A source that sends
/// faster than real time by more than ``LiveConfiguration/sourceBurstSeconds`` is not read
/// until real time catches up (TCP back-pressure, nothing buffered); one that sends nothing for
/// ``LiveConfiguration/sourceTimeout`` is disconnected.
final class LiveSourceHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    struct Dependencies: Sendable {
        let mounts: LiveMounts
        let auth: HostAuth
        let metrics: HostMetrics
        let logger: Logger
    }

    private let dependencies: Dependencies
    private var configuration: LiveConfiguration { dependencies.mounts.configuration }

    private enum State {
        case sniffing(ByteBuffer)
        case head(ByteBuffer)
        case authorising(pending: ByteBuffer)
        case streaming(Session)
        case done
    }

    private struct Session {
        var mount: LiveMount
        var generation: UInt64
        var head: SourceRequestHead
        var framer: StreamFramer
        var chunked: ChunkedBody?
        /// A declared `Content-Length` (a client sending a file): the body ends after it.
        var remaining: Int?
        var started: NIODeadline
        var lastData: NIODeadline
        var mediaSeconds = 0.0
        var bytes = 0
    }

    private var state: State = .sniffing(ByteBuffer())
    private var session: Session? {
        if case .streaming(let session) = state { return session }
        return nil
    }
    /// A `read` held back while the source is ahead of real time.
    private var readHeld = false
    private var resumeTask: Scheduled<Void>?
    private var idleTask: RepeatedTask?

    init(dependencies: Dependencies) {
        self.dependencies = dependencies
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        switch state {
        case .sniffing(var seen):
            seen.writeBuffer(&bytes)
            switch SourceRequestHead.recognise(seen.readableBytesView) {
            case .undecided:
                state = .sniffing(seen)
            case .notSource:
                state = .done
                context.fireChannelRead(wrapInboundOut(seen))
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            case .source:
                context.fireUserInboundEventTriggered(ConnectionGuard.TakenOver())
                // A source sends at most a few hundred kbit/s: small reads keep what is read
                // ahead of real time close to the allowance (a 64 KiB read is 4 s of 128 kbit/s).
                try? context.channel.syncOptions?.setOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 8192))
                state = .head(ByteBuffer())
                receiveHead(context: context, bytes: seen)
            }
        case .head:
            receiveHead(context: context, bytes: bytes)
        case .authorising(var pending):
            pending.writeBuffer(&bytes)
            state = .authorising(pending: pending)
        case .streaming:
            receiveBody(context: context, bytes: bytes)
        case .done:
            break
        }
    }

    /// The server is shutting down gracefully (it waits for every connection to end): a live
    /// source would keep it waiting for the rest of the show, so its session ends now and its
    /// listeners' streams with it.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, case .streaming = state {
            endSession(context: context, reason: "host shutting down", respond: true)
        }
        // The listener allows half-closure: a source that exits (or is killed) shows up as the
        // end of its input, not as an inactive channel, and ends its session at once.
        if case ChannelEvent.inputClosed = event, case .streaming = state {
            endSession(context: context, reason: "source closed its connection", respond: true)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        endSession(context: context, reason: "source disconnected", respond: false)
        context.fireChannelInactive()
    }

    // MARK: Outbound: back-pressure

    func read(context: ChannelHandlerContext) {
        guard let session, let due = readResumeDeadline(session) else {
            context.read()
            return
        }
        readHeld = true
        guard resumeTask == nil else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        resumeTask = context.eventLoop.scheduleTask(deadline: due) {
            let (handler, context) = loopBound.value
            handler.resumeTask = nil
            if handler.readHeld {
                handler.readHeld = false
                handler.read(context: context)
            }
        }
    }

    /// When the source is ahead of real time by more than its allowance: when to read again.
    private func readResumeDeadline(_ session: Session) -> NIODeadline? {
        let elapsed = Double((NIODeadline.now() - session.started).nanoseconds) / 1e9
        let ahead = session.mediaSeconds - elapsed
        guard ahead > configuration.sourceBurstSeconds else { return nil }
        return .now() + .nanoseconds(Int64((ahead - configuration.sourceBurstSeconds) * 1e9) + 1_000_000)
    }

    // MARK: The head

    private func receiveHead(context: ChannelHandlerContext, bytes: ByteBuffer) {
        guard case .head(var buffer) = state else { return }
        var bytes = bytes
        buffer.writeBuffer(&bytes)
        let view = buffer.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else {
            state = .head(buffer)
            if buffer.readableBytes > SourceRequestHead.maximumLength {
                refuse(context: context, version: "HTTP/1.1", APIError(.badRequest, code: "bad_request", "the source's request head is over 16 KiB"))
            }
            return
        }
        let headLength = end.lowerBound - view.startIndex
        let head: SourceRequestHead
        do {
            head = try SourceRequestHead.parse(view.prefix(headLength))
        } catch {
            refuse(context: context, version: "HTTP/1.1", APIError(.badRequest, code: "bad_request", "\(error)"))
            return
        }
        buffer.moveReaderIndex(forwardBy: headLength + 4)
        state = .authorising(pending: buffer)
        authorise(context: context, head: head)
    }

    private func authorise(context: ChannelHandlerContext, head: SourceRequestHead) {
        let version = head.method == .source ? "HTTP/1.0" : "HTTP/1.1"
        guard let name = head.mountName else {
            refuse(context: context, version: version, APIError.notFound("no live mount at \(head.path.prefix(80))"))
            return
        }
        switch head.credentials {
        case .basic(_, let password):
            guard let mount = dependencies.mounts.mount(name) else {
                refuse(context: context, version: version, APIError.notFound("no live mount \(name)"))
                return
            }
            guard !mount.configuration.sourcePassword.isEmpty,
                  constantTimeEqual(Array(password.utf8), Array(mount.configuration.sourcePassword.utf8)) else {
                refuse(context: context, version: version, Self.unauthorised("wrong source credentials for \(name)"))
                return
            }
            start(context: context, head: head, mount: mount)
        case .bearer(let token):
            let auth = dependencies.auth
            let mounts = dependencies.mounts
            let future = context.eventLoop.makeFutureWithTask { () async throws -> LiveMount? in
                let principal = try await auth.verify(token: token)
                guard principal.allows(.live) else { throw APIError.forbidden("the token has no live scope") }
                if let mount = mounts.mount(name) { return mount }
                guard mounts.configuration.createMountsOnConnect else { return nil }
                return try? mounts.create(LiveMountConfiguration(name: name, sourcePassword: "", record: mounts.configuration.record,
                                                                         openListening: mounts.configuration.openListening))
            }
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            future.whenComplete { result in
                let (handler, context) = loopBound.value
                guard case .authorising = handler.state else { return }
                switch result {
                case .success(let mount?): handler.start(context: context, head: head, mount: mount)
                case .success(nil): handler.refuse(context: context, version: version, APIError.notFound("no live mount \(name)"))
                case .failure(let error): handler.refuse(context: context, version: version, APIError(mapping: error))
                }
            }
        case nil:
            if dependencies.auth.isPublic, let mount = dependencies.mounts.mount(name) {
                start(context: context, head: head, mount: mount)
            } else {
                refuse(context: context, version: version, Self.unauthorised("a source needs the mount's password (basic auth) or a token with the live scope"))
            }
        }
    }

    static func unauthorised(_ message: String) -> APIError {
        APIError(.unauthorized, code: "unauthorized", message, headers: [.wwwAuthenticate: #"Basic realm="veza-stream live""#])
    }

    private func start(context: ChannelHandlerContext, head: SourceRequestHead, mount: LiveMount) {
        let version = head.method == .source ? "HTTP/1.0" : "HTTP/1.1"
        guard case .authorising(let pending) = state else { return }
        guard let contentType = head.field("content-type") else {
            refuse(context: context, version: version, APIError(.unsupportedMediaType, code: "unsupported_media_type",
                                                                "a source must declare its Content-Type (audio/mpeg, audio/aac, audio/ogg)"))
            return
        }
        guard let format = LiveStreamFormat(contentType: contentType) else {
            refuse(context: context, version: version, APIError(.unsupportedMediaType, code: "unsupported_media_type",
                                                                "\(contentType.prefix(60)) is not a live format: audio/mpeg, audio/aac (ADTS), audio/ogg or application/ogg"))
            return
        }
        let chunked = head.field("transfer-encoding")?.lowercased().contains("chunked") == true
        let info = LiveMount.SourceInfo(
            format: format, name: head.field("ice-name"), genre: head.field("ice-genre"), description: head.field("ice-description"),
            isPublic: head.field("ice-public") == "1", bitrate: head.field("ice-bitrate") ?? head.field("ice-audio-info"),
            userAgent: head.field("user-agent"), address: context.channel.remoteAddress?.ipAddress ?? "unknown", connectedAt: Date())
        let channel = NIOLoopBound(context.channel, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let generation: UInt64
        do {
            generation = try mount.claim(info) {
                eventLoop.execute { channel.value.close(promise: nil) }
            }
        } catch {
            refuse(context: context, version: version, APIError(.conflict, code: "mount_busy", "mount \(mount.name) already has a source"))
            return
        }
        dependencies.metrics.liveSourceConnected(mount: mount.name, format: format.rawValue)
        dependencies.logger.info("live source connected", metadata: [
            "mount": "\(mount.name)", "format": "\(format.rawValue)", "method": "\(head.method.rawValue)", "client": "\(info.address)",
        ])
        let now = NIODeadline.now()
        state = .streaming(Session(mount: mount, generation: generation, head: head, framer: StreamFramer(format: format),
                                   chunked: chunked ? ChunkedBody() : nil,
                                   remaining: chunked ? nil : head.field("content-length").flatMap { Int($0) }.flatMap { $0 >= 0 ? $0 : nil },
                                   started: now, lastData: now))
        // Icecast's answers: SOURCE is accepted with 200 at once; PUT with 100 Continue when
        // asked for (its final 200 comes when the show ends).
        if head.method == .source {
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer(string: "HTTP/1.0 200 OK\r\n\r\n"))), promise: nil)
        } else if head.field("expect")?.lowercased() == "100-continue" {
            context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\n"))), promise: nil)
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTask = context.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            let (handler, context) = loopBound.value
            handler.checkIdle(context: context)
        }
        if pending.readableBytes > 0 { receiveBody(context: context, bytes: pending) }
    }

    // MARK: The body

    private func receiveBody(context: ChannelHandlerContext, bytes: ByteBuffer) {
        guard case .streaming(var session) = state else { return }
        var bytes = bytes
        var ended = false
        var payload: [UInt8]
        if var chunked = session.chunked {
            do {
                (payload, ended) = try chunked.decode(&bytes)
            } catch {
                state = .streaming(session)
                endSession(context: context, reason: "malformed chunked body", respond: true,
                           error: APIError(.badRequest, code: "bad_request", "malformed chunked body"))
                return
            }
            session.chunked = chunked
        } else if let remaining = session.remaining {
            payload = bytes.readBytes(length: min(remaining, bytes.readableBytes)) ?? []
            session.remaining = remaining - payload.count
            ended = session.remaining == 0
        } else {
            payload = bytes.readBytes(length: bytes.readableBytes) ?? []
        }
        session.bytes += payload.count
        session.lastData = .now()
        let frames = session.framer.push(payload)
        for frame in frames {
            session.mediaSeconds += frame.duration
            session.mount.publish(frame, generation: session.generation)
        }
        dependencies.metrics.liveBytesIn(payload.count)
        state = .streaming(session)
        if session.framer.frameCount == 0, session.framer.skippedBytes + session.framer.bufferedBytes > configuration.maxUnsyncedBytes {
            endSession(context: context, reason: "not \(session.framer.format.rawValue) data", respond: true,
                       error: APIError(.unprocessableContent, code: "unprocessable_media",
                                       "no \(session.framer.format.contentType) frame in the first \(configuration.maxUnsyncedBytes) bytes"))
            return
        }
        if ended { endSession(context: context, reason: "source ended its body", respond: true) }
    }

    private func checkIdle(context: ChannelHandlerContext) {
        guard let session else { return }
        let idle = Double((NIODeadline.now() - session.lastData).nanoseconds) / 1e9
        // Time spent holding reads back is not the source's silence.
        if idle > configuration.sourceTimeout, !readHeld {
            endSession(context: context, reason: "source sent nothing for \(Int(configuration.sourceTimeout)) s", respond: false)
        }
    }

    /// Ends the session (listeners' streams end) and closes the connection, answering a PUT
    /// with its final status when `respond`.
    private func endSession(context: ChannelHandlerContext, reason: String, respond: Bool, error: APIError? = nil) {
        idleTask?.cancel()
        idleTask = nil
        resumeTask?.cancel()
        resumeTask = nil
        guard case .streaming(let session) = state else { return }
        state = .done
        session.mount.release(generation: session.generation)
        dependencies.metrics.liveSourceDisconnected(mount: session.mount.name)
        dependencies.logger.info("live source ended", metadata: [
            "mount": "\(session.mount.name)", "reason": "\(reason)", "bytes": "\(session.bytes)",
            "seconds": "\(String(format: "%.1f", session.mediaSeconds))", "skipped": "\(session.framer.skippedBytes)",
        ])
        if respond, session.head.method == .put {
            if let error {
                dependencies.metrics.liveSourceRefused(error.code)
                write(context: context, version: "HTTP/1.1", error)
            } else {
                context.writeAndFlush(wrapOutboundOut(.byteBuffer(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))))
                    .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
                return
            }
        } else if let error {
            dependencies.metrics.liveSourceRefused(error.code)
            dependencies.logger.warning("live source refused mid-stream", metadata: ["mount": "\(session.mount.name)", "error": "\(error.message)"])
            context.close(promise: nil)
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: Answers

    private func refuse(context: ChannelHandlerContext, version: String, _ error: APIError) {
        state = .done
        dependencies.metrics.liveSourceRefused(error.code)
        dependencies.logger.info("live source refused", metadata: ["status": "\(error.status.code)", "error": "\(error.message)"])
        write(context: context, version: version, error)
    }

    private func write(context: ChannelHandlerContext, version: String, _ error: APIError) {
        let body = error.jsonBody
        var head = "\(version) \(error.status.code) \(error.status.reasonPhrase)\r\n"
        for field in error.headers { head += "\(field.name): \(field.value)\r\n" }
        if let retryAfter = error.retryAfter { head += "Retry-After: \(retryAfter)\r\n" }
        head += "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var buffer = ByteBuffer(string: head)
        buffer.writeBytes(body)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// Constant-time comparison of two secrets (the length is not hidden).
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}

/// A `Transfer-Encoding: chunked` body decoded as it arrives (RFC 9112 §7.1), for source
/// clients that send one (curl); extensions and trailers are skipped.
struct ChunkedBody {
    private enum Phase {
        case size(String)
        case data(remaining: Int)
        case dataEnd(Int)
        case trailer(String)
        case finished
    }

    private var phase: Phase = .size("")

    enum Failure: Error { case malformed }

    /// Consumes `bytes`; returns the payload they carry and whether the body ended.
    mutating func decode(_ bytes: inout ByteBuffer) throws(Failure) -> ([UInt8], Bool) {
        var payload: [UInt8] = []
        while bytes.readableBytes > 0 {
            switch phase {
            case .size(var line):
                let byte = bytes.readInteger(as: UInt8.self)!
                if byte == 10 {
                    let digits = line.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                    guard let size = Int(digits, radix: 16), size >= 0, size < 1 << 24 else { throw .malformed }
                    phase = size == 0 ? .trailer("") : .data(remaining: size)
                } else if byte != 13 {
                    line.append(Character(UnicodeScalar(byte)))
                    guard line.utf8.count <= 64 else { throw .malformed }
                    phase = .size(line)
                }
            case .data(let remaining):
                let count = min(remaining, bytes.readableBytes)
                payload += bytes.readBytes(length: count) ?? []
                phase = remaining - count == 0 ? .dataEnd(0) : .data(remaining: remaining - count)
            case .dataEnd(let seen):
                let byte = bytes.readInteger(as: UInt8.self)!
                if byte == 10 { phase = .size("") } else if byte == 13, seen == 0 { phase = .dataEnd(1) } else { throw .malformed }
            case .trailer(var line):
                let byte = bytes.readInteger(as: UInt8.self)!
                if byte == 10 {
                    if line.isEmpty { phase = .finished; return (payload, true) }
                    phase = .trailer("")
                } else if byte != 13 {
                    line.append(Character(UnicodeScalar(byte)))
                    guard line.utf8.count <= 1024 else { throw .malformed }
                    phase = .trailer(line)
                }
            case .finished:
                return (payload, true)
            }
        }
        if case .finished = phase { return (payload, true) }
        return (payload, false)
    }
}
