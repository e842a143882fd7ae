import CWebRTC
import Foundation
import Histogram
import NIOCore
import NIOPosix
import StreamKit
import Synchronization

/// `--whep URL`: N WebRTC listeners of a live mount, each a real WHEP session: an SDP offer
/// POSTed to the host, ICE (STUN binding requests with the host's credentials, as a
/// controlling agent, then consent checks every 2 s), a real DTLS handshake as the client
/// (OpenSSL through CWebRTC, the host's own glue) and SRTP decryption of every packet
/// (libsrtp2). Opus is not decoded: a listener's health is its packets (loss from sequence
/// numbers, underruns when no packet came for 100 ms, as a jitter buffer of that depth would
/// run dry) and its delay, from the host's RTCP sender reports (the wall-clock time that an RTP
/// timestamp was sent at) to the packet's arrival.
///
/// Each session has its own UDP socket, as browsers have: the host tells sessions apart by
/// address. All run on SwiftNIO's event loops.
enum WHEPLoad {
    struct Report: Codable {
        var url: String
        var sessions: Int
        var connected: Int
        var failed: [String: Int]
        var durationSeconds: Double
        var packets: Int
        var lost: Int
        var underruns: Int
        var timeToFirstPacketMs: LoadGenReport.Latency
        var delayToLiveEdgeMs: LoadGenReport.Latency
        var server: LoadGenReport.ProcessUse?
        var loadgen: LoadGenReport.ProcessUse
    }

    /// What every session adds to.
    struct Counts {
        var connected = 0
        var failed: [String: Int] = [:]
        var packets = 0
        var lost = 0
        var underruns = 0
        var firstPacket = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var delay = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    }
    typealias Totals = Tally<Counts>

    static func run(url text: String, sessions: Int, duration: Double, ramp: Double, serverPIDs: [Int32], json: String?) async throws {
        guard let components = URLComponents(string: text), let host = components.host, let port = components.port else {
            throw SetupError(description: "--whep \(text): an http://HOST:PORT/whep/{mount} URL")
        }
        guard let identity = veza_dtls_identity_create() else { throw SetupError(description: "OpenSSL could not make a certificate") }
        defer { veza_dtls_identity_free(identity) }
        var fingerprintBytes = [CChar](repeating: 0, count: Int(VEZA_DTLS_FINGERPRINT_SIZE))
        _ = veza_dtls_identity_fingerprint(identity, &fingerprintBytes, fingerprintBytes.count)
        let fingerprint = String(decoding: fingerprintBytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let shared = SharedIdentity(pointer: identity, fingerprint: fingerprint)
        let totals = Totals(Counts())
        let start = ContinuousClock.now
        let end = start + .seconds(duration)
        let samplers = sampleProcesses(serverPIDs: serverPIDs, steadyFrom: start + .seconds(ramp + 5))
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<sessions {
                let at = start + .seconds(ramp * Double(index) / Double(sessions))
                group.addTask {
                    try? await Task.sleep(until: at)
                    await Session.run(host: host, port: port, path: components.percentEncodedPath + (components.percentEncodedQuery.map { "?" + $0 } ?? ""),
                                      identity: shared, totals: totals, end: end)
                }
            }
        }
        samplers.cancel()
        let samples = await samplers.value
        let counts = totals.counts.withLock { $0 }
        let report = Report(
            url: text, sessions: sessions, connected: counts.connected, failed: counts.failed, durationSeconds: (ContinuousClock.now - start).seconds,
            packets: counts.packets, lost: counts.lost, underruns: counts.underruns, timeToFirstPacketMs: .init(counts.firstPacket),
            delayToLiveEdgeMs: .init(counts.delay), server: samples.server, loadgen: samples.loadgen)
        try emit(report, json: json)
    }

    /// The load generator's certificate, shared by its sessions (read-only once made).
    struct SharedIdentity: @unchecked Sendable {  // safe: immutable once made; CWebRTC documents an identity as shareable across threads
        let pointer: OpaquePointer
        let fingerprint: String
    }

    /// One WHEP session, from the offer to the end of the run.
    final class Session: ChannelInboundHandler {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let remote: SocketAddress
        let serverUfrag: String
        let serverPassword: String
        let localUfrag: String
        let totals: Totals
        let posted: ContinuousClock.Instant
        private let dtls: OpaquePointer
        private var srtp: OpaquePointer?
        private var channel: (any Channel)?
        private var lastSequence: UInt16?
        private var lastPacketAt: ContinuousClock.Instant?
        private var report: (ntp: Double, rtp: UInt32)?
        private var connected = false

        init(remote: SocketAddress, serverUfrag: String, serverPassword: String, localUfrag: String, dtls: OpaquePointer, totals: Totals,
             posted: ContinuousClock.Instant) {
            self.remote = remote
            self.serverUfrag = serverUfrag
            self.serverPassword = serverPassword
            self.localUfrag = localUfrag
            self.dtls = dtls
            self.totals = totals
            self.posted = posted
        }

        deinit {
            veza_dtls_free(dtls)
            if let srtp { veza_srtp_free(srtp) }
        }

        static func fail(_ totals: Totals, _ reason: String) {
            totals.update { $0.failed[reason, default: 0] += 1 }
        }

        static func run(host: String, port: Int, path: String, identity: SharedIdentity, totals: Totals, end: ContinuousClock.Instant) async {
            let localUfrag = randomText(8)
            let offer = [
                "v=0", "o=- \(UInt32.random(in: 1...UInt32.max)) 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0",
                "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 127.0.0.1", "a=mid:0", "a=recvonly", "a=rtcp-mux",
                "a=rtpmap:111 opus/48000/2", "a=ice-ufrag:\(localUfrag)", "a=ice-pwd:\(randomText(24))",
                "a=fingerprint:sha-256 \(identity.fingerprint)", "a=setup:actpass",
            ].joined(separator: "\r\n") + "\r\n"
            let posted = ContinuousClock.now
            let answer: String
            let location: String?
            do {
                let response = try await HTTPExchange.send(host: host, port: port, method: "POST", path: path, contentType: "application/sdp", body: offer)
                guard response.status == 201 else { return fail(totals, "HTTP \(response.status)") }
                answer = response.body
                location = response.headers["location"]
            } catch {
                return fail(totals, "POST failed")
            }
            func attribute(_ name: String) -> String? {
                answer.split(whereSeparator: \.isNewline).first { $0.hasPrefix("a=\(name):") }.map { String($0.dropFirst(name.count + 3)) }
            }
            guard let ufrag = attribute("ice-ufrag"), let password = attribute("ice-pwd"),
                  let fingerprint = attribute("fingerprint")?.split(separator: " ").last.map(String.init),
                  let candidate = attribute("candidate")?.split(separator: " "), candidate.count >= 6, let candidatePort = Int(candidate[5]),
                  let remote = try? SocketAddress(ipAddress: String(candidate[4]), port: candidatePort) else {
                return fail(totals, "answer unusable")
            }
            let loop = MultiThreadedEventLoopGroup.singleton.next()
            do {
                // The session lives on its event loop from the start.
                let bound = try await loop.submit { () throws -> NIOLoopBound<Session> in
                    guard let dtls = veza_dtls_create_client(identity.pointer, fingerprint, 1200) else { throw SetupError(description: "DTLS client") }
                    return NIOLoopBound(Session(remote: remote, serverUfrag: ufrag, serverPassword: password, localUfrag: localUfrag, dtls: dtls,
                                                totals: totals, posted: posted), eventLoop: loop)
                }.get()
                let channel = try await DatagramBootstrap(group: loop)
                    .channelOption(.socketOption(.so_rcvbuf), value: 1 << 18)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(bound.value) }
                    }
                    .bind(host: "127.0.0.1", port: 0).get()
                try await loop.submit {
                    bound.value.channel = channel
                    bound.value.checkConnectivity()
                    bound.value.startTimers(until: end)
                }.get()
                try? await Task.sleep(until: end)
                try await loop.submit { bound.value.finish() }.get()
                try? await channel.close()
            } catch {
                fail(totals, "UDP")
            }
            if let location {
                _ = try? await HTTPExchange.send(host: host, port: port, method: "DELETE", path: location, contentType: nil, body: "")
            }
        }

        private func startTimers(until end: ContinuousClock.Instant) {
            guard let channel else { return }
            let bound = NIOLoopBound(self, eventLoop: channel.eventLoop)
            channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(2), delay: .seconds(2)) { task in
                if ContinuousClock.now >= end { return task.cancel() }
                bound.value.checkConnectivity()
            }
            channel.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { task in
                if ContinuousClock.now >= end || bound.value.connected { return task.cancel() }
                bound.value.runHandshakeTimer()
            }
        }

        /// A STUN binding request (the first nominates the pair; then ICE consent).
        private func checkConnectivity() {
            let transaction = (0..<12).map { _ in UInt8.random(in: 0...255) }
            send(STUNMessage.bindingRequest(username: "\(serverUfrag):\(localUfrag)", password: serverPassword, transactionID: transaction,
                                            tieBreaker: UInt64.random(in: 0...UInt64.max)))
        }

        private func runHandshakeTimer() {
            if veza_dtls_timeout_ms(dtls) == 0 { _ = veza_dtls_handle_timeout(dtls) }
            flushDTLS()
        }

        private func flushDTLS() {
            var buffer = [UInt8](repeating: 0, count: 1500)
            while true {
                let length = buffer.withUnsafeMutableBufferPointer { veza_dtls_next_datagram(dtls, $0.baseAddress, $0.count) }
                guard length > 0 else { break }
                send(Array(buffer[0..<length]))
            }
        }

        private func send(_ bytes: [UInt8]) {
            guard let channel else { return }
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: channel.allocator.buffer(bytes: bytes)), promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            var bytes = envelope.data.getBytes(at: envelope.data.readerIndex, length: envelope.data.readableBytes) ?? []
            guard let first = bytes.first else { return }
            if STUNMessage.isSTUN(firstByte: first) {
                // The binding response: the pair works; the handshake starts (the ClientHello is ready).
                if srtp == nil, STUNMessage(parsing: bytes)?.type == STUNMessage.bindingSuccess { flushDTLS() }
            } else if (20...63).contains(first) {
                _ = bytes.withUnsafeBufferPointer { veza_dtls_feed(dtls, $0.baseAddress, $0.count) }
                flushDTLS()
                if srtp == nil, veza_dtls_state(dtls) == VEZA_DTLS_CONNECTED {
                    var local = [UInt8](repeating: 0, count: Int(VEZA_SRTP_KEY_SALT_LEN))
                    var remoteKeys = local
                    if veza_dtls_srtp_keys(dtls, &local, &remoteKeys) == 0 { srtp = veza_srtp_create(local, remoteKeys) }
                    connected = srtp != nil
                    if connected { totals.update { $0.connected += 1 } } else { Self.fail(totals, "SRTP keys") }
                } else if veza_dtls_state(dtls) < 0 {
                    Self.fail(totals, "DTLS")
                }
            } else if RTP.isRTPOrRTCP(firstByte: first), let srtp {
                var length = Int32(bytes.count)
                if RTP.isRTCP(bytes) {
                    guard bytes.withUnsafeMutableBufferPointer({ veza_srtp_unprotect_rtcp(srtp, $0.baseAddress, &length) }) == 0,
                          length >= 28, bytes[1] == 200 else { return }
                    let ntp = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    let rtp = bytes[16..<20].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    report = (Double(ntp >> 32) - 2_208_988_800 + Double(ntp & 0xFFFF_FFFF) / 4_294_967_296, rtp)
                    return
                }
                guard bytes.withUnsafeMutableBufferPointer({ veza_srtp_unprotect(srtp, $0.baseAddress, &length) }) == 0, length >= 12 else { return }
                received(sequence: UInt16(bytes[2]) << 8 | UInt16(bytes[3]), timestamp: bytes[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
            }
        }

        private func received(sequence: UInt16, timestamp: UInt32) {
            let now = ContinuousClock.now
            let lost = lastSequence.map { Int(sequence &- $0 &- 1) }.map { $0 < 0x8000 ? $0 : 0 } ?? 0
            let underrun = lastPacketAt.map { now - $0 > .milliseconds(100) } ?? false
            let first = lastPacketAt == nil
            var delay: Double?
            if let report {
                let sent = report.ntp + Double(Int32(bitPattern: timestamp &- report.rtp)) / 48_000
                delay = Date().timeIntervalSince1970 - sent
            }
            lastSequence = sequence
            lastPacketAt = now
            totals.update {
                $0.packets += 1
                $0.lost += lost
                if underrun { $0.underruns += 1 }
                if first { $0.firstPacket.record((now - posted).microseconds) }
                if let delay { $0.delay.record(UInt64(max(0, delay) * 1e6)) }
            }
        }

        private func finish() {
            // A run that ends with a packet overdue is an underrun too.
            if let lastPacketAt, ContinuousClock.now - lastPacketAt > .milliseconds(100) { totals.update { $0.underruns += 1 } }
        }

        static func randomText(_ count: Int) -> String {
            let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            return String((0..<count).map { _ in alphabet.randomElement()! })
        }
    }
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`), for WHEP's POST and
/// DELETE: the response's status, fields (lower-case names) and body.
enum HTTPExchange {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    static func send(host: String, port: Int, method: String, path: String, contentType: String?, body: String) async throws -> Response {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: host, port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        return try await channel.executeThenClose { inbound, outbound in
            var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n"
            if let contentType { head += "Content-Type: \(contentType)\r\n" }
            try await outbound.write(ByteBuffer(string: head + "\r\n" + body))
            var received = ByteBuffer()
            for try await var chunk in inbound { received.writeBuffer(&chunk) }
            let text = String(decoding: received.readableBytesView, as: UTF8.self)
            let parts = text.components(separatedBy: "\r\n\r\n")
            let lines = (parts.first ?? "").components(separatedBy: "\r\n")
            let status = Int(lines.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
            var headers: [String: String] = [:]
            for line in lines.dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            return Response(status: status, headers: headers, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
        }
    }
}
