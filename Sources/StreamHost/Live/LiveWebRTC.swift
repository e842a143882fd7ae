import CWebRTC
import Foundation
import Logging
import MediaCore
import NIOCore
import NIOPosix
import StreamKit
import Synchronization

/// WebRTC playback of live mounts (WHEP, RFC 9725): each session is one listener that receives
/// the show's Opus rung as RTP (RFC 7587) over DTLS-SRTP, packet by packet as the ladder encodes
/// it (20 ms frames), for a delay well under a second.
///
/// One UDP socket per event loop (per core) serves the sessions given to it in turn (ICE-lite,
/// RFC 8445 §2.5: host candidates only, the
/// client's checks answered, none sent). Datagrams are told apart by their first byte
/// (RFC 7983): STUN binding requests are matched to their session by the `USERNAME`'s local
/// ufrag and authenticated with its password, and bind the session to the checked address;
/// DTLS and RTCP from that address go to it. The DTLS handshake (the host is the server,
/// `a=setup:passive`) and SRTP run in C (``CWebRTC``: OpenSSL and libsrtp2). All session state
/// lives on the socket's event loop; a show hands its packets there in one hop per batch, and
/// each is wrapped, encrypted (per session: SRTP keys are per session) and written to every
/// connected session, with one flush.
///
/// Each second every connected session gets an RTCP sender report (with the CNAME); a
/// session whose client has sent no STUN check (ICE consent, RFC 7675) for 30 s, or whose
/// handshake has not finished 15 s after the answer, is dropped.
final class LiveWebRTC: Sendable {
    /// Why a session cannot start.
    enum Failure: Error {
        /// The UDP socket could not be opened, or TLS could not make a certificate.
        case unavailable(String)
        /// ``LiveConfiguration/webRTCMaxSessions`` sessions are running.
        case full
    }

    let configuration: LiveConfiguration
    let metrics: HostMetrics
    let logger: Logger
    private let identity: DTLSIdentity?
    private let sockets = Mutex<EventLoopFuture<[WebRTCSocket]>?>(nil)
    private let nextSocket = Atomic<Int>(0)
    private let sessionCounts = Mutex<[String: Int]>([:])

    init(configuration: LiveConfiguration, metrics: HostMetrics, logger: Logger) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        identity = DTLSIdentity()
    }

    /// Sessions on `mount` now.
    func sessionCount(mount: String) -> Int { sessionCounts.withLock { $0[mount] ?? 0 } }

    var totalSessions: Int { sessionCounts.withLock { $0.values.reduce(0, +) } }

    /// Starts a session for `offer` on `mount` and returns its id and the SDP answer.
    /// - Parameter address: the IP the client reached the host on (the host candidate unless
    ///   ``LiveConfiguration/webRTCAddresses`` says otherwise).
    func open(offer: WebRTCOffer, mount: String, address: String?) async throws -> (id: String, answer: String) {
        guard let identity else { throw Failure.unavailable("OpenSSL could not make the DTLS certificate") }
        guard totalSessions < configuration.webRTCMaxSessions else { throw Failure.full }
        let all = try await bound()
        let socket = all[nextSocket.add(1, ordering: .relaxed).oldValue % all.count]
        let addresses = configuration.webRTCAddresses.isEmpty ? [address.flatMap { $0.contains(":") ? nil : $0 } ?? "127.0.0.1"] : configuration.webRTCAddresses
        let peer = try await socket.eventLoop.submit { () throws -> (id: String, ufrag: String, password: String, ssrc: UInt32) in
            let peer = try WebRTCPeer(offer: offer, mount: mount, identity: identity)
            socket.peers.value.add(peer)
            return (peer.id, peer.localUfrag, peer.localPassword, peer.ssrc)
        }.get()
        sessionCounts.withLock { $0[mount, default: 0] += 1 }
        let answer = WebRTCAnswer(offer: offer, iceUfrag: peer.ufrag, icePassword: peer.password, fingerprint: identity.fingerprint,
                                  candidates: addresses.map { ($0, socket.port) }, ssrc: peer.ssrc, streamName: "veza-\(mount)",
                                  sessionID: UInt64.random(in: 1..<(1 << 62)))
        return (peer.id, answer.sdp)
    }

    /// Ends a session (WHEP `DELETE`); false when there is none with this id on `mount`.
    func close(id: String, mount: String) async -> Bool {
        guard let all = try? await sockets.withLock({ $0 })?.get() else { return false }
        for socket in all where (try? await socket.eventLoop.submit { socket.peers.value.remove(id: id, mount: mount, reason: "ended by the client") }.get()) == true {
            return true
        }
        return false
    }

    /// Sends a show's new Opus packets to the sessions of `mount` (called by the show's task).
    func send(mount: String, startTime: Int64, packets: [EncodedPacket]) {
        guard sessionCount(mount: mount) > 0, let future = sockets.withLock({ $0 }) else { return }
        future.whenSuccess { all in
            for socket in all {
                socket.eventLoop.execute { socket.peers.value.send(mount: mount, startTime: startTime, packets: packets) }
            }
        }
    }

    /// Closes the socket (the host is stopping).
    func shutdown() {
        sockets.withLock { $0 }?.whenSuccess { all in
            for socket in all { socket.channel.close(promise: nil) }
        }
    }

    /// A session was removed (by its socket's event loop): the per-mount count goes down.
    func sessionEnded(mount: String) {
        sessionCounts.withLock { counts in
            counts[mount, default: 1] -= 1
            if counts[mount] == 0 { counts[mount] = nil }
        }
    }

    /// The UDP sockets, opened by the first session: one per event loop of the host's group,
    /// on consecutive ports from ``LiveConfiguration/webRTCPort`` (or free ones).
    private func bound() async throws -> [WebRTCSocket] {
        let future: EventLoopFuture<[WebRTCSocket]> = sockets.withLock { sockets in
            if let sockets { return sockets }
            let group = MultiThreadedEventLoopGroup.singleton
            let loops = Array(group.makeIterator())
            let port = configuration.webRTCPort
            let made = EventLoopFuture.whenAllSucceed(loops.enumerated().map { index, loop in
                WebRTCSocket.bind(on: loop, port: port == 0 ? 0 : port + index, owner: self)
            }, on: loops[0])
            sockets = made
            return made
        }
        do {
            return try await future.get()
        } catch {
            // Let a later session try again (the port may have been busy).
            sockets.withLock { if $0 === future { $0 = nil } }
            throw Failure.unavailable("cannot open UDP port \(configuration.webRTCPort) for WebRTC: \(error)")
        }
    }
}
