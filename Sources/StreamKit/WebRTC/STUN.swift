internal import Crypto

/// STUN (RFC 8489) as an ICE-lite agent needs it (RFC 8445 §2.5): parse a Binding request,
/// check its `MESSAGE-INTEGRITY` with the local ICE password, and build the success response
/// with `XOR-MAPPED-ADDRESS`, `MESSAGE-INTEGRITY` and `FINGERPRINT`. A lite agent never sends
/// requests, so nothing else is here.
public struct STUNMessage: Sendable, Hashable {
    /// The message type (`0x0001`: Binding request).
    public var type: UInt16
    /// The 96-bit transaction id.
    public var transactionID: [UInt8]
    /// Attributes in order: type and value (without padding).
    public var attributes: [(type: UInt16, value: [UInt8])]
    /// Byte offset in the datagram of each attribute's header, in order.
    var offsets: [Int]
    /// The datagram parsed.
    var bytes: [UInt8]

    public static let magicCookie: UInt32 = 0x2112_A442
    public static let bindingRequest: UInt16 = 0x0001
    public static let bindingSuccess: UInt16 = 0x0101

    /// Attribute types used here.
    public enum Attribute {
        public static let username: UInt16 = 0x0006
        public static let messageIntegrity: UInt16 = 0x0008
        public static let xorMappedAddress: UInt16 = 0x0020
        public static let priority: UInt16 = 0x0024
        public static let useCandidate: UInt16 = 0x0025
        public static let fingerprint: UInt16 = 0x8028
        public static let iceControlled: UInt16 = 0x8029
        public static let iceControlling: UInt16 = 0x802A
    }

    /// Whether a datagram is STUN by its first byte (RFC 7983: 0–3), as opposed to DTLS
    /// (20–63) or RTP/RTCP (128–191) on the same port.
    public static func isSTUN(firstByte: UInt8) -> Bool { firstByte < 4 }

    /// Parses a STUN message, or nil when `datagram` is not one (bad length, cookie, padding).
    public init?(parsing datagram: some Collection<UInt8>) {
        let bytes = Array(datagram)
        guard bytes.count >= 20, bytes[0] & 0xC0 == 0 else { return nil }
        let length = Int(Self.read16(bytes, 2))
        guard length % 4 == 0, bytes.count == 20 + length, Self.read32(bytes, 4) == Self.magicCookie else { return nil }
        type = Self.read16(bytes, 0)
        transactionID = Array(bytes[8..<20])
        var attributes: [(type: UInt16, value: [UInt8])] = []
        var offsets: [Int] = []
        var offset = 20
        while offset + 4 <= bytes.count {
            let type = Self.read16(bytes, offset)
            let size = Int(Self.read16(bytes, offset + 2))
            guard offset + 4 + size <= bytes.count else { return nil }
            attributes.append((type, Array(bytes[(offset + 4)..<(offset + 4 + size)])))
            offsets.append(offset)
            offset += 4 + (size + 3) / 4 * 4
        }
        guard offset == bytes.count else { return nil }
        self.attributes = attributes
        self.offsets = offsets
        self.bytes = bytes
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    /// The first attribute of `type`.
    public func attribute(_ type: UInt16) -> [UInt8]? { attributes.first { $0.type == type }?.value }

    /// `USERNAME` as text (`localUfrag:remoteUfrag` in a request to this agent).
    public var username: String? { attribute(Attribute.username).map { String(decoding: $0, as: UTF8.self) } }

    /// Whether `MESSAGE-INTEGRITY` is present and is the HMAC-SHA1, keyed with `password` (ICE's
    /// short-term credential), of the message up to it with the length field covering it; and
    /// when a `FINGERPRINT` follows, whether it is right too.
    public func hasIntegrity(password: String) -> Bool {
        guard let index = attributes.firstIndex(where: { $0.type == Attribute.messageIntegrity }), attributes[index].value.count == 20 else {
            return false
        }
        let offset = offsets[index]
        var covered = Array(bytes[0..<offset])
        Self.write16(&covered, 2, UInt16(offset + 24 - 20))
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: covered, using: SymmetricKey(data: Array(password.utf8)))
        guard URLSigner.constantTimeEquals(Array(mac), attributes[index].value) else { return false }
        if let fingerprintIndex = attributes.firstIndex(where: { $0.type == Attribute.fingerprint }) {
            let at = offsets[fingerprintIndex]
            guard attributes[fingerprintIndex].value.count == 4 else { return false }
            var head = Array(bytes[0..<at])
            Self.write16(&head, 2, UInt16(at + 8 - 20))
            return Self.read32(attributes[fingerprintIndex].value, 0) == CRC32.checksum(head) ^ 0x5354_554E
        }
        return true
    }

    /// The Binding success response to this request, as seen from `address` and `port` (the
    /// request's source), authenticated with `password` (the local ICE password).
    public func bindingSuccess(address: [UInt8], port: UInt16, password: String) -> [UInt8] {
        var message: [UInt8] = []
        Self.write16(&message, 0, Self.bindingSuccess)
        Self.write16(&message, 2, 0)
        message += [0x21, 0x12, 0xA4, 0x42] + transactionID
        // XOR-MAPPED-ADDRESS: family, port and address XOR'd with the cookie (and, for IPv6,
        // the transaction id).
        let cookie: [UInt8] = [0x21, 0x12, 0xA4, 0x42]
        let mask = cookie + transactionID
        var value: [UInt8] = [0, address.count == 16 ? 0x02 : 0x01, UInt8((port ^ 0x2112) >> 8), UInt8((port ^ 0x2112) & 0xFF)]
        value += address.enumerated().map { $0.element ^ mask[$0.offset] }
        Self.append(&message, Attribute.xorMappedAddress, value)
        return Self.signed(message, password: password)
    }

    /// A Binding request as a controlling full agent sends it (a WebRTC client, a load
    /// generator): `USERNAME` (`remoteUfrag:localUfrag`), `PRIORITY`, `ICE-CONTROLLING`,
    /// `USE-CANDIDATE` when nominating, authenticated with the remote agent's `password`.
    public static func bindingRequest(username: String, password: String, transactionID: [UInt8], priority: UInt32 = 0x6E00_01FF,
                                      tieBreaker: UInt64, useCandidate: Bool = true) -> [UInt8] {
        precondition(transactionID.count == 12, "a STUN transaction id is 96 bits")
        var message: [UInt8] = []
        write16(&message, 0, bindingRequest)
        write16(&message, 2, 0)
        message += [0x21, 0x12, 0xA4, 0x42] + transactionID
        append(&message, Attribute.username, Array(username.utf8))
        append(&message, Attribute.priority, (0..<4).map { UInt8(truncatingIfNeeded: priority >> (24 - 8 * $0)) })
        append(&message, Attribute.iceControlling, (0..<8).map { UInt8(truncatingIfNeeded: tieBreaker >> (56 - 8 * $0)) })
        if useCandidate { append(&message, Attribute.useCandidate, []) }
        return signed(message, password: password)
    }

    /// `message` with `MESSAGE-INTEGRITY` (keyed with `password`) and `FINGERPRINT` appended.
    static func signed(_ message: [UInt8], password: String) -> [UInt8] {
        var message = message
        // MESSAGE-INTEGRITY over everything before it, the length counting it.
        Self.write16(&message, 2, UInt16(message.count - 20 + 24))
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: Array(password.utf8)))
        Self.append(&message, Attribute.messageIntegrity, Array(mac))
        // FINGERPRINT: CRC-32 of everything before it, the length counting it, XOR 0x5354554E.
        Self.write16(&message, 2, UInt16(message.count - 20 + 8))
        let crc = CRC32.checksum(message) ^ 0x5354_554E
        Self.append(&message, Attribute.fingerprint, [UInt8(crc >> 24), UInt8((crc >> 16) & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8(crc & 0xFF)])
        return message
    }

    // MARK: Bytes

    static func read16(_ bytes: [UInt8], _ at: Int) -> UInt16 { UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) }
    static func read32(_ bytes: [UInt8], _ at: Int) -> UInt32 { UInt32(read16(bytes, at)) << 16 | UInt32(read16(bytes, at + 2)) }

    static func write16(_ bytes: inout [UInt8], _ at: Int, _ value: UInt16) {
        while bytes.count < at + 2 { bytes.append(0) }
        bytes[at] = UInt8(value >> 8)
        bytes[at + 1] = UInt8(value & 0xFF)
    }

    static func append(_ message: inout [UInt8], _ type: UInt16, _ value: [UInt8]) {
        message += [UInt8(type >> 8), UInt8(type & 0xFF), UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
        message += [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
    }
}

/// CRC-32 (ISO-HDLC, the polynomial of zlib and STUN's `FINGERPRINT`), table-driven. Hand
/// written: a checksum, not cryptography, and no listed package has one.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
