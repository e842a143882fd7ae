import CWebRTC
import Foundation
import MediaCore
import NIOCore
import StreamKit

/// One WebRTC session: its ICE credentials, DTLS association, SRTP keys and RTP stream.
/// Used only on the socket's event loop.
final class WebRTCPeer {
    let id: String
    let mount: String
    let localUfrag: String
    let localPassword: String
    let remoteUfrag: String
    let payloadType: Int
    let ssrc: UInt32
    let created = NIODeadline.now()
    var lastConsent = NIODeadline.now()
    var address: SocketAddress?
    var timer: Scheduled<Void>?
    private let dtls: OpaquePointer
    private var srtp: OpaquePointer?
    // RTP stream state.
    private var sequence = UInt16.random(in: 0...UInt16.max)
    private let timestampBase = UInt32.random(in: 0...UInt32.max)
    /// The timestamp that continues the stream (nil before the first packet).
    private var expectedTimestamp: UInt32?
    private var lastSent: (timestamp: UInt32, at: Date)?
    private var packetsSent: UInt32 = 0
    private var octetsSent: UInt32 = 0

    init(offer: WebRTCOffer, mount: String, identity: DTLSIdentity) throws {
        guard let dtls = veza_dtls_create_server(identity.pointer, offer.fingerprint, 1200) else {
            throw LiveWebRTC.Failure.unavailable("cannot start a DTLS association")
        }
        self.dtls = dtls
        id = Self.random(32, from: "0123456789abcdef")
        self.mount = mount
        localUfrag = Self.random(8)
        localPassword = Self.random(24)
        remoteUfrag = offer.iceUfrag
        payloadType = offer.opusPayloadType
        ssrc = UInt32.random(in: 1...UInt32.max)
    }

    deinit {
        veza_dtls_free(dtls)
        if let srtp { veza_srtp_free(srtp) }
    }

    static func random(_ count: Int, from alphabet: String = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") -> String {
        let characters = Array(alphabet)
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in characters.randomElement(using: &generator)! })
    }

    var connected: Bool { srtp != nil }
    var dtlsFailed: Bool { veza_dtls_state(dtls) == VEZA_DTLS_FAILED }
    var dtlsClosed: Bool { veza_dtls_state(dtls) == VEZA_DTLS_CLOSED }
    var dtlsError: String { String(cString: veza_dtls_error(dtls)) }

    /// Feeds a DTLS datagram; returns the datagrams to send back.
    func receiveDTLS(_ bytes: [UInt8]) -> [[UInt8]] {
        _ = bytes.withUnsafeBufferPointer { veza_dtls_feed(dtls, $0.baseAddress, $0.count) }
        return drain()
    }

    /// True once, when the handshake has just completed and the SRTP keys are in place.
    func becameConnected() -> Bool {
        guard srtp == nil, veza_dtls_state(dtls) == VEZA_DTLS_CONNECTED else { return false }
        var local = [UInt8](repeating: 0, count: Int(VEZA_SRTP_KEY_SALT_LEN))
        var remote = local
        guard veza_dtls_srtp_keys(dtls, &local, &remote) == 0, let session = veza_srtp_create(local, remote) else { return false }
        srtp = session
        return true
    }

    /// Milliseconds until the handshake's retransmission timer fires (nil: none running).
    var retransmissionDelay: Int? {
        let delay = veza_dtls_timeout_ms(dtls)
        return delay >= 0 && veza_dtls_state(dtls) == VEZA_DTLS_HANDSHAKING ? Int(delay) : nil
    }

    func retransmit() -> [[UInt8]] {
        _ = veza_dtls_handle_timeout(dtls)
        return drain()
    }

    func shutdown() -> [[UInt8]] {
        veza_dtls_shutdown(dtls)
        return drain()
    }

    private func drain() -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 1500)
        while true {
            let length = buffer.withUnsafeMutableBufferPointer { veza_dtls_next_datagram(dtls, $0.baseAddress, $0.count) }
            guard length > 0 else { break }
            datagrams.append(Array(buffer[0..<length]))
        }
        return datagrams
    }

    /// RTCP from the client (receiver reports, NACKs): authenticated and dropped for now (the
    /// host does not retransmit: loss on the way shows as concealment, as with any live feed).
    func receiveRTCP(_ bytes: [UInt8]) {
        guard let srtp else { return }
        var packet = bytes
        var length = Int32(packet.count)
        _ = packet.withUnsafeMutableBufferPointer { veza_srtp_unprotect_rtcp(srtp, $0.baseAddress, &length) }
    }

    /// The SRTP datagrams of `packets` (Opus, 20 ms each), the first decoded at `startTime`
    /// (48 kHz, the show's timeline): each packet is written once, into the buffer it is sent
    /// from, and encrypted there.
    func rtp(startTime: Int64, packets: [EncodedPacket], allocator: ByteBufferAllocator) -> [ByteBuffer] {
        guard let srtp else { return [] }
        var datagrams: [ByteBuffer] = []
        datagrams.reserveCapacity(packets.count)
        var time = startTime
        let spare = Int(VEZA_SRTP_RTP_SPARE)
        for packet in packets {
            let timestamp = timestampBase &+ UInt32(truncatingIfNeeded: time)
            // The marker bit starts a talkspurt: the first packet, and after a jump in the
            // timeline (a new show on the mount).
            let marker = expectedTimestamp != timestamp
            var buffer = allocator.buffer(capacity: 12 + packet.data.count + spare)
            buffer.writeBytes(RTP.header(payloadType: payloadType, sequenceNumber: sequence, timestamp: timestamp, ssrc: ssrc, marker: marker))
            buffer.writeBytes(packet.data)
            buffer.writeRepeatingByte(0, count: spare)
            var length = Int32(12 + packet.data.count)
            let status = buffer.withUnsafeMutableReadableBytes { veza_srtp_protect(srtp, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), &length) }
            time += Int64(packet.duration)
            expectedTimestamp = timestamp &+ UInt32(truncatingIfNeeded: packet.duration)
            guard status == 0 else { continue }
            buffer.moveWriterIndex(to: buffer.readerIndex + Int(length))
            sequence &+= 1
            packetsSent &+= 1
            octetsSent &+= UInt32(packet.data.count)
            lastSent = (timestamp, Date())
            datagrams.append(buffer)
        }
        return datagrams
    }

    /// An SRTCP sender report for now (nothing before the first RTP packet).
    func senderReport() -> [UInt8] {
        guard let srtp, let lastSent else { return [] }
        let now = Date()
        let rtpNow = lastSent.timestamp &+ UInt32(truncatingIfNeeded: Int64(now.timeIntervalSince(lastSent.at) * 48_000))
        var bytes = RTP.senderReport(ssrc: ssrc, ntpTime: RTP.ntpTime(unixSeconds: now.timeIntervalSince1970), rtpTimestamp: rtpNow,
                                     packets: packetsSent, octets: octetsSent, cname: "veza-\(mount)", spare: Int(VEZA_SRTCP_SPARE))
        var length = Int32(bytes.count - Int(VEZA_SRTCP_SPARE))
        guard bytes.withUnsafeMutableBufferPointer({ veza_srtp_protect_rtcp(srtp, $0.baseAddress, &length) }) == 0 else { return [] }
        return Array(bytes[0..<Int(length)])
    }
}

/// The host's DTLS certificate (self-signed ECDSA P-256, made at start) and its fingerprint.
final class DTLSIdentity: @unchecked Sendable {  // safe: immutable once made; CWebRTC documents the identity as shareable across threads
    let pointer: OpaquePointer
    let fingerprint: String

    init?() {
        guard let pointer = veza_dtls_identity_create() else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(VEZA_DTLS_FINGERPRINT_SIZE))
        guard veza_dtls_identity_fingerprint(pointer, &buffer, buffer.count) == 0 else {
            veza_dtls_identity_free(pointer)
            return nil
        }
        self.pointer = pointer
        fingerprint = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { veza_dtls_identity_free(pointer) }
}
