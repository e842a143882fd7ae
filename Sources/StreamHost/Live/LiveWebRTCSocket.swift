import CWebRTC
import Logging
import MediaCore
import NIOCore
import NIOPosix
import StreamKit

// The transport under ``LiveWebRTC``: its UDP sockets, and the sessions on each socket's event
// loop (ICE-lite STUN answers, DTLS and RTCP to their session, RTP out to every session).

/// The UDP socket and the sessions on its event loop.
struct WebRTCSocket: Sendable {
    let channel: any Channel
    let port: Int
    let peers: NIOLoopBound<WebRTCPeers>
    var eventLoop: any EventLoop { channel.eventLoop }

    static func bind(on eventLoop: any EventLoop, port: Int, owner: LiveWebRTC) -> EventLoopFuture<WebRTCSocket> {
        DatagramBootstrap(group: eventLoop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            // Bursts to many sessions at once: room for them in the kernel.
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let peers = WebRTCPeers(owner: owner, channel: channel)
                    try channel.pipeline.syncOperations.addHandler(WebRTCDatagramHandler(peers: peers))
                }
            }
            .bind(host: "0.0.0.0", port: port)
            .flatMapThrowing { channel in
                let peers = try channel.pipeline.syncOperations.handler(type: WebRTCDatagramHandler.self).peers
                peers.startTimer()
                return WebRTCSocket(channel: channel, port: channel.localAddress?.port ?? port, peers: NIOLoopBound(peers, eventLoop: channel.eventLoop))
            }
    }
}

/// The socket's datagrams, to ``WebRTCPeers``.
final class WebRTCDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let peers: WebRTCPeers

    init(peers: WebRTCPeers) { self.peers = peers }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        peers.receive(envelope.data, from: envelope.remoteAddress)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A datagram that could not be sent or received (ICMP unreachable): not fatal.
    }
}

/// Every session, on the socket's event loop (not thread-safe: used only there).
final class WebRTCPeers {
    unowned let owner: LiveWebRTC
    let channel: any Channel
    private var byID: [String: WebRTCPeer] = [:]
    private var byUfrag: [String: WebRTCPeer] = [:]
    private var byAddress: [SocketAddress: WebRTCPeer] = [:]
    private var timer: RepeatedTask?

    init(owner: LiveWebRTC, channel: any Channel) {
        self.owner = owner
        self.channel = channel
    }

    func startTimer() {
        let loopSelf = NIOLoopBound(self, eventLoop: channel.eventLoop)
        timer = channel.eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { _ in
            loopSelf.value.tick()
        }
    }

    func add(_ peer: WebRTCPeer) {
        byID[peer.id] = peer
        byUfrag[peer.localUfrag] = peer
    }

    @discardableResult
    func remove(id: String, mount: String? = nil, reason: String) -> Bool {
        guard let peer = byID[id], mount == nil || peer.mount == mount else { return false }
        byID[id] = nil
        byUfrag[peer.localUfrag] = nil
        if let address = peer.address, byAddress[address] === peer { byAddress[address] = nil }
        // A close_notify, so that the client ends at once instead of on its consent timeout.
        write(peer.shutdown(), to: peer.address)
        channel.flush()
        peer.timer?.cancel()
        owner.sessionEnded(mount: peer.mount)
        owner.logger.debug("WebRTC session ended", metadata: ["mount": "\(peer.mount)", "session": "\(peer.id)", "reason": "\(reason)"])
        return true
    }

    // MARK: Datagrams in

    func receive(_ datagram: ByteBuffer, from address: SocketAddress) {
        guard let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self) else { return }
        let bytes = datagram.getBytes(at: datagram.readerIndex, length: datagram.readableBytes) ?? []
        if STUNMessage.isSTUN(firstByte: first) {
            stun(bytes, from: address)
        } else if (20...63).contains(first) {
            guard let peer = byAddress[address] else { return }
            write(peer.receiveDTLS(bytes), to: address)
            if peer.dtlsClosed {
                remove(id: peer.id, reason: "the client closed DTLS")
            } else if peer.dtlsFailed {
                owner.logger.info("WebRTC DTLS failed", metadata: ["mount": "\(peer.mount)", "error": "\(peer.dtlsError)"])
                remove(id: peer.id, reason: "DTLS failed: \(peer.dtlsError)")
            } else if peer.becameConnected() {
                owner.logger.debug("WebRTC session connected", metadata: ["mount": "\(peer.mount)", "session": "\(peer.id)"])
            }
            schedule(peer)
        } else if RTP.isRTPOrRTCP(firstByte: first), let peer = byAddress[address], RTP.isRTCP(bytes) {
            peer.receiveRTCP(bytes)
        }
    }

    private func stun(_ bytes: [UInt8], from address: SocketAddress) {
        guard let message = STUNMessage(parsing: bytes), message.type == STUNMessage.bindingRequest,
              let username = message.username, let ufrag = username.split(separator: ":").first,
              let peer = byUfrag[String(ufrag)], username == "\(peer.localUfrag):\(peer.remoteUfrag)",
              message.hasIntegrity(password: peer.localPassword),
              let ip = address.ipBytes, let port = address.port else { return }
        write(message.bindingSuccess(address: ip, port: UInt16(port), password: peer.localPassword), to: address)
        peer.lastConsent = .now()
        // A lite agent takes the pair the controlling agent checks (and nominates) last.
        if peer.address == nil || message.attribute(STUNMessage.Attribute.useCandidate) != nil, peer.address != address {
            if let old = peer.address, byAddress[old] === peer { byAddress[old] = nil }
            peer.address = address
            byAddress[address] = peer
        }
    }

    /// Arms the DTLS retransmission timer while the handshake runs.
    private func schedule(_ peer: WebRTCPeer) {
        peer.timer?.cancel()
        peer.timer = nil
        guard let delay = peer.retransmissionDelay else { return }
        let loopSelf = NIOLoopBound(self, eventLoop: channel.eventLoop)
        let id = peer.id
        peer.timer = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(delay))) {
            let peers = loopSelf.value
            guard let peer = peers.byID[id] else { return }
            peers.write(peer.retransmit(), to: peer.address)
            peers.channel.flush()
            peers.schedule(peer)
        }
    }

    // MARK: Datagrams out

    private func write(_ datagrams: [[UInt8]], to address: SocketAddress?) {
        guard let address else { return }
        for datagram in datagrams {
            channel.write(AddressedEnvelope(remoteAddress: address, data: channel.allocator.buffer(bytes: datagram)), promise: nil)
        }
    }

    private func write(_ datagram: [UInt8], to address: SocketAddress?) {
        write([datagram], to: address)
    }

    func send(mount: String, startTime: Int64, packets: [EncodedPacket]) {
        var bytes = 0
        for peer in byID.values where peer.mount == mount && peer.connected {
            guard let address = peer.address else { continue }
            for datagram in peer.rtp(startTime: startTime, packets: packets, allocator: channel.allocator) {
                bytes += datagram.readableBytes
                channel.write(AddressedEnvelope(remoteAddress: address, data: datagram), promise: nil)
            }
        }
        channel.flush()
        owner.metrics.liveBytesOut(bytes)
    }

    /// Each second: sender reports, and sessions whose client has gone are dropped.
    private func tick() {
        let now = NIODeadline.now()
        for peer in Array(byID.values) {
            if peer.connected {
                if now - peer.lastConsent > .seconds(30) {
                    remove(id: peer.id, reason: "no ICE consent for 30 s")
                    continue
                }
                write(peer.senderReport(), to: peer.address)
            } else if now - peer.created > .seconds(15) {
                remove(id: peer.id, reason: "ICE and DTLS did not complete within 15 s")
            }
        }
        channel.flush()
    }
}

extension SocketAddress {
    /// The address's bytes (4 for IPv4, 16 for IPv6).
    var ipBytes: [UInt8]? {
        switch self {
        case .v4(let address):
            return withUnsafeBytes(of: address.address.sin_addr.s_addr) { Array($0) }
        case .v6(let address):
            return withUnsafeBytes(of: address.address.sin6_addr) { Array($0) }
        default:
            return nil
        }
    }
}
