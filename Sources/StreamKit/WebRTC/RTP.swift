/// RTP (RFC 3550) as a sender of one audio stream writes it: the fixed 12-byte header in front
/// of each payload (an Opus packet, RFC 7587), and RTCP sender reports with the stream's
/// CNAME. The bytes go to SRTP next, so the writers leave room after the packet for its tag.
public enum RTP {
    /// Whether a datagram is RTP or RTCP by its first byte (RFC 7983: 128–191).
    public static func isRTPOrRTCP(firstByte: UInt8) -> Bool { (128...191).contains(firstByte) }

    /// Whether an RTP-or-RTCP datagram is RTCP (RFC 5761 §4: payload types 192–223 in the
    /// second byte, marker bit included, are RTCP's 64–95).
    public static func isRTCP(_ datagram: some Collection<UInt8>) -> Bool {
        guard datagram.count >= 2 else { return false }
        return (192...223).contains(datagram[datagram.index(after: datagram.startIndex)])
    }

    /// The fixed 12-byte RTP header: version 2, no padding, extension or CSRC.
    public static func header(payloadType: Int, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32, marker: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = [0x80, UInt8(payloadType & 0x7F) | (marker ? 0x80 : 0)]
        bytes.reserveCapacity(12)
        append16(&bytes, sequenceNumber)
        append32(&bytes, timestamp)
        append32(&bytes, ssrc)
        return bytes
    }

    /// An RTP packet: ``header(payloadType:sequenceNumber:timestamp:ssrc:marker:)`` and
    /// `payload`, with `spare` zero bytes after it (for the SRTP tag).
    public static func packet(payloadType: Int, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32, marker: Bool = false,
                              payload: [UInt8], spare: Int = 0) -> [UInt8] {
        var bytes = header(payloadType: payloadType, sequenceNumber: sequenceNumber, timestamp: timestamp, ssrc: ssrc, marker: marker)
        bytes.reserveCapacity(12 + payload.count + spare)
        bytes += payload
        bytes += [UInt8](repeating: 0, count: spare)
        return bytes
    }

    /// A compound RTCP packet: a sender report (PT 200, no report blocks) and an SDES with the
    /// CNAME (PT 202), with `spare` zero bytes after it (for the SRTCP index and tag).
    /// - Parameters:
    ///   - ssrc: the stream's SSRC.
    ///   - ntpTime: wall-clock time of the report as NTP (seconds since 1900 in 32.32 fixed point).
    ///   - rtpTimestamp: the same instant on the stream's RTP clock.
    ///   - packets: packets sent so far.
    ///   - octets: payload octets sent so far.
    ///   - cname: the SDES CNAME.
    ///   - spare: zero bytes left after the packet.
    public static func senderReport(ssrc: UInt32, ntpTime: UInt64, rtpTimestamp: UInt32, packets: UInt32, octets: UInt32, cname: String,
                                    spare: Int = 0) -> [UInt8] {
        var bytes: [UInt8] = [0x80, 200]
        append16(&bytes, 6)
        append32(&bytes, ssrc)
        append32(&bytes, UInt32(ntpTime >> 32))
        append32(&bytes, UInt32(ntpTime & 0xFFFF_FFFF))
        append32(&bytes, rtpTimestamp)
        append32(&bytes, packets)
        append32(&bytes, octets)
        // SDES: one chunk (SSRC, CNAME item, END), padded to 32 bits.
        let name = Array(cname.utf8.prefix(255))
        var chunk: [UInt8] = []
        append32(&chunk, ssrc)
        chunk += [1, UInt8(name.count)] + name + [0]
        while chunk.count % 4 != 0 { chunk.append(0) }
        bytes += [0x81, 202]
        append16(&bytes, UInt16(chunk.count / 4))
        bytes += chunk
        bytes += [UInt8](repeating: 0, count: spare)
        return bytes
    }

    /// `seconds` since the Unix epoch as an NTP timestamp (seconds since 1900, 32.32 fixed point).
    public static func ntpTime(unixSeconds seconds: Double) -> UInt64 {
        let ntp = seconds + 2_208_988_800
        let whole = UInt64(ntp)
        return whole << 32 | UInt64((ntp - Double(whole)) * 4_294_967_296)
    }

    static func append16(_ bytes: inout [UInt8], _ value: UInt16) {
        bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
    }

    static func append32(_ bytes: inout [UInt8], _ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
