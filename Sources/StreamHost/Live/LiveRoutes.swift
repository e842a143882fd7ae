import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import MediaCore
import NIOCore
import NIOHTTP1
import StreamKit

/// The live routes the router serves (sources arrive before the router: ``LiveSourceHandler``):
///
/// - `GET /live/{mount}` (or `{mount}.mp3|.aac|.ogg` matching the source): an ICY listener
///   mount, as Icecast serves it: one continuous body in the source's format, the burst of
///   recent audio first, `icy-metaint` and `StreamTitle` blocks for clients that send
///   `Icy-MetaData: 1`, `icy-name`/`icy-genre`/`icy-description`/`icy-pub`/`icy-br`.
/// - `GET /live/{mount}/{rung}.aac|.opus|.mp3`: one rung of the show's ladder as ICY (ADTS, Ogg Opus, MP3),
///   which goes on through the fallback.
/// - `GET /live/{mount}/master.m3u8`, `master-opus.m3u8`, `{rung}/index.m3u8`, `{rung}/init.mp4`,
///   `{rung}/seg-N.m4s`, `{rung}/part-N.P.m4s`: LL-HLS; `GET /live/{mount}/manifest.mpd`: live DASH
///   over the same segments (sent part by part when asked for before they are complete).
/// - `GET /admin/metadata?mount=/{mount}&mode=updinfo&song=…`: Icecast's title update, with the
///   mount's source credentials (basic auth) or a `live`-scope token.
/// - `GET /v1/live`, `GET /v1/live/{mount}`: mounts and their state; `POST /v1/live` creates a
///   mount and `DELETE /v1/live/{mount}` ends one (admin).
struct LiveRoutes: Sendable {
    let mounts: LiveMounts
    let auth: HostAuth
    let metrics: HostMetrics

    func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        router.get("/live/:mount") { request, context in
            try await self.listen(request, context, name: context.parameters.get("mount") ?? "")
        }
        // One parameter name per path position: Hummingbird's router refuses `{file}` here
        // beside `{rung}` in the route below (the second component is a file name here).
        router.get("/live/:mount/:rung") { request, context in
            try await self.multivariant(request, context, mount: context.parameters.get("mount") ?? "", file: context.parameters.get("rung") ?? "")
        }
        router.get("/live/:mount/:rung/:file") { request, context in
            try await self.llhls(request, context, mount: context.parameters.get("mount") ?? "", rung: context.parameters.get("rung") ?? "",
                                 file: context.parameters.get("file") ?? "")
        }
        router.get("/admin/metadata") { request, _ in
            try await self.updateMetadata(request)
        }
        router.get("/v1/live") { request, _ in
            try await auth.requireAny([.stream, .live], request)
            let now = Date()
            return MountList(mounts: await mounts.loadedAll().map { MountResource($0, auth: auth, now: now) })
        }
        router.get("/v1/live/:mount") { request, context in
            try await auth.requireAny([.stream, .live], request)
            guard let mount = await mounts.find(context.parameters.get("mount") ?? "") else { throw APIError.notFound("no live mount") }
            return MountResource(mount, auth: auth, now: Date())
        }
        router.post("/v1/live") { request, context in
            try await auth.require(.admin, request)
            let body = try await request.decode(as: NewMount.self, context: context)
            let configuration = try body.configuration(defaults: mounts.configuration)
            do {
                let mount = try await mounts.createStored(configuration)
                return EditedResponse(status: .created, headers: [.location: "/v1/live/\(mount.name)"], response: MountResource(mount, auth: auth, now: Date()))
            } catch is LiveMounts.CreateRefusal {
                throw APIError(.conflict, code: "mount_exists", "a mount named \(body.name) exists")
            }
        }
        router.delete("/v1/live/:mount") { request, context in
            try await auth.require(.admin, request)
            guard try await mounts.removeStored(context.parameters.get("mount") ?? "") else { throw APIError.notFound("no live mount") }
            return Response(status: .noContent)
        }
    }

    // MARK: Listening

    private func listen(_ request: Request, _ context: some RequestContext, name: String) async throws -> Response {
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
        return icyResponse(request, mount: mount, listener: listener, fanout: mount.relay, contentType: source.format.contentType,
                           name: source.name, genre: source.genre, description: source.description, isPublic: source.isPublic, bitrate: bitrate)
    }

    /// One rung of the ladder as an ICY stream (`/live/{mount}/{rung}.aac` as ADTS,
    /// `/live/{mount}/{rung}.opus` as Ogg Opus): it goes on through the fallback while the
    /// source is away.
    private func listenToRung(_ request: Request, mount: LiveMount, file: String) throws -> Response {
        guard let session = mount.session, !session.isEnded else { throw APIError(.notFound, code: "not_live", "mount \(mount.name) has no show now") }
        let stem = file.split(separator: ".").dropLast().joined(separator: ".")
        guard let stream = session.rungStreams[stem], file == "\(stem).\(stream.fileExtension)" else {
            throw APIError.notFound("no rung stream \(file.prefix(64)): the rungs are \(session.rungStreams.values.map { "\($0.rung).\($0.fileExtension)" }.sorted().joined(separator: ", "))")
        }
        let info = mount.status.source
        return icyResponse(request, mount: mount, listener: stream.fanout.addListener(), fanout: stream.fanout, contentType: stream.contentType,
                           name: info?.name, genre: info?.genre, description: info?.description, isPublic: info?.isPublic ?? false,
                           bitrate: String(stream.bitrate / 1000))
    }

    /// An ICY response: Icecast's headers, then the listener's queue as one continuous body,
    /// with `StreamTitle` blocks every `icy-metaint` bytes for clients that sent `Icy-MetaData: 1`.
    private func icyResponse(_ request: Request, mount: LiveMount, listener: LiveListener, fanout: LiveFanout, contentType: String,
                             name: String?, genre: String?, description: String?, isPublic: Bool, bitrate: String?) -> Response {
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
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            metrics.liveListenerJoined()
            var interleaver = interval.map { ICYMetadataInterleaver(interval: $0) }
            do {
                for await buffer in listener.buffers {
                    listener.consumed(buffer.readableBytes)
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
            }
            fanout.removeListener(listener)
            metrics.liveListenerLeft(dropped: listener.wasDropped)
            try? await writer.finish(nil)
        })
    }

    /// Authorises a listener of `mount` (nothing to check for a mount open to all) and returns
    /// the token its documents carry into their URIs.
    private func authorise(_ request: Request, _ context: some RequestContext, mount: LiveMount, relay: Bool = false) async throws -> String? {
        if mount.configuration.openListening { return nil }
        return try await auth.authorizeLive(request, mount: mount.name, relay: relay, now: Date(), client: DeliveryRoutes.client(context))
    }

    // MARK: LL-HLS

    private static let playlistType = "application/vnd.apple.mpegurl"

    /// The mount's show as LL-HLS and DASH, once the request is authorised, and the token to
    /// carry into its documents' URIs.
    ///
    /// - Parameter kind: the protocol the request belongs to, for the mount's audience (nil: a
    ///   segment or init segment, which both protocols use).
    private func liveHLS(_ request: Request, _ context: some RequestContext, _ name: String, kind: LiveAudience.Kind?) async throws -> (LivePresentation, String?) {
        guard let mount = await mounts.find(name) else { throw APIError.notFound("no live mount \(name.prefix(64))") }
        let token = try await authorise(request, context, mount: mount)
        let client = (DeliveryRoutes.client(context)?.description ?? "-") + "\u{0}" + (request.headers[.userAgent] ?? "")
        mount.audience.touch(kind, client: client)
        guard let hls = mount.hls else { throw APIError(.notFound, code: "not_live", "mount \(mount.name) has no live ladder now") }
        return (hls, token)
    }

    /// - Parameter maxAge: how long a cache may keep it (nil: revalidate every time). The answer
    ///   to a blocking playlist request (`_HLS_msn`) describes that moment of the show for good,
    ///   so a cache in front may keep it briefly and answer every player waiting for the same
    ///   part with one request to the origin (RFC 8216bis §6.2.5.2).
    private static func document(_ text: String, type: String, signed: Bool, maxAge: Int? = nil) -> Response {
        let freshness = maxAge.map { "max-age=\($0)" } ?? "no-cache"
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: (signed ? "private, " : "public, ") + freshness],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `master.m3u8` (the AAC set), `master-{family}.m3u8`, `manifest.mpd` (live DASH), or a
    /// rung as an ICY stream (`{rung}.aac`, `{rung}.opus`).
    private func multivariant(_ request: Request, _ context: some RequestContext, mount name: String, file: String) async throws -> Response {
        if let answer = try await elsewhere(request, context, mount: name, stream: file.hasSuffix(".aac") || file.hasSuffix(".opus") || file.hasSuffix(".mp3")) { return answer }
        if file == "manifest.mpd" {
            let (presentation, token) = try await liveHLS(request, context, name, kind: .dash)
            // The first whole segment of every rung, then the MPD as it stands.
            for rung in presentation.rungs {
                _ = await presentation.waitFor(rung: rung.id, index: presentation.partsPerSegment - 1,
                                               timeout: .seconds(3 * presentation.partSeconds * Double(presentation.partsPerSegment)))
            }
            guard let text = presentation.mpd(now: Date(), token: token) else {
                throw APIError(.serviceUnavailable, code: "part_not_ready", "the show's first segment is not encoded yet", retryAfter: 1)
            }
            return Self.document(text, type: "application/dash+xml", signed: token != nil)
        }
        if file.hasSuffix(".aac") || file.hasSuffix(".opus") || file.hasSuffix(".mp3") {
            guard let mount = await mounts.find(name) else { throw APIError.notFound("no live mount \(name.prefix(64))") }
            _ = try await authorise(request, context, mount: mount)
            return try listenToRung(request, mount: mount, file: file)
        }
        let mount = name
        let family: String
        if file == "master.m3u8" {
            family = "aac"
        } else if file.hasPrefix("master-"), file.hasSuffix(".m3u8") {
            family = String(file.dropFirst(7).dropLast(5))
        } else {
            throw APIError.notFound("no live object \(file.prefix(64))")
        }
        let (presentation, token) = try await liveHLS(request, context, mount, kind: .hls)
        guard let text = presentation.multivariantPlaylist(family: family, token: token) else { throw APIError.notFound("no \(family.prefix(16)) rungs") }
        return Self.document(text, type: Self.playlistType, signed: token != nil)
    }

    /// A rung's media playlist (with blocking reload), init segment, segments and parts.
    private func llhls(_ request: Request, _ context: some RequestContext, mount: String, rung: String, file: String) async throws -> Response {
        if let answer = try await elsewhere(request, context, mount: mount) { return answer }
        let (hls, token) = try await liveHLS(request, context, mount, kind: file == "index.m3u8" || file.hasPrefix("part-") ? .hls : nil)
        guard hls.rung(rung) != nil else { throw APIError.notFound("no rung \(rung.prefix(32))") }
        let per = hls.partsPerSegment
        let hold = Duration.seconds(3 * hls.partSeconds * Double(per))
        func media(_ bytes: [UInt8], maxAge: Int) -> Response {
            Response(status: .ok, headers: [.contentType: "audio/mp4", .cacheControl: "public, max-age=\(maxAge)"],
                     body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        switch file {
        case "index.m3u8":
            let query = request.uri.queryParameters
            let msn = query.get("_HLS_msn").map { Int($0) }
            let part = query.get("_HLS_part").map { Int($0) }
            if case .some(nil) = msn { throw APIError(.badRequest, code: "bad_request", "_HLS_msn must be an integer") }
            if case .some(nil) = part { throw APIError(.badRequest, code: "bad_request", "_HLS_part must be an integer") }
            if part != nil, msn == nil { throw APIError(.badRequest, code: "bad_request", "_HLS_part needs _HLS_msn") }
            // Delta updates (rfc8216bis §6.2.5.1); `v2` also asks to skip date ranges, which a
            // live show has none of.
            let skip = query.get("_HLS_skip")
            guard skip == nil || skip == "YES" || skip == "v2" else {
                throw APIError(.badRequest, code: "bad_request", "_HLS_skip must be YES or v2")
            }
            // The first segment's completion, then the requested part (RFC 8216bis §6.2.5.2).
            var wanted = per - 1
            if let msn = msn ?? nil {
                let next = hls.nextPartIndex(rung) / per
                guard msn <= next + 2 else { throw APIError(.badRequest, code: "bad_request", "_HLS_msn \(msn) is more than two segments ahead") }
                wanted = max(wanted, msn * per + ((part ?? nil) ?? (per - 1)))
            }
            guard await hls.waitFor(rung: rung, index: wanted, timeout: hold) else {
                throw APIError(.serviceUnavailable, code: "part_not_ready", "the requested part did not arrive in time", retryAfter: 1)
            }
            guard let text = hls.mediaPlaylist(rung: rung, deltaUpdate: skip != nil, token: token) else { throw APIError.notFound("no rung") }
            return Self.document(text, type: Self.playlistType, signed: token != nil,
                                 maxAge: msn == nil ? nil : Int((hls.partSeconds * Double(per)).rounded(.up)))
        case "init.mp4":
            return media(hls.rung(rung)?.initSegment ?? [], maxAge: 3600)
        default:
            if let name = file.wholeMatch(of: /seg-(\d{1,9})\.m4s/), let sequence = Int(name.1) {
                if let bytes = hls.segment(rung: rung, sequence: sequence) { return media(bytes, maxAge: 600) }
                // Low-latency DASH asks for a segment once its first part exists: it is sent in
                // chunks, part by part, as the encoder completes them.
                guard let parts = hls.segmentParts(rung: rung, sequence: sequence) else {
                    throw APIError.notFound("segment \(sequence) is not in the window")
                }
                return Response(status: .ok, headers: [.contentType: "audio/mp4", .cacheControl: "no-cache"], body: ResponseBody { writer in
                    for await bytes in parts { try await writer.write(ByteBuffer(bytes: bytes)) }
                    try await writer.finish(nil)
                })
            }
            if let name = file.wholeMatch(of: /part-(\d{1,9})\.(\d{1,2})\.m4s/), let sequence = Int(name.1), let index = Int(name.2), index < per {
                let absolute = sequence * per + index
                // A part one or two ahead (the preload hint) is held until it exists.
                if hls.part(rung: rung, index: absolute) == nil, absolute <= hls.nextPartIndex(rung) + 1 {
                    _ = await hls.waitFor(rung: rung, index: absolute, timeout: .seconds(3 * hls.partSeconds))
                }
                guard let part = hls.part(rung: rung, index: absolute) else { throw APIError.notFound("part \(sequence).\(index) is not in the window") }
                return media(part.bytes, maxAge: 600)
            }
            throw APIError.notFound("no live object \(file.prefix(64))")
        }
    }

    // MARK: Several hosts

    /// Marks a request one host proxies to another (which then never proxies it again).
    static let proxiedField = HTTPField.Name("X-Veza-Live-Proxied")!

    /// When the mount's show runs on another host (``LiveMounts/remoteOrigin(_:)``), that
    /// host's answer to this request, streamed as it comes (after this host has authorised the
    /// request, when it knows the mount); nil when the show runs here or nowhere.
    ///
    /// - Parameters:
    ///   - relay: the request is for the relay (authorised as the mount's prefix).
    ///   - stream: the answer is a continuous ICY stream (no deadline but the listener's).
    private func elsewhere(_ request: Request, _ context: some RequestContext, mount name: String, relay: Bool = false,
                           stream: Bool = false) async throws -> Response? {
        let local = await mounts.find(name)
        if let local, local.isRunningHere { return nil }
        guard request.headers[Self.proxiedField] == nil, let origin = await mounts.remoteOrigin(name) else { return nil }
        if let local { _ = try await authorise(request, context, mount: local, relay: relay) }
        var outgoing = HTTPClientRequest(url: origin.trimmingSuffix("/") + "\(request.uri)")
        for field in request.headers where [.authorization, .userAgent, .range, HTTPField.Name("Icy-MetaData")!].contains(field.name) {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        outgoing.headers.add(name: Self.proxiedField.rawName, value: "1")
        let response: HTTPClientResponse
        do {
            // A blocking playlist request may wait up to three segments at the origin.
            response = try await HTTPClient.shared.execute(outgoing, timeout: relay || stream ? .hours(24) : .seconds(30))
        } catch {
            throw APIError(.badGateway, code: "origin_unreachable", "the host running this show (\(origin)) did not answer: \(error)")
        }
        var headers = HTTPFields()
        for (name, value) in response.headers {
            let lower = name.lowercased()
            guard ["content-type", "cache-control", "retry-after"].contains(lower) || lower.hasPrefix("icy-"), let field = HTTPField.Name(name) else { continue }
            headers.append(HTTPField(name: field, value: value))
        }
        let body = response.body
        return Response(status: HTTPResponse.Status(code: Int(response.status.code)), headers: headers, body: ResponseBody { writer in
            for try await chunk in body { try await writer.write(chunk) }
            try await writer.finish(nil)
        })
    }

    // MARK: Icecast's admin metadata

    private func updateMetadata(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let name = String((query.get("mount") ?? "").drop { $0 == "/" })
        let mountName = name.hasPrefix("live/") ? String(name.dropFirst(5)) : name
        guard let mount = await mounts.find(mountName) else { throw APIError.notFound("no live mount \(mountName.prefix(64))") }
        try await authoriseSource(request, mount: mount)
        guard query.get("mode") == "updinfo" else {
            throw APIError(.badRequest, code: "bad_request", "only mode=updinfo is supported")
        }
        // `song`, or libshout's `artist` and `title` (ezstream), joined as Icecast joins them.
        let parts = [query.get("artist"), query.get("title")].compactMap { $0 }.filter { !$0.isEmpty }
        guard let song = query.get("song") ?? (parts.isEmpty ? nil : parts.joined(separator: " - ")), !song.isEmpty, song.utf8.count <= 1024 else {
            throw APIError(.badRequest, code: "bad_request", "song (or artist and title) must be 1–1024 bytes")
        }
        mount.setTitle(song)
        let xml = "<?xml version=\"1.0\"?>\n<iceresponse><message>Metadata update successful</message><return>1</return></iceresponse>\n"
        return Response(status: .ok, headers: [.contentType: "text/xml; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: xml)))
    }

    /// The mount's source password (basic auth) or a token with the `live` scope.
    private func authoriseSource(_ request: Request, mount: LiveMount) async throws {
        if let field = request.headers[.authorization], field.lowercased().hasPrefix("basic ") {
            let head = SourceRequestHead(method: .put, path: "/", version: "HTTP/1.1", fields: [("authorization", field)])
            guard case .basic(_, let password)? = head.credentials, !mount.configuration.sourcePassword.isEmpty,
                  constantTimeEqual(Array(password.utf8), Array(mount.configuration.sourcePassword.utf8)) else {
                throw LiveSourceHandler.unauthorised("wrong source credentials for \(mount.name)")
            }
            return
        }
        guard try await auth.authenticate(request)?.allows(.live) == true else {
            throw LiveSourceHandler.unauthorised("updating a mount's metadata needs its source credentials or a live token")
        }
    }
}

/// `POST /v1/live`'s body.
struct NewMount: Decodable, Sendable {
    var name: String
    var sourcePassword: String
    var takeover: Bool?
    var record: Bool?
    /// Listening without a signed URL or token (as on Icecast).
    var openListening: Bool?
    /// The mount's ladder: rung names (`aac-128`, `opus-48` …).
    var rungs: [String]?
    var dvrSeconds: Double?
    var loudnessTarget: Double?
    /// What plays while the source is away: `{"mount": "other"}` or `{"tracks": ["trk_…"]}` (default: silence).
    var fallback: Fallback?

    struct Fallback: Decodable, Sendable {
        var mount: String?
        var tracks: [String]?
    }

    /// The mount this body asks for, or 400 with the reason.
    func configuration(defaults: LiveConfiguration) throws -> LiveMountConfiguration {
        func refuse(_ message: String) -> APIError { APIError(.badRequest, code: "bad_request", message) }
        guard LiveMountConfiguration.isValidName(name) else { throw refuse("a mount name is 1–64 letters, digits, - _ or .") }
        guard sourcePassword.utf8.count >= 8 || sourcePassword.isEmpty else {
            throw refuse("a source password has at least 8 characters (or none: token sources only)")
        }
        if let rungs {
            guard (1...8).contains(rungs.count), Set(rungs).count == rungs.count else { throw refuse("rungs: 1–8 distinct rung names") }
            for rung in rungs where LiveRung(name: rung) == nil {
                throw refuse("rungs: '\(rung.prefix(40))' is not aac-KBPS (16–320), opus-KBPS (6–510) or mp3-KBPS (32–320)")
            }
            guard rungs.contains(where: { !$0.hasPrefix("mp3-") }) else {
                throw refuse("rungs: at least one AAC or Opus rung (LL-HLS and DASH); MP3 rungs are ICY streams only")
            }
        }
        if let dvrSeconds, !(30...(4 * 3600)).contains(dvrSeconds) { throw refuse("dvrSeconds is 30–14400") }
        if let loudnessTarget, !(-40 ... -5).contains(loudnessTarget) { throw refuse("loudnessTarget is -40 to -5 LUFS") }
        if let fallback {
            guard (fallback.mount == nil) != (fallback.tracks == nil) else { throw refuse("fallback is {\"mount\": NAME} or {\"tracks\": [IDS]}") }
            if let mount = fallback.mount, !LiveMountConfiguration.isValidName(mount) || mount == name {
                throw refuse("fallback.mount must name another mount")
            }
            if let tracks = fallback.tracks, !(1...100).contains(tracks.count) || tracks.contains(where: { $0.isEmpty || $0.utf8.count > 64 }) {
                throw refuse("fallback.tracks: 1–100 track ids")
            }
        }
        return LiveMountConfiguration(name: name, sourcePassword: sourcePassword, takeover: takeover ?? false, record: record ?? defaults.record,
                                      openListening: openListening ?? defaults.openListening, rungs: rungs, dvrSeconds: dvrSeconds,
                                      loudnessTarget: loudnessTarget, fallbackMount: fallback?.mount, fallbackTracks: fallback?.tracks)
    }
}

/// A live mount as the API shows it (never its source password).
struct MountResource: ResponseEncodable, Sendable {
    struct Source: Codable, Sendable {
        var format: String
        var contentType: String
        var name: String?
        var genre: String?
        var description: String?
        var isPublic: Bool
        var userAgent: String?
        var connectedAt: Date
    }

    /// The show: from the first source's connection until no source came back within the grace period.
    struct Show: Codable, Sendable {
        var id: String
        var startedAt: Date
        var ended: Bool
        /// Seconds of fallback audio (silence) played while the source was away or stalled.
        var fallbackSeconds: Double
        var sourceReconnects: Int
        /// The live loudness stage's gain now (dB), when the stage runs.
        var loudnessGain: Double?
        /// What plays while the source is away (`mount:NAME`, `tracks:N`); nil: silence.
        var fallback: String?
        /// The track the show's recording became, once the show has ended.
        var recordingTrack: String?
        var recordingError: String?
    }

    var name: String
    /// `live` while a source is connected, `fallback` while the show waits for its source to
    /// come back, else `idle`.
    var state: String
    var source: Source?
    var title: String?
    var listeners: [String: Int]
    var droppedListeners: Int
    var bytesIn: Int
    var mediaSeconds: Double
    var takeover: Bool
    var record: Bool
    /// Whether listening needs no signed URL or token.
    var openListening: Bool
    /// The mount's ladder.
    var rungs: [String]
    /// The show now, or the last one.
    var show: Show?
    /// Where listeners listen.
    var urls: [String: String]
    /// How far behind the source listeners are, while a show runs.
    var latency: Latency?

    struct Latency: Codable, Sendable {
        /// The LL-HLS part (and DASH chunk) duration.
        var partSeconds: Double
        /// How far behind the live edge LL-HLS players stay (`PART-HOLD-BACK`, three parts)
        /// and DASH players aim (`ServiceDescription` latency).
        var playerTargetSeconds: Double
        /// From the arrival of the audio completing the last part to its publication.
        var lastPartPublishSeconds: Double?
    }
    /// Why the live ladder (LL-HLS) is not running for this source, when it is not.
    var ladderError: String?

    /// - Parameters:
    ///   - auth: signs the listening URLs (unless the mount is open or the host public).
    ///   - now: when the signatures start.
    init(_ mount: LiveMount, auth: HostAuth, now: Date) {
        let status = mount.status
        name = mount.name
        let show = status.session
        state = status.source != nil ? "live" : (show.map { !$0.ended } ?? false) ? "fallback" : "idle"
        self.show = show.map {
            Show(id: $0.id, startedAt: $0.startedAt, ended: $0.ended, fallbackSeconds: $0.fallbackSeconds, sourceReconnects: $0.reconnects,
                 loudnessGain: $0.loudnessGain, fallback: $0.fallback, recordingTrack: $0.recordingTrack, recordingError: $0.recordingError)
        }
        record = mount.configuration.record
        source = status.source.map {
            Source(format: $0.format.rawValue, contentType: $0.format.contentType, name: $0.name, genre: $0.genre,
                   description: $0.description, isPublic: $0.isPublic, userAgent: $0.userAgent, connectedAt: $0.connectedAt)
        }
        title = status.title
        let audience = mount.audience.counts()
        listeners = ["icy": status.listeners, "icyLadder": show?.rungListeners ?? 0, "hls": audience[.hls] ?? 0, "dash": audience[.dash] ?? 0]
        droppedListeners = status.droppedListeners
        bytesIn = status.bytesIn
        mediaSeconds = (status.mediaSeconds * 1000).rounded() / 1000
        takeover = mount.configuration.takeover
        urls = ["icy": "/live/\(mount.name)", "hls": "/live/\(mount.name)/master.m3u8", "hlsOpus": "/live/\(mount.name)/master-opus.m3u8",
                "dash": "/live/\(mount.name)/manifest.mpd"]
        for stream in mount.session?.rungStreams.values.sorted(by: { $0.rung < $1.rung }) ?? [] {
            urls["icy:" + stream.rung] = "/live/\(mount.name)/\(stream.rung).\(stream.fileExtension)"
        }
        if !mount.configuration.openListening {
            urls = urls.mapValues { auth.signedLivePath($0, mount: mount.name, now: now) }
        }
        openListening = mount.configuration.openListening
        rungs = mount.configuration.applied(to: mount.live).rungs.map(\.id)
        ladderError = status.ladderError
        if let presentation = mount.hls, show.map({ !$0.ended }) ?? false {
            latency = Latency(partSeconds: presentation.partSeconds, playerTargetSeconds: (presentation.partSeconds * 3 * 1000).rounded() / 1000,
                              lastPartPublishSeconds: show?.lastPublishSeconds)
        }
    }
}

struct MountList: ResponseEncodable, Sendable {
    var mounts: [MountResource]
}
