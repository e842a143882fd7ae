import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import MediaCore
import NIOCore
import NIOHTTP1
import StreamKit

/// The show as LL-HLS (multivariant and media playlists with blocking reload and delta
/// updates, init segments, segments and parts) and as live DASH (the MPD).
extension LiveRoutes {
    // MARK: LL-HLS

    static let playlistType = "application/vnd.apple.mpegurl"

    /// The mount's show as LL-HLS and DASH, once the request is authorised, and the token to
    /// carry into its documents' URIs.
    ///
    /// - Parameter kind: the protocol the request belongs to, for the mount's audience (nil: a
    ///   segment or init segment, which both protocols use).
    func liveHLS(_ request: Request, _ context: some RequestContext, _ name: String, kind: LiveAudience.Kind?) async throws -> (LivePresentation, String?) {
        guard let mount = await mounts.find(name) else { throw APIError.notFound("no live mount \(name.prefix(64))") }
        let token = try await authorise(request, context, mount: mount)
        mount.audience.touch(kind, address: DeliveryRoutes.client(context), userAgent: request.headers[.userAgent])
        guard let hls = mount.hls else { throw APIError(.notFound, code: "not_live", "mount \(mount.name) has no live ladder now") }
        return (hls, token)
    }

    /// - Parameter maxAge: how long a cache may keep it (nil: revalidate every time). The answer
    ///   to a blocking playlist request (`_HLS_msn`) describes that moment of the show for good,
    ///   so a cache in front may keep it briefly and answer every player waiting for the same
    ///   part with one request to the origin (RFC 8216bis §6.2.5.2).
    static func document(_ text: String, type: String, signed: Bool, maxAge: Int? = nil) -> Response {
        let freshness = maxAge.map { "max-age=\($0)" } ?? "no-cache"
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: (signed ? "private, " : "public, ") + freshness],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `master.m3u8` (the AAC set), `master-{family}.m3u8`, `manifest.mpd` (live DASH), or a
    /// rung as an ICY stream (`{rung}.aac`, `{rung}.opus`).
    func multivariant(_ request: Request, _ context: some RequestContext, mount name: String, file: String) async throws -> Response {
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
            return try listenToRung(request, mount: mount, file: file, address: DeliveryRoutes.client(context))
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
    func llhls(_ request: Request, _ context: some RequestContext, mount: String, rung: String, file: String) async throws -> Response {
        if let answer = try await elsewhere(request, context, mount: mount) { return answer }
        let object = LiveObjectName(file)
        let kind: LiveAudience.Kind?
        switch object {
        case .playlist, .part: kind = .hls
        case .initialization, .segment, nil: kind = nil
        }
        let (hls, token) = try await liveHLS(request, context, mount, kind: kind)
        guard hls.rung(rung) != nil else { throw APIError.notFound("no rung \(rung.prefix(32))") }
        let per = hls.partsPerSegment
        let hold = Duration.seconds(3 * hls.partSeconds * Double(per))
        func media(_ bytes: [UInt8], maxAge: Int) -> Response {
            Response(status: .ok, headers: [.contentType: "audio/mp4", .cacheControl: "public, max-age=\(maxAge)"],
                     body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        switch object {
        case .playlist:
            let query = request.uri.queryParameters
            let directives: PlaylistDirectives
            do {
                directives = try PlaylistDirectives(msn: query.get("_HLS_msn"), part: query.get("_HLS_part"), skip: query.get("_HLS_skip"))
            } catch {
                throw APIError(.badRequest, code: "bad_request", error.description)
            }
            let msn = directives.mediaSequence
            // The first segment's completion, then the requested part (RFC 8216bis §6.2.5.2).
            var wanted = per - 1
            if let msn {
                let next = hls.nextPartIndex(rung) / per
                guard msn <= next + 2 else { throw APIError(.badRequest, code: "bad_request", "_HLS_msn \(msn) is more than two segments ahead") }
                wanted = max(wanted, msn * per + (directives.part ?? (per - 1)))
            }
            guard await hls.waitFor(rung: rung, index: wanted, timeout: hold) else {
                throw APIError(.serviceUnavailable, code: "part_not_ready", "the requested part did not arrive in time", retryAfter: 1)
            }
            // A delta update (rfc8216bis §6.2.5.1) for either skip kind: `v2` also skips date
            // ranges, which a live show has none of.
            guard let text = hls.mediaPlaylist(rung: rung, deltaUpdate: directives.skip != nil, token: token) else { throw APIError.notFound("no rung") }
            return Self.document(text, type: Self.playlistType, signed: token != nil,
                                 maxAge: msn == nil ? nil : Int((hls.partSeconds * Double(per)).rounded(.up)))
        case .initialization:
            return media(hls.rung(rung)?.initSegment ?? [], maxAge: 3600)
        case .segment(let sequence):
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
        case .part(let sequence, let index) where index < per:
            let absolute = sequence * per + index
            // A part one or two ahead (the preload hint) is held until it exists.
            if hls.part(rung: rung, index: absolute) == nil, absolute <= hls.nextPartIndex(rung) + 1 {
                _ = await hls.waitFor(rung: rung, index: absolute, timeout: .seconds(3 * hls.partSeconds))
            }
            guard let part = hls.part(rung: rung, index: absolute) else { throw APIError.notFound("part \(sequence).\(index) is not in the window") }
            return media(part.bytes, maxAge: 600)
        case .part, nil:
            throw APIError.notFound("no live object \(file.prefix(64))")
        }
    }
}
