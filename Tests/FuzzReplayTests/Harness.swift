import Crypto
import Dispatch
import Foundation
@testable import MediaCore
import NIOCore
@testable import StreamHost
import StreamKit

/// One harness per parser that reads outside input, each driven the way the host drives it.
///
/// Several harnesses take more than one field: the input is then split at its first newlines
/// (``fields(_:_:)``), so that one input can carry, say, a `Range` and an `If-Range` value.
enum Harness: String, CaseIterable, Sendable {
    /// An upload's bytes: the sniffer on the bytes and on the file, then (for what it takes) the
    /// prober and the decoder through FFmpeg, as the intake runs them; the LAME/Xing tag reader.
    case media
    /// A live source's bitstream after its head: the framer, fed in pieces of varying size as
    /// sockets deliver them, and the decoder on every unit it returns. The first byte picks
    /// the format (MPEG audio, ADTS, Ogg).
    case liveSource = "live-source"
    /// An Icecast source's request head (SOURCE or PUT, fields, Basic or Bearer credentials,
    /// mount name, content type) and an ICY metadata block's title.
    case icecastSource = "icecast-source"
    /// A playlist through the HLS parser, strict and lenient; what it accepts must render and
    /// parse again to the same playlist.
    case hls
    /// A live request's object name and LL-HLS delivery directives (`_HLS_msn`, `_HLS_part`,
    /// `_HLS_skip`), with the arithmetic the host does on them. Fields: name, msn, part, skip.
    case liveRequest = "live-request"
    /// A playback request's target as the event-loop fast path splits it (service, id, rest,
    /// first `token`), and the playlist names the router takes.
    case playbackTarget = "playback-target"
    /// `Range` and `If-Range` against a representation (RFC 9110 §14, HTTP dates).
    /// Fields: range, if-range, length.
    case ranges
    /// A signed playback URL's token against a path and a client binding. Fields: path, token, client.
    case signedURL = "signed-url"
    /// A bearer token through the host's JWT verification (HS256 and ES256 keys configured).
    case jwt
    /// An upload body as `multipart/form-data`, streamed in chunks. Fields: content type, body.
    case multipart
    /// A WebRTC datagram as STUN (and its MESSAGE-INTEGRITY), and a WHEP offer's SDP.
    case webrtc
    /// A request's `Forwarded`, `X-Forwarded-For` and `X-Real-IP` behind trusted proxies, and
    /// IP addresses and ranges. Fields: peer, forwarded, x-forwarded-for, x-real-ip, trusted range.
    case clientAddress = "client-address"

    /// The harness `VEZA_FUZZ_TARGET` names; the process stops with a usage message otherwise.
    static let selected: Harness = {
        let name = ProcessInfo.processInfo.environment["VEZA_FUZZ_TARGET"] ?? ""
        guard let harness = Harness(rawValue: name) else {
            FileHandle.standardError.write(Data("set VEZA_FUZZ_TARGET to one of: \(allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return harness
    }()

    func run(_ bytes: [UInt8]) {
        switch self {
        case .media: Self.media(bytes)
        case .liveSource: Self.liveSource(bytes)
        case .icecastSource: Self.icecastSource(bytes)
        case .hls: Self.hls(bytes)
        case .liveRequest: Self.liveRequest(bytes)
        case .playbackTarget: Self.playbackTarget(bytes)
        case .ranges: Self.ranges(bytes)
        case .signedURL: Self.signedURL(bytes)
        case .jwt: Self.jwt(bytes)
        case .multipart: Self.multipart(bytes)
        case .webrtc: Self.webrtc(bytes)
        case .clientAddress: Self.clientAddress(bytes)
        }
    }

    /// The first `count - 1` lines of `bytes` (without their `\n`) and the rest; nil for a
    /// field the input does not reach.
    static func fields(_ bytes: [UInt8], _ count: Int) -> [String?] {
        var result: [String?] = []
        var rest = bytes[...]
        while result.count < count - 1, let newline = rest.firstIndex(of: 10) {
            result.append(String(decoding: rest[..<newline], as: UTF8.self))
            rest = rest[(newline + 1)...]
        }
        result.append(String(decoding: rest, as: UTF8.self))
        return result + Array(repeating: nil, count: count - result.count)
    }

    // MARK: Media

    /// A file of this process's own for FFmpeg to open (libFuzzer's `-fork` and `-jobs` run
    /// harnesses in several processes).
    static let mediaPath = "/dev/shm/veza-fuzz-\(getpid()).media"

    static func media(_ bytes: [UInt8]) {
        _ = MP3InfoTag.parse(bytes)
        guard (try? Sniffer.sniff(bytes)) != nil else { return }
        guard FileManager.default.createFile(atPath: mediaPath, contents: Data(bytes)) else { preconditionFailure("cannot write \(mediaPath)") }
        defer { unlink(mediaPath) }
        guard (try? Sniffer.sniff(fileAt: mediaPath)) != nil, (try? MediaProbe.probe(fileAt: mediaPath, timeLimit: .seconds(2))) != nil,
              let decoder = try? AudioDecoder(path: mediaPath, options: DecoderOptions(timeLimit: .seconds(2))) else { return }
        var frames = 0
        while frames < 10 * 48_000, let buffer = try? decoder.read() {
            precondition(buffer.samples.count % max(buffer.channelCount, 1) == 0, "a PCM buffer with a partial frame")
            frames += buffer.samples.count / max(buffer.channelCount, 1)
        }
    }

    static func liveSource(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let format = LiveStreamFormat.allCases[Int(first) % LiveStreamFormat.allCases.count]
        var framer = StreamFramer(format: format)
        let decoder = try? LiveDecoder(format: format)
        var rest = bytes.dropFirst()
        var step = Int(first) / 3 + 1
        var framed = 0
        while !rest.isEmpty {
            let chunk = rest.prefix(step)
            rest = rest.dropFirst(chunk.count)
            for frame in framer.push(chunk) {
                precondition(!frame.bytes.isEmpty && frame.duration >= 0 && frame.bytes.count <= StreamFramer.maximumUnit, "a malformed unit")
                framed += frame.bytes.count
                _ = try? decoder?.decode(frame)
            }
            step = step * 7 % 4093 + 1
        }
        precondition(framed + framer.skippedBytes <= bytes.count - 1, "the framer returned more bytes than it was given")
    }

    // MARK: Live requests

    static func icecastSource(_ bytes: [UInt8]) {
        _ = ICYMetadataInterleaver.title(inBlock: bytes)
        guard SourceRequestHead.recognise(bytes) != .notSource else { return }
        let end = bytes.firstRange(of: [13, 10, 13, 10])?.lowerBound ?? min(bytes.count, SourceRequestHead.maximumLength)
        guard let head = try? SourceRequestHead.parse(bytes[..<end]) else { return }
        _ = head.credentials
        _ = head.mountName
        if let type = head.field("content-type") { _ = LiveStreamFormat(contentType: type) }
    }

    static let lenientParser = HLSParser(options: HLSParser.Options(allowUnknownTags: true, allowUnknownAttributes: true))

    static func hls(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        for parser in [HLSParser(), lenientParser] {
            guard let playlist = try? parser.parse(text) else { continue }
            let rendered: String
            switch playlist {
            case .master(let master): rendered = master.render()
            case .media(let media): rendered = media.render()
            }
            // What the parser accepts, the renderer writes so that the parser reads it back.
            do {
                _ = try parser.parse(rendered)
            } catch {
                preconditionFailure("\(error) in the rendering of an accepted playlist:\n\(rendered)")
            }
        }
    }

    static func liveRequest(_ bytes: [UInt8]) {
        let fields = fields(bytes, 4)
        if let name = fields[0], let object = LiveObjectName(name) {
            precondition(LiveObjectName(object.fileName) == object, "\(object) does not name itself")
        }
        if let directives = try? PlaylistDirectives(msn: fields[1], part: fields[2], skip: fields[3]), let msn = directives.mediaSequence {
            // LiveRoutes: the part to wait for, with the longest segments the host makes.
            _ = msn * 64 + (directives.part ?? 63)
        }
    }

    // MARK: HTTP

    static func playbackTarget(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        if let target = PlaybackFastPath.Target(text) {
            precondition(text.hasPrefix(String(target.path)) && !target.id.isEmpty && !target.id.contains("/"), "\(text) split as \(target)")
            // A published object the fast path would serve never leaves its track's folder
            // (storage refuses the key of an id `..` on its own).
            if DeliveryRoutes.publishedObjectKind(String(target.rest)) != nil {
                precondition(!target.rest.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0 == ".." || $0 == "." },
                             "\(text) leaves its folder")
            }
        }
        _ = DeliveryRoutes.Document(hlsPlaylist: text)
    }

    static let representation = (length: Int64(1_048_576), etag: EntityTag(opaqueTag: "v1-abc"),
                                 lastModified: Timestamp(secondsSince1970: 1_700_000_000), date: Timestamp(secondsSince1970: 1_700_000_600))

    static func ranges(_ bytes: [UInt8]) {
        let fields = fields(bytes, 3)
        let length = fields[2].flatMap { Int64($0) }.map { max(0, $0) } ?? representation.length
        if let range = fields[0], let header = RangeHeader(parsing: range) {
            precondition(RangeHeader(parsing: header.rendered) == header, "\(header.rendered) does not parse to itself")
        }
        if let ifRange = fields[1] { _ = HTTPDate.parse(ifRange) }
        let resolution = RangeRequestEvaluator.evaluate(range: fields[0], ifRange: fields[1], length: length, etag: representation.etag,
                                                        lastModified: representation.lastModified, responseDate: representation.date)
        if case .partial(let ranges) = resolution {
            precondition(!ranges.isEmpty && ranges.allSatisfy { $0.lowerBound >= 0 && $0.upperBound < length }, "\(ranges) outside 0..<\(length)")
        }
    }

    /// The key ring of the signed-URL harness (its seeds are signed with it).
    static let signer = try! URLSigner(keys: ["k1": Array(repeating: 0x11, count: 32), "k2": Array(repeating: 0x22, count: 32)], activeKeyID: "k1")

    static func signedURL(_ bytes: [UInt8]) {
        let fields = fields(bytes, 3)
        let token = fields[1] ?? ""
        _ = signer.verify(path: fields[0] ?? "", token: token, now: Timestamp(secondsSince1970: 1_800_000_000), client: fields[2])
        if case .success(let grant) = signer.grant(for: token) { _ = grant.verify(path: fields[0] ?? "", now: Timestamp(secondsSince1970: 1_800_000_000)) }
    }

    /// The host's token verification: HS256 with a fixed secret (the seeds are signed with it)
    /// and an ES256 public key, so that algorithm confusion between them is tried too.
    static let auth: HostAuth = blocking {
        let directory = NSTemporaryDirectory() + "veza-fuzz-auth-\(getpid())"
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let es256 = directory + "/es256.pem"
        try! P256.Signing.PrivateKey().publicKey.pemRepresentation.write(toFile: es256, atomically: true, encoding: .utf8)
        var configuration = AuthConfiguration()
        configuration.hs256Secret = "veza-fuzz-hs256-secret-of-32-bytes-or-more"
        configuration.urlSigningSecret = "veza-fuzz-url-signing-secret-of-32-bytes"
        configuration.es256PublicKeyFile = es256
        return try! await HostAuth(configuration: configuration, secrets: HostSecrets.loadOrCreate(dataDirectory: directory), catalog: nil)
    }

    static func jwt(_ bytes: [UInt8]) {
        let token = String(decoding: bytes, as: UTF8.self)
        let auth = self.auth
        blocking { _ = try? await auth.verify(token: token) }
    }

    static let uploadPath = "/dev/shm/veza-fuzz-\(getpid()).upload"

    static func multipart(_ bytes: [UInt8]) {
        guard let newline = bytes.firstIndex(of: 10) else { return }
        let contentType = String(decoding: bytes[..<newline], as: UTF8.self)
        let body = Array(bytes[(newline + 1)...])
        // Chunks as a socket might deliver them: sizes from the body's first byte.
        var pieces: [ByteBuffer] = []
        var rest = body[...]
        var step = Int(body.first ?? 0) % 61 + 1
        while !rest.isEmpty {
            pieces.append(ByteBuffer(bytes: rest.prefix(step)))
            rest = rest.dropFirst(step)
            step = step * 5 % 257 + 1
        }
        let chunks = pieces
        let receiver = UploadReceiver(limit: 1 << 20)
        let path = uploadPath
        let written: Int? = blocking {
            let stream = AsyncStream<ByteBuffer> { continuation in
                for chunk in chunks { continuation.yield(chunk) }
                continuation.finish()
            }
            return try? await receiver.receive(stream, contentType: contentType, to: path)
        }
        if let written {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
            precondition(written > 0 && written == size && written <= body.count, "wrote \(written), the file has \(size), the body \(body.count)")
        }
        unlink(path)
    }

    // MARK: Network

    static func webrtc(_ bytes: [UInt8]) {
        if let message = STUNMessage(parsing: bytes) {
            _ = message.username
            if message.hasIntegrity(password: "veza-fuzz-ice-password") {
                _ = message.bindingSuccess(address: [127, 0, 0, 1], port: 5004, password: "veza-fuzz-ice-password")
            }
        }
        _ = RTP.isRTCP(bytes)
        _ = try? WebRTCOffer(parsing: String(decoding: bytes, as: UTF8.self))
    }

    static func clientAddress(_ bytes: [UInt8]) {
        let fields = fields(bytes, 5)
        func lines(_ field: String?) -> [String] { field.map { $0.split(separator: "\t").map(String.init) } ?? [] }
        let trusted = [IPRange("10.0.0.0/8"), IPRange("::1/128"), fields[4].flatMap { IPRange($0) }].compactMap { $0 }
        let resolver = ClientAddressResolver(trustedProxies: trusted)
        let peer = fields[0].flatMap { IPAddress($0) } ?? IPAddress("10.1.2.3")
        if let peer { precondition(IPAddress(peer.description) == peer, "\(peer) does not parse to itself") }
        _ = resolver.resolve(peer: peer, forwarded: lines(fields[1]), xForwardedFor: lines(fields[2]), xRealIP: lines(fields[3]))
    }
}

/// Runs `body` to completion from a synchronous caller (libFuzzer calls in on its own thread,
/// outside any task).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let result = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        result.value = await body()
        done.signal()
    }
    done.wait()
    return result.value!
}

/// The hand-off of ``blocking(_:)``'s result.
final class ResultBox<T>: @unchecked Sendable { // safe: written once by the task before it signals, read only after the wait
    var value: T?
}
