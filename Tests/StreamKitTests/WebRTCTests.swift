import Foundation
import Testing
@testable import StreamKit

@Suite struct WebRTCTests {
    static func hex(_ text: String) -> [UInt8] {
        let digits = text.filter(\.isHexDigit)
        return stride(from: 0, to: digits.count, by: 2).map { index in
            let start = digits.index(digits.startIndex, offsetBy: index)
            return UInt8(digits[start..<digits.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    /// RFC 5769 §2.1: a Binding request with MESSAGE-INTEGRITY and FINGERPRINT.
    static let rfc5769Request = hex("""
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff 80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """)
    static let rfc5769Password = "VOkJxbRl1RmTxUk/WvJxBt"

    /// The offer aiortc 1.16 makes for a receive-only audio transceiver (fingerprints shortened
    /// to the SHA-256 one).
    static let aiortcOffer = """
        v=0\r
        o=- 4005460876 4005460876 IN IP4 0.0.0.0\r
        s=-\r
        t=0 0\r
        a=group:BUNDLE 0\r
        a=msid-semantic:WMS *\r
        m=audio 34688 UDP/TLS/RTP/SAVPF 96 9 0 8\r
        c=IN IP4 127.0.0.1\r
        a=recvonly\r
        a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r
        a=mid:0\r
        a=rtcp:9 IN IP4 0.0.0.0\r
        a=rtcp-mux\r
        a=ssrc:1893385454 cname:67df1a10-060f-493b-8954-2e0f6363fd7e\r
        a=rtpmap:96 opus/48000/2\r
        a=rtpmap:9 G722/8000\r
        a=rtpmap:0 PCMU/8000\r
        a=rtpmap:8 PCMA/8000\r
        a=candidate:16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 34688 typ host\r
        a=end-of-candidates\r
        a=ice-ufrag:tT3F\r
        a=ice-pwd:WEPS5RAwk6esviBoS7TioZ\r
        a=fingerprint:sha-256 E4:AB:6A:43:F6:36:D6:BC:F6:87:DE:46:C6:92:AC:E8:05:63:B3:8D:97:17:04:45:20:E1:E9:19:73:14:7E:B5\r
        a=fingerprint:sha-384 A9:A2:F3:FC:9B:8D:DD:9D:74:C2:AC:3B:95:9D:9D:47:F7:13:FD:41:80:95:18:F6:CF:0F:F3:6E:97:60:41:73:D9:36:1D:2E:D9:0D:7E:A3\r
        a=setup:actpass\r

        """

    @Test func stunRequestOfRFC5769HasIntegrityAndFingerprint() throws {
        let request = try #require(STUNMessage(parsing: Self.rfc5769Request))
        #expect(request.type == STUNMessage.bindingRequest)
        #expect(request.username == "evtj:h6vY")
        #expect(request.hasIntegrity(password: Self.rfc5769Password))
        #expect(!request.hasIntegrity(password: "wrong-password-000000"))
        // A changed PRIORITY breaks the MAC; a changed byte of the FINGERPRINT breaks it too.
        var tampered = Self.rfc5769Request
        tampered[44] ^= 1
        #expect(STUNMessage(parsing: tampered)?.hasIntegrity(password: Self.rfc5769Password) == false)
        tampered = Self.rfc5769Request
        tampered[tampered.count - 1] ^= 1
        #expect(STUNMessage(parsing: tampered)?.hasIntegrity(password: Self.rfc5769Password) == false)
    }

    @Test func stunRejectsWhatIsNotAMessage() {
        #expect(STUNMessage(parsing: [UInt8](repeating: 0, count: 19)) == nil)
        var badCookie = Self.rfc5769Request
        badCookie[4] = 0
        #expect(STUNMessage(parsing: badCookie) == nil)
        #expect(STUNMessage(parsing: Self.rfc5769Request.dropLast()) == nil)
        var badLength = Self.rfc5769Request
        badLength[3] = 0x5C
        #expect(STUNMessage(parsing: badLength) == nil)
        #expect(STUNMessage.isSTUN(firstByte: 0) && !STUNMessage.isSTUN(firstByte: 22) && !STUNMessage.isSTUN(firstByte: 0x80))
    }

    @Test func stunBindingSuccessCarriesTheRFC5769MappedAddressAndVerifies() throws {
        let request = try #require(STUNMessage(parsing: Self.rfc5769Request))
        let response = request.bindingSuccess(address: [192, 0, 2, 1], port: 32853, password: Self.rfc5769Password)
        let parsed = try #require(STUNMessage(parsing: response))
        #expect(parsed.type == STUNMessage.bindingSuccess)
        #expect(parsed.transactionID == Array(Self.rfc5769Request[8..<20]))
        // RFC 5769 §2.2: 192.0.2.1:32853 as XOR-MAPPED-ADDRESS.
        #expect(parsed.attribute(STUNMessage.Attribute.xorMappedAddress) == Self.hex("00 01 a1 47 e1 12 a6 43"))
        #expect(parsed.attributes.map(\.type) == [STUNMessage.Attribute.xorMappedAddress, STUNMessage.Attribute.messageIntegrity,
                                                  STUNMessage.Attribute.fingerprint])
        #expect(parsed.hasIntegrity(password: Self.rfc5769Password))
        #expect(!parsed.hasIntegrity(password: "another-password-00000"))
        // IPv6 (RFC 5769 §2.3): 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        let v6 = request.bindingSuccess(address: Self.hex("20 01 0d b8 12 34 56 78 00 11 22 33 44 55 66 77"), port: 32853, password: Self.rfc5769Password)
        #expect(STUNMessage(parsing: v6)?.attribute(STUNMessage.Attribute.xorMappedAddress)
                == Self.hex("00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9"))
    }

    @Test func stunBindingRequestOfAControllingAgentVerifiesAndIsAnswered() throws {
        let transaction = Array(Self.rfc5769Request[8..<20])
        let bytes = STUNMessage.bindingRequest(username: "evtj:h6vY", password: Self.rfc5769Password, transactionID: transaction,
                                               tieBreaker: 0x0102_0304_0506_0708)
        let request = try #require(STUNMessage(parsing: bytes))
        #expect(request.type == STUNMessage.bindingRequest && request.username == "evtj:h6vY" && request.transactionID == transaction)
        #expect(request.attribute(STUNMessage.Attribute.iceControlling) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(request.attribute(STUNMessage.Attribute.priority) == [0x6E, 0x00, 0x01, 0xFF])
        #expect(request.attribute(STUNMessage.Attribute.useCandidate) == [])
        #expect(request.hasIntegrity(password: Self.rfc5769Password) && !request.hasIntegrity(password: "another-password-00000"))
        // The lite agent's answer to it verifies with the same password.
        let answer = try #require(STUNMessage(parsing: request.bindingSuccess(address: [127, 0, 0, 1], port: 5000, password: Self.rfc5769Password)))
        #expect(answer.type == STUNMessage.bindingSuccess && answer.hasIntegrity(password: Self.rfc5769Password))
    }

    @Test func crc32MatchesTheCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func offerOfAiortcIsParsed() throws {
        let offer = try WebRTCOffer(parsing: Self.aiortcOffer)
        #expect(offer.iceUfrag == "tT3F" && offer.icePassword == "WEPS5RAwk6esviBoS7TioZ")
        #expect(offer.fingerprint.hasPrefix("E4:AB:6A") && offer.fingerprint.count == 95)
        #expect(offer.setup == "actpass" && offer.opusPayloadType == 96 && offer.audioIndex == 0 && offer.media.first?.mid == "0")
    }

    @Test func offerIsRefusedWithTheReason() {
        func reason(_ sdp: String) -> String {
            do {
                _ = try WebRTCOffer(parsing: sdp)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(reason("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n").contains("no audio section"))
        #expect(reason(Self.aiortcOffer.replacingOccurrences(of: "a=ice-pwd:WEPS5RAwk6esviBoS7TioZ\r\n", with: "")).contains("ICE credentials"))
        #expect(reason(Self.aiortcOffer.replacingOccurrences(of: "a=fingerprint:sha-256", with: "a=fingerprint:sha-1")).contains("sha-256"))
        #expect(reason(Self.aiortcOffer.replacingOccurrences(of: "a=rtpmap:96 opus/48000/2", with: "a=rtpmap:96 opus/48000/1")).contains("opus/48000/2"))
        #expect(reason(Self.aiortcOffer.replacingOccurrences(of: "a=setup:actpass", with: "a=setup:passive")).contains("DTLS client"))
        #expect(reason(Self.aiortcOffer.replacingOccurrences(of: "a=recvonly", with: "a=sendonly")).contains("does not receive"))
        #expect(reason(Self.aiortcOffer.replacingOccurrences(of: "UDP/TLS/RTP/SAVPF", with: "RTP/AVP")).contains("DTLS-SRTP"))
    }

    @Test func answerIsIceLiteSendOnlyOpusWithHostCandidatesAndRejectsOtherSections() throws {
        // A browser's offer: video first, then audio with Opus as payload type 111.
        let browser = Self.aiortcOffer
            .replacingOccurrences(of: "a=group:BUNDLE 0", with: "a=group:BUNDLE 0 1")
            .replacingOccurrences(of: "m=audio 34688 UDP/TLS/RTP/SAVPF 96 9 0 8\r\n", with: "m=video 9 UDP/TLS/RTP/SAVPF 102\r\na=mid:0\r\na=recvonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\n")
            .replacingOccurrences(of: "a=mid:0\r\na=rtcp:9", with: "a=mid:1\r\na=rtcp:9")
            .replacingOccurrences(of: "a=rtpmap:96 opus/48000/2", with: "a=rtpmap:111 opus/48000/2")
        let offer = try WebRTCOffer(parsing: browser)
        #expect(offer.audioIndex == 1 && offer.opusPayloadType == 111)
        let answer = WebRTCAnswer(offer: offer, iceUfrag: "abcd1234", icePassword: "0123456789abcdefghijklmn", fingerprint: "AA:BB",
                                  candidates: [("127.0.0.1", 50_000)], ssrc: 42, streamName: "veza-radio", sessionID: 7).sdp
        let lines = answer.components(separatedBy: "\r\n")
        #expect(answer.hasSuffix("\r\n") && lines.first == "v=0")
        for line in ["a=group:BUNDLE 1", "a=ice-lite", "m=video 0 UDP/TLS/RTP/SAVPF 102", "a=inactive", "m=audio 50000 UDP/TLS/RTP/SAVPF 111",
                     "c=IN IP4 127.0.0.1", "a=mid:1", "a=sendonly", "a=rtcp-mux", "a=rtpmap:111 opus/48000/2", "a=ice-ufrag:abcd1234",
                     "a=ice-pwd:0123456789abcdefghijklmn", "a=fingerprint:sha-256 AA:BB", "a=setup:passive", "a=ssrc:42 cname:veza-radio",
                     "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "a=end-of-candidates"] {
            #expect(lines.contains(line), "missing \(line) in\n\(answer)")
        }
        // Sections in the offer's order: the rejected video one first.
        #expect(lines.firstIndex(of: "m=video 0 UDP/TLS/RTP/SAVPF 102")! < lines.firstIndex(of: "m=audio 50000 UDP/TLS/RTP/SAVPF 111")!)
    }

    @Test func rtpHeaderAndSenderReportLayout() {
        let packet = RTP.packet(payloadType: 111, sequenceNumber: 0x1234, timestamp: 0xDEAD_BEEF, ssrc: 0x0102_0304, marker: true,
                                payload: [9, 8, 7], spare: 16)
        #expect(Array(packet.prefix(15)) == [0x80, 0xEF, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 9, 8, 7])
        #expect(packet.count == 31 && packet.suffix(16).allSatisfy { $0 == 0 })
        #expect(RTP.isRTPOrRTCP(firstByte: 0x80) && !RTP.isRTPOrRTCP(firstByte: 22))
        #expect(!RTP.isRTCP(packet))
        let report = RTP.senderReport(ssrc: 0x0102_0304, ntpTime: 0x1122_3344_5566_7788, rtpTimestamp: 960, packets: 5, octets: 600, cname: "veza-radio")
        #expect(RTP.isRTCP(report))
        // SR: V=2, PT=200, length 6 (28 bytes), the SSRC, NTP, RTP time and counts.
        #expect(Array(report.prefix(28)) == [0x80, 200, 0, 6, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 3, 0xC0, 0, 0, 0, 5, 0, 0, 2, 0x58])
        // SDES: one chunk, CNAME item, END, 32-bit aligned; its length field matches.
        let sdes = Array(report.dropFirst(28))
        #expect(sdes[0] == 0x81 && sdes[1] == 202 && sdes.count % 4 == 0 && (Int(sdes[2]) << 8 | Int(sdes[3])) == sdes.count / 4 - 1)
        #expect(sdes[8] == 1 && sdes[9] == 10 && String(decoding: sdes[10..<20], as: UTF8.self) == "veza-radio")
        // The NTP epoch is 1900: the Unix epoch is 2,208,988,800 s later.
        #expect(RTP.ntpTime(unixSeconds: 0.5) == UInt64(2_208_988_800) << 32 | 0x8000_0000)
    }
}
