import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import MediaCore
import NIOCore
import NIOHTTP1
import StreamKit

/// Listening as on Icecast: the relay of the source (`/live/{mount}`) and each rung of the
/// ladder as a continuous ICY stream (`/live/{mount}/{rung}.aac|.opus|.mp3`).
extension LiveRoutes {
    // MARK: Listening

    func listen(_ request: Request, _ context: some RequestContext, name: String) async throws -> Response {
        var mountName = name
        var wanted: LiveStreamFormat?
        for (suffix, format) in [(".mp3", LiveStreamFormat.mpegAudio), (".aac", .adts), (".ogg", .ogg), (".opus", .ogg)] where name.hasSuffix(suffix) {
            mountName = String(name.dropLast(suffix.count))
            wanted = format
        }
        if let answer = try await elsewhere(request, context, mount: mountName, relay: true) { return answer }
        guard let mount = await mounts.find(mountName) else { throw APIError.notFound("no live mount \(mountName.prefix(64))") }
        _ = try await authorise(request, context, mount: mount, relay: true)
        guard let (listener, source) = mount.addListener() else {
            throw APIError(.notFound, code: "not_live", "mount \(mount.name) has no source now")
        }
        if let wanted, wanted != source.format {
            mount.relay.removeListener(listener)
            throw APIError.notFound("mount \(mount.name) is \(source.format.contentType), not \(wanted.contentType): its ladder is at /live/\(mount.name)/{rung}.aac|.opus")
        }
        let bitrate = source.bitrate?.split(separator: ";").first { $0.hasPrefix("bitrate=") || $0.allSatisfy(\.isNumber) }
            .map { String($0.split(separator: "=").last ?? "") }
        let codec = switch source.format {
        case .mpegAudio: "mp3"
        case .adts: "aac"
        case .ogg: "ogg"
        }
        let session = LiveListenerSession(mount: mount.name, transport: "icy", rendition: "relay", codec: codec, address: DeliveryRoutes.client(context),
                                          userAgent: request.headers[.userAgent], startedAt: 0, endedAt: 0)
        return icyResponse(request, mount: mount, listener: listener, fanout: mount.relay, contentType: source.format.contentType,
                           name: source.name, genre: source.genre, description: source.description, isPublic: source.isPublic, bitrate: bitrate,
                           session: session)
    }

    /// One rung of the ladder as an ICY stream (`/live/{mount}/{rung}.aac` as ADTS,
    /// `/live/{mount}/{rung}.opus` as Ogg Opus): it goes on through the fallback while the
    /// source is away.
    func listenToRung(_ request: Request, mount: LiveMount, file: String, address: IPAddress?) throws -> Response {
        guard let session = mount.session, !session.isEnded else { throw APIError(.notFound, code: "not_live", "mount \(mount.name) has no show now") }
        let stem = file.split(separator: ".").dropLast().joined(separator: ".")
        guard let stream = session.rungStreams[stem], file == "\(stem).\(stream.fileExtension)" else {
            throw APIError.notFound("no rung stream \(file.prefix(64)): the rungs are \(session.rungStreams.values.map { "\($0.rung).\($0.fileExtension)" }.sorted().joined(separator: ", "))")
        }
        let info = mount.status.source
        return icyResponse(request, mount: mount, listener: stream.fanout.addListener(), fanout: stream.fanout, contentType: stream.contentType,
                           name: info?.name, genre: info?.genre, description: info?.description, isPublic: info?.isPublic ?? false,
                           bitrate: String(stream.bitrate / 1000),
                           session: LiveListenerSession(mount: mount.name, transport: "icy-ladder", rendition: stream.rung,
                                                        codec: stream.fileExtension, address: address, userAgent: request.headers[.userAgent],
                                                        startedAt: 0, endedAt: 0))
    }

    /// An ICY response: Icecast's headers, then the listener's queue as one continuous body,
    /// with `StreamTitle` blocks every `icy-metaint` bytes for clients that sent `Icy-MetaData: 1`.
    /// When it ends, `session` (times and bytes filled in) goes to listening analytics.
    func icyResponse(_ request: Request, mount: LiveMount, listener: LiveListener, fanout: LiveFanout, contentType: String,
                     name: String?, genre: String?, description: String?, isPublic: Bool, bitrate: String?,
                     session: LiveListenerSession) -> Response {
        let interval = request.headers[HTTPField.Name("Icy-MetaData")!] == "1" ? mounts.configuration.icyMetaInterval : nil
        var headers: HTTPFields = [.contentType: contentType, .cacheControl: "no-cache, no-store"]
        func set(_ name: String, _ value: String?) {
            if let value, !value.isEmpty, let field = HTTPField.Name(name) {
                headers[field] = String(value.unicodeScalars.filter { $0.isASCII && $0.value >= 0x20 }.prefix(200).map(Character.init))
            }
        }
        set("icy-name", name ?? mount.name)
        set("icy-genre", genre)
        set("icy-description", description)
        set("icy-pub", isPublic ? "1" : "0")
        set("icy-br", bitrate)
        if let interval { set("icy-metaint", String(interval)) }
        let metrics = self.metrics
        let listening = mounts.listening
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            metrics.liveListenerJoined()
            var session = session
            session.startedAt = Date().timeIntervalSince1970
            var interleaver = interval.map { ICYMetadataInterleaver(interval: $0) }
            var left = false
            do {
                for await buffer in listener.buffers {
                    listener.consumed(buffer.readableBytes)
                    session.bytes += Int64(buffer.readableBytes)
                    if var icy = interleaver {
                        for piece in icy.interleave(count: buffer.readableBytes, title: mount.title) {
                            switch piece {
                            case .audio(let range):
                                try await writer.write(buffer.getSlice(at: buffer.readerIndex + range.lowerBound, length: range.count)!)
                            case .metadata(let block):
                                try await writer.write(ByteBuffer(bytes: block))
                            }
                        }
                        interleaver = icy
                    } else {
                        try await writer.write(buffer)
                    }
                    metrics.liveBytesOut(buffer.readableBytes)
                }
            } catch {
                // The listener went away.
                left = true
            }
            fanout.removeListener(listener)
            metrics.liveListenerLeft(dropped: listener.wasDropped)
            session.endedAt = Date().timeIntervalSince1970
            session.showEnded = !left && !listener.wasDropped
            listening.ended(session)
            try? await writer.finish(nil)
        })
    }
}
