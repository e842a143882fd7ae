/// What an audio-receiving WebRTC peer's SDP offer (a WHEP client's) says that an answering
/// server needs: its ICE credentials, its DTLS certificate fingerprint and role, and the
/// media sections in order, with the Opus payload type of the first audio section.
///
/// Parsing is lenient about what it does not need (unknown attributes, extra codecs) and strict
/// about what it does: an offer without ICE credentials, a SHA-256 fingerprint or an audio
/// section offering Opus at 48 kHz stereo is refused with a ``WebRTCOfferError`` that says why.
public struct WebRTCOffer: Sendable, Hashable {
    /// One `m=` section of the offer.
    public struct Media: Sendable, Hashable {
        /// `audio`, `video`, `application`.
        public var kind: String
        /// The transport protocol (`UDP/TLS/RTP/SAVPF`).
        public var proto: String
        /// The payload formats as offered.
        public var formats: [String]
        /// Its `a=mid`.
        public var mid: String?
    }

    public var iceUfrag: String
    public var icePassword: String
    /// The SHA-256 fingerprint of the offerer's certificate (`AB:CD:…`).
    public var fingerprint: String
    /// The offerer's DTLS role (`actpass`, `active`, `passive`).
    public var setup: String
    public var media: [Media]
    /// The index in ``media`` of the audio section answered.
    public var audioIndex: Int
    /// The Opus payload type in that section.
    public var opusPayloadType: Int

    /// Parses `sdp` (CRLF or LF line ends).
    public init(parsing sdp: String) throws(WebRTCOfferError) {
        var sessionAttributes: [String: String] = [:]
        var media: [Media] = []
        var mediaAttributes: [[(String, String)]] = []
        for raw in sdp.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : Substring(raw)
            guard line.count >= 2, line.dropFirst().first == "=" else { continue }
            let value = line.dropFirst(2)
            switch line.first {
            case "m":
                let fields = value.split(separator: " ")
                guard fields.count >= 4 else { throw WebRTCOfferError("malformed m= line: \(line.prefix(80))") }
                media.append(Media(kind: String(fields[0]), proto: String(fields[2]), formats: fields.dropFirst(3).map(String.init)))
                mediaAttributes.append([])
            case "a":
                let colon = value.firstIndex(of: ":")
                let name = String(colon.map { value[..<$0] } ?? value)
                let attribute = colon.map { String(value[value.index(after: $0)...]) } ?? ""
                if media.isEmpty {
                    if sessionAttributes[name] == nil { sessionAttributes[name] = attribute }
                } else {
                    mediaAttributes[media.count - 1].append((name, attribute))
                    if name == "mid" { media[media.count - 1].mid = attribute }
                }
            default:
                continue
            }
        }
        guard let audioIndex = media.firstIndex(where: { $0.kind == "audio" }) else {
            throw WebRTCOfferError("the offer has no audio section")
        }
        let attributes = mediaAttributes[audioIndex]
        func attribute(_ name: String) -> String? {
            attributes.first { $0.0 == name }?.1 ?? sessionAttributes[name]
        }
        guard media[audioIndex].proto.hasPrefix("UDP/TLS/RTP/SAVP") else {
            throw WebRTCOfferError("the audio section's transport is \(media[audioIndex].proto), not UDP/TLS/RTP/SAVPF (DTLS-SRTP)")
        }
        guard let ufrag = attribute("ice-ufrag"), !ufrag.isEmpty, let password = attribute("ice-pwd"), password.count >= 22 else {
            throw WebRTCOfferError("the offer has no ICE credentials (a=ice-ufrag, a=ice-pwd of at least 22 characters)")
        }
        let fingerprints = attributes.filter { $0.0 == "fingerprint" }.map(\.1) + [sessionAttributes["fingerprint"]].compactMap { $0 }
        guard let sha256 = fingerprints.lazy.compactMap({ value -> String? in
            let fields = value.split(separator: " ")
            guard fields.count == 2, fields[0].lowercased() == "sha-256", fields[1].count == 95 else { return nil }
            return String(fields[1])
        }).first else {
            throw WebRTCOfferError("the offer has no a=fingerprint:sha-256")
        }
        let setup = attribute("setup") ?? "actpass"
        guard setup == "actpass" || setup == "active" else {
            throw WebRTCOfferError("a=setup:\(setup): the offerer must be able to be the DTLS client (actpass or active)")
        }
        let opus = attributes.filter { $0.0 == "rtpmap" }.compactMap { _, value -> Int? in
            let fields = value.split(separator: " ", maxSplits: 1)
            guard fields.count == 2, fields[1].lowercased() == "opus/48000/2", let type = Int(fields[0]),
                  media[audioIndex].formats.contains(String(fields[0])) else { return nil }
            return type
        }.first
        guard let opus else { throw WebRTCOfferError("the audio section does not offer opus/48000/2") }
        guard !attributes.contains(where: { $0.0 == "sendonly" || $0.0 == "inactive" }) else {
            throw WebRTCOfferError("the audio section does not receive (a=sendonly or a=inactive): WHEP plays to the offerer")
        }
        iceUfrag = ufrag
        icePassword = password
        fingerprint = sha256
        self.setup = setup
        self.media = media
        self.audioIndex = audioIndex
        self.opusPayloadType = opus
    }
}

/// Why an SDP offer cannot be answered.
public struct WebRTCOfferError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The SDP answer of an ICE-lite server that sends one Opus stream (RFC 7587) over DTLS-SRTP
/// and receives nothing: every other section of the offer is rejected (port 0), as RFC 8843
/// lets an answerer do.
public struct WebRTCAnswer: Sendable, Hashable {
    public var offer: WebRTCOffer
    public var iceUfrag: String
    public var icePassword: String
    /// The SHA-256 fingerprint of the server's certificate.
    public var fingerprint: String
    /// Where the server receives (host candidates: address and UDP port).
    public var candidates: [(address: String, port: Int)]
    /// The SSRC of the audio stream it sends.
    public var ssrc: UInt32
    /// The stream's name (`a=msid`, `cname`).
    public var streamName: String
    /// The SDP session id (`o=`).
    public var sessionID: UInt64

    public init(offer: WebRTCOffer, iceUfrag: String, icePassword: String, fingerprint: String, candidates: [(address: String, port: Int)],
                ssrc: UInt32, streamName: String, sessionID: UInt64) {
        self.offer = offer
        self.iceUfrag = iceUfrag
        self.icePassword = icePassword
        self.fingerprint = fingerprint
        self.candidates = candidates
        self.ssrc = ssrc
        self.streamName = streamName
        self.sessionID = sessionID
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.sdp == rhs.sdp }
    public func hash(into hasher: inout Hasher) { hasher.combine(sdp) }

    /// The answer's text (CRLF line ends).
    public var sdp: String {
        let address = candidates.first?.address ?? "0.0.0.0"
        let family = address.contains(":") ? "IP6" : "IP4"
        let audio = offer.media[offer.audioIndex]
        let mid = audio.mid ?? "0"
        var lines = [
            "v=0", "o=- \(sessionID) 1 IN \(family) \(address)", "s=-", "t=0 0",
            "a=group:BUNDLE \(mid)", "a=ice-lite", "a=msid-semantic: WMS \(streamName)",
        ]
        for (index, media) in offer.media.enumerated() {
            guard index == offer.audioIndex else {
                lines.append("m=\(media.kind) 0 \(media.proto) \(media.formats.first ?? "0")")
                lines.append("c=IN \(family) \(address)")
                if let mid = media.mid { lines.append("a=mid:\(mid)") }
                // The transport attributes too: some stacks (aiortc) check them in every section.
                lines += ["a=inactive", "a=rtcp-mux", "a=ice-ufrag:\(iceUfrag)", "a=ice-pwd:\(icePassword)",
                          "a=fingerprint:sha-256 \(fingerprint)", "a=setup:passive"]
                continue
            }
            let type = offer.opusPayloadType
            lines += [
                "m=audio \(candidates.first?.port ?? 9) \(audio.proto) \(type)",
                "c=IN \(family) \(address)",
                "a=mid:\(mid)",
                "a=sendonly",
                "a=rtcp-mux",
                "a=rtpmap:\(type) opus/48000/2",
                "a=fmtp:\(type) minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1",
                "a=ice-ufrag:\(iceUfrag)",
                "a=ice-pwd:\(icePassword)",
                "a=fingerprint:sha-256 \(fingerprint)",
                "a=setup:passive",
                "a=msid:\(streamName) \(streamName)-audio",
                "a=ssrc:\(ssrc) cname:\(streamName)",
                "a=ssrc:\(ssrc) msid:\(streamName) \(streamName)-audio",
            ]
            for (number, candidate) in candidates.enumerated() {
                // Host candidates, type preference 126, one component (RTP and RTCP muxed).
                lines.append("a=candidate:\(number + 1) 1 udp \(2_130_706_431 - number) \(candidate.address) \(candidate.port) typ host")
            }
            lines.append("a=end-of-candidates")
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}
