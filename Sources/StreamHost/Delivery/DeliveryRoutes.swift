public import Hummingbird
import Foundation
import HTTPTypes
import NIOCore
import StreamKit
import Synchronization

/// Playback routes (DESIGN.md §4): HLS master and media playlists and the DASH MPD, rendered
/// per request from the published `manifest.json` (so they carry the session's signed token),
/// the CMAF segments, progressive files and waveforms under `/media/{id}/v{n}/…`, the demo page.
///
/// URIs inside playlists are relative (`../../media/{id}/v{n}/cmaf/…`), so they work behind any
/// reverse proxy or CDN that maps the host's paths, and a signed token never leaks to another
/// origin. One signed master-playlist (or MPD) URL opens the whole session: the token covers the
/// track's `/hls/`, `/dash/` and `/media/` prefixes and is carried into every URI.
public struct DeliveryRoutes: Sendable {
    let catalog: any Catalog
    let storage: any ObjectStorage
    let auth: HostAuth
    let configuration: HostConfiguration
    let responder: ObjectResponder
    let manifests: ManifestCache
    /// Counts each playback session's requests (nil: analytics off).
    var analytics: ListeningTracker?
    /// Records and codes the playback sessions of watermarked tracks (nil: a watermarked
    /// track's media playlists are refused).
    var watermarks: WatermarkService?

    public init(catalog: any Catalog, storage: any ObjectStorage, auth: HostAuth, configuration: HostConfiguration,
                metrics: HostMetrics?) {
        self.init(catalog: catalog, storage: storage, auth: auth, configuration: configuration, metrics: metrics,
                  cache: ObjectCache(capacityBytes: configuration.objectCacheBytes), manifests: ManifestCache())
    }

    init(catalog: any Catalog, storage: any ObjectStorage, auth: HostAuth, configuration: HostConfiguration,
         metrics: HostMetrics?, cache: ObjectCache, manifests: ManifestCache) {
        self.manifests = manifests
        self.catalog = catalog
        self.storage = storage
        self.auth = auth
        self.configuration = configuration
        responder = ObjectResponder(storage: storage, metrics: metrics, cache: cache)
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        for method in [HTTPRequest.Method.get, .head] {
            router.on("/hls/:id/master.m3u8", method: method) { request, context in
                try await self.serve(.master(nil), id: try context.parameters.require("id"), request: request, client: Self.client(context))
            }
            router.on("/hls/:id/:playlist", method: method) { request, context in
                let name = try context.parameters.require("playlist")
                guard let document = Document(hlsPlaylist: name) else { throw APIError.notFound("no playlist \(name)") }
                return try await self.serve(document, id: try context.parameters.require("id"), request: request, client: Self.client(context))
            }
            router.on("/dash/:id/manifest.mpd", method: method) { request, context in
                try await self.serve(.mpd, id: try context.parameters.require("id"), request: request, client: Self.client(context))
            }
            router.on("/media/:id/**", method: method) { request, context in
                let start = ContinuousClock.now
                let id = try context.parameters.require("id")
                let rest = context.parameters.getCatchAll().joined(separator: "/")
                guard let kind = Self.publishedObjectKind(rest) else { throw APIError.notFound("no such object") }
                let token = try await self.auth.authorizePlayback(request, track: id, now: Date(), client: Self.client(context))
                let key = TrackLayout(track: id).object(rest)
                if self.configuration.redirectMedia, let url = self.storage.presignedURL(for: key, expires: 3600) {
                    self.count(token: token, track: id, object: DeliveredObject(mediaPath: Substring(rest), range: nil), bytes: 0,
                               request: request, context: context)
                    return Response(status: .found, headers: [.location: url, .cacheControl: "private, max-age=60"])
                }
                let pacing = kind.metricsKind == "progressive" ? try await self.pacing(track: id, path: rest) : nil
                let response = try await self.responder.respond(
                    key: key, request: request, contentType: MediaContentType.forKey(key),
                    cacheControl: Self.immutable, kind: kind, requestStart: start, pacing: pacing)
                if response.status.code < 300 {
                    let range = response.headers[.contentRange].flatMap(Self.sentRange)
                    self.count(token: token, track: id, object: DeliveredObject(mediaPath: Substring(rest), range: range),
                               bytes: response.headers[.contentLength].flatMap { Int($0) } ?? 0, request: request, context: context)
                }
                return response
            }
            router.on("/v1/tracks/:id/waveform.json", method: method) { request, context in
                let id = try context.parameters.require("id")
                let (_, version, _) = try await self.playable(id, request, client: Self.client(context))
                return try await self.responder.respond(
                    key: TrackLayout(track: id).version(version).waveformJSON, request: request,
                    contentType: "application/json", cacheControl: self.playlistCacheControl(signed: !self.auth.isPublic),
                    kind: .init(metricsKind: "waveform", isStreamStart: false))
            }
        }
        router.get("/demo") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.demo_html)))
        }
        router.get("/dashboard") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.dashboard_html)))
        }
        router.get("/") { _, _ in
            Response(status: .found, headers: [.location: "/demo"])
        }
    }

    /// The documents rendered per request from a published manifest.
    enum Document: Sendable {
        /// `/hls/{id}/master.m3u8` (nil: the default switching set) or
        /// `/hls/{id}/master-{set}.m3u8`: one multivariant playlist per switching set.
        case master(String?)
        /// `/hls/{id}/{rendition}.m3u8`
        case media(String)
        /// `/dash/{id}/manifest.mpd`
        case mpd

        /// The HLS playlist named `name` (`master.m3u8`, `master-opus.m3u8`, `aac-128.m3u8`).
        init?(hlsPlaylist name: String) {
            guard name.hasSuffix(".m3u8") else { return nil }
            let stem = name.dropLast(5)
            if stem == "master" {
                self = .master(nil)
            } else if stem.hasPrefix("master-") {
                self = .master(String(stem.dropFirst(7)))
            } else {
                self = .media(String(stem))
            }
        }

        /// Which document of a version, for ``ManifestCache``'s templates.
        var templateKey: String {
            switch self {
            case .master(let set): TrackManifest.masterPlaylistName(set)
            case .media(let rendition): "media/" + rendition
            case .mpd: "mpd"
            }
        }

        var isMPD: Bool {
            if case .mpd = self { return true }
            return false
        }

        var contentType: String { isMPD ? MediaContentType.dashManifest : MediaContentType.hlsPlaylist }

        /// The route pattern, as metrics label it.
        var route: String {
            switch self {
            case .master(nil): "/hls/{id}/master.m3u8"
            case .master, .media: "/hls/{id}/{playlist}"
            case .mpd: "/dash/{id}/manifest.mpd"
            }
        }
    }

    /// Counts a media request of the session whose token opened it.
    private func count(token: String?, track: String, object: DeliveredObject, bytes: Int, request: Request, context: some RequestContext) {
        guard let analytics, let token, let label = PlaybackSessionLabel.of(token: token) else { return }
        analytics.observe(label: label, track: track, object: object, bytes: bytes, client: Self.client(context),
                          userAgent: { request.headers[.userAgent] }, at: Date().timeIntervalSince1970)
    }

    /// The bytes a `Content-Range: bytes a-b/len` names.
    static func sentRange(_ field: String) -> Range<Int64>? {
        guard field.hasPrefix("bytes "), let dash = field.firstIndex(of: "-"), let slash = field.firstIndex(of: "/"), dash < slash,
              let first = Int64(field[field.index(field.startIndex, offsetBy: 6)..<dash]),
              let last = Int64(field[field.index(after: dash)..<slash]), first <= last else { return nil }
        return first..<(last + 1)
    }

    /// The request's client address, when the context knows it.
    static func client(_ context: some RequestContext) -> IPAddress? {
        (context as? any ClientAddressRequestContext)?.clientAddress
    }

    private func serve(_ document: Document, id: String, request: Request, client: IPAddress?) async throws -> Response {
        let (manifest, version, token) = try await playable(id, request, client: client)
        // A protected track has HLS or DASH, not both: say which, rather than "no such rendition".
        if let protection = manifest.protection, document.isMPD ? protection.scheme == .aes128 : !manifest.playsOverHLS {
            throw APIError(.notFound, code: "not_available", document.isMPD
                ? "track \(id) is protected with HLS AES-128, which DASH players cannot decrypt: play its HLS playlists"
                : "track \(id) is protected with \(protection.method), which HLS players cannot decrypt: play its DASH MPD")
        }
        let rendered: String?
        if manifest.watermark != nil {
            rendered = try await renderWatermarked(document, id: id, manifest: manifest, version: version, token: token)
        } else {
            rendered = try render(document, id: id, manifest: manifest, version: version, token: token)
        }
        guard let text = rendered else {
            throw APIError.notFound("track \(id) has no such rendition")
        }
        if let analytics, let token, let label = PlaybackSessionLabel.of(token: token) {
            analytics.observe(label: label, track: id, object: .playlist, bytes: text.utf8.count, client: client,
                              userAgent: { request.headers[.userAgent] }, at: Date().timeIntervalSince1970)
        }
        return self.document(text, type: document.contentType, request: request, signed: token != nil)
    }

    /// The text of a document, with `token` carried into every URI; nil for a rendition the
    /// track does not have.
    ///
    /// A published version's documents differ between sessions only by the token, so each is
    /// rendered once with a placeholder for it and kept split around it (in ``ManifestCache``);
    /// a request joins the pieces with its token. Rendering a 3-minute track's media playlist
    /// (every URI built, checked and given the query) was a third of the host's CPU while
    /// thousands of listeners started.
    func render(_ document: Document, id: String, manifest: TrackManifest, version: Int, token: String?) throws -> String? {
        // Tokens are base64url and dots: no percent-encoding, so the join is exact.
        guard let token, token.utf8.allSatisfy(QueryRewriter.isUnreserved) else {
            return try renderDirectly(document, id: id, manifest: manifest, version: version, token: token)
        }
        let key = "\(id)/v\(version)/\(document.templateKey)"
        let pieces: [String]
        if let cached = manifests.template(key) {
            pieces = cached
        } else {
            let rendered = try renderDirectly(document, id: id, manifest: manifest, version: version, token: Self.placeholder)
            pieces = rendered?.components(separatedBy: Self.placeholder) ?? []
            manifests.storeTemplate(key, pieces)
        }
        return pieces.isEmpty ? nil : pieces.joined(separator: token)
    }

    /// A watermarked track's document: a media playlist or MPD names, segment by segment, the
    /// variant the session's code picks (rendered per request, never cached: it is the
    /// session's own), once the session is recorded as a candidate of the detector. Without a
    /// playback session (public mode, a token without one) there is nobody to trace: 403.
    func renderWatermarked(_ document: Document, id: String, manifest: TrackManifest, version: Int, token: String?) async throws -> String? {
        if case .master = document {
            return try render(document, id: id, manifest: manifest, version: version, token: token)
        }
        guard let watermarks, let token, let session = PlaybackSessionLabel.of(token: token) else {
            throw APIError(.forbidden, code: "session_required",
                           "track \(id) is watermarked: it plays only in a playback session (the signed URLs of GET /v1/tracks/\(id))")
        }
        try await watermarks.register(track: id, session: session, subject: nil)
        let query = (HostAuth.tokenParameter, token)
        switch document {
        case .media(let rendition):
            guard let published = manifest.renditions.first(where: { $0.id == rendition }) else { return nil }
            let variants = try watermarks.variants(track: id, session: session.id, count: published.segments.count)
            return try manifest.mediaPlaylist(rendition: rendition, base: mediaBase(id, version), query: query, variants: variants)
        case .mpd:
            let variants = try watermarks.variants(track: id, session: session.id, count: manifest.renditions.map(\.segments.count).max() ?? 0)
            return try manifest.mpd(base: mediaBase(id, version), query: query, variants: variants)
        case .master:
            return nil
        }
    }

    /// Stands for the token in a rendered template (unreserved characters only: no encoding).
    static let placeholder = "VEZAxTOKENxPLACEHOLDERx7f3a9c"

    private func renderDirectly(_ document: Document, id: String, manifest: TrackManifest, version: Int, token: String?) throws -> String? {
        let query = token.map { (HostAuth.tokenParameter, $0) }
        switch document {
        case .master(let set): return try manifest.masterPlaylist(switchingSet: set, query: query)
        case .media(let rendition): return try manifest.mediaPlaylist(rendition: rendition, base: mediaBase(id, version), query: query)
        case .mpd: return try manifest.mpd(base: mediaBase(id, version), query: query)
        }
    }

    /// Cache-Control of published objects: a version's objects never change.
    static let immutable = "public, max-age=31536000, immutable"

    /// `../../media/{id}/v{n}/`: from `/hls/{id}/x.m3u8` or `/dash/{id}/manifest.mpd` to the
    /// media; `{cdn.baseURL}/media/{id}/v{n}/` when a CDN fronts the media.
    func mediaBase(_ id: String, _ version: Int) -> String {
        if let cdn = configuration.cdnBaseURL { return cdn.trimmingSuffix("/") + "/media/\(id)/v\(version)/" }
        return "../../media/\(id)/v\(version)/"
    }

    /// Only published renditions, progressive files and waveforms are served from `/media`
    /// (never `manifest.json` or the kept source).
    static func publishedObjectKind(_ rest: String) -> ObjectResponder.Kind? {
        guard isPlainRelativePath(rest) else { return nil }
        var rest = rest
        // Over the bytes, at most four segments (no array, no String comparison: this runs for
        // every segment served).
        return rest.withUTF8 { bytes -> ObjectResponder.Kind? in
            var ends = (0, 0, 0, 0)
            var count = 0
            for index in 0...bytes.count where index == bytes.count || bytes[index] == UInt8(ascii: "/") {
                guard count < 4 else { return nil }
                switch count {
                case 0: ends.0 = index
                case 1: ends.1 = index
                case 2: ends.2 = index
                default: ends.3 = index
                }
                count += 1
            }
            guard count >= 2 else { return nil }
            func segment(_ start: Int, _ end: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: bytes[start..<end]) }
            let version = segment(0, ends.0)
            guard version.count >= 2, version[0] == UInt8(ascii: "v"),
                  version.dropFirst().allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  version.count <= 19 || Int(String(decoding: version.dropFirst(), as: UTF8.self)) != nil
            else { return nil }
            let second = segment(ends.0 + 1, ends.1)
            if second.matches("cmaf") {
                guard count == 4 else { return nil }
                let file = segment(ends.2 + 1, ends.3)
                if file.matches("init.mp4") { return .init(metricsKind: "init", isStreamStart: false) }
                guard file.count >= 8, file.hasPrefix("seg-"),
                      UnsafeBufferPointer(rebasing: file.suffix(4)).matches(".m4s") else { return nil }
                // `seg-1.m4s`, or a watermark variant's `seg-1-{tag}.m4s`
                return .init(metricsKind: "segment", isStreamStart: file.matches("seg-1.m4s") || (file.count > 6 && file[5] == UInt8(ascii: "-") && file[4] == UInt8(ascii: "1")))
            }
            if second.matches("progressive") {
                return count == 3 ? .init(metricsKind: "progressive", isStreamStart: true) : nil
            }
            if second.matches("waveform.json") || second.matches("waveform.dat") {
                return count == 2 ? .init(metricsKind: "waveform", isStreamStart: false) : nil
            }
            return nil
        }
    }

    /// The published manifest of a ready track the request may play, its version, and the
    /// token to carry into the URIs (nil in public mode).
    func playable(_ id: String, _ request: Request, client: IPAddress? = nil) async throws -> (TrackManifest, Int, String?) {
        let token = try await auth.authorizePlayback(request, track: id, now: Date(), client: client)
        guard let record = try await catalog.track(id: id) else {
            throw APIError.notFound("no track \(id)")
        }
        guard record.status == .ready, let json = record.manifestJSON else {
            throw APIError(.conflict, code: "not_ready", "track \(id) is \(record.status.rawValue), not ready yet", retryAfter: 5)
        }
        let manifest = try manifests.manifest(id: id, version: record.version, json: json)
        manifests.rememberReady(id: id, version: record.version, manifest: manifest)
        return (manifest, record.version, token)
    }

    /// Asks the catalog whether `id` is still ready and renews or drops the fast path's entry
    /// (``ManifestCache/readyTrack(_:now:)``).
    func refreshReady(_ id: String) async {
        do {
            guard let record = try await catalog.track(id: id) else {
                manifests.forget(id)   // deleted
                return
            }
            if manifests.published(record) == nil { manifests.notReady(id) }
        } catch {
            manifests.refreshFailed(id)
        }
    }

    /// The pacing of a progressive file (`v{n}/progressive/{file}`): its bitrate from the
    /// published manifest (size over duration), burst and multiple from the configuration.
    func pacing(track id: String, path: String) async throws -> ObjectResponder.Pacing? {
        guard configuration.pacingMultiple > 0 else { return nil }
        guard let record = try await catalog.track(id: id),
              let manifest = manifests.published(record) else { return nil }
        return pacing(manifest: manifest, version: record.version, path: path)
    }

    /// The pacing of `path` (`v{n}/progressive/{file}`) in a published manifest of `version`.
    func pacing(manifest: TrackManifest, version: Int, path: String) -> ObjectResponder.Pacing? {
        guard configuration.pacingMultiple > 0, path.hasPrefix("v\(version)/") else { return nil }
        let file = String(path.dropFirst("v\(version)/".count))
        guard let rendition = manifest.renditions.first(where: { $0.progressive == file }),
              let size = rendition.progressiveByteSize, manifest.durationSeconds > 0 else { return nil }
        let bytesPerSecond = Double(size) / manifest.durationSeconds
        return .init(burstBytes: Int64(bytesPerSecond * configuration.pacingBurstSeconds),
                     bytesPerSecond: bytesPerSecond * configuration.pacingMultiple)
    }

    func playlistCacheControl(signed: Bool) -> String {
        (signed ? "private" : "public") + ", max-age=\(configuration.playlistMaxAge)"
    }

    func document(_ text: String, type: String, request: Request, signed: Bool) -> Response {
        let (headers, buffer) = document(text, type: type, signed: signed, authorization: request.headers[.authorization] != nil)
        return Response(status: .ok, headers: headers, body: request.method == .head ? ResponseBody() : .init(byteBuffer: buffer))
    }

    /// A playlist or MPD's fields and body (for the routes and the fast path).
    func document(_ text: String, type: String, signed: Bool, authorization: Bool) -> (HTTPFields, ByteBuffer) {
        var headers: HTTPFields = [.contentType: type, .cacheControl: playlistCacheControl(signed: signed)]
        if authorization { headers[.vary] = "Authorization" }
        let buffer = ByteBuffer(string: text)
        headers[.contentLength] = String(buffer.readableBytes)
        return (headers, buffer)
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        var text = self
        while text.hasSuffix(suffix) { text.removeLast(suffix.count) }
        return text
    }
}
