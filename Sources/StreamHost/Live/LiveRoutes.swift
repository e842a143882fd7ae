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
/// - `GET /ws/live/{mount}?rung=R`: WebSocket, the rung's CMAF init and parts as binary
///   messages as soon as they are encoded (``webSocket(_:_:mount:)``).
/// - `POST /whep/{mount}`, `DELETE /whep/{mount}/{session}`: WebRTC playback of the mount's
///   Opus rung (WHEP, ``LiveWebRTC``).
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
        router.get("/ws/live/:mount") { request, context in
            try await self.webSocket(request, context, mount: context.parameters.get("mount") ?? "")
        }
        registerWHEP(on: router)
        router.get("/admin/metadata") { request, _ in
            try await self.updateMetadata(request)
        }
        router.get("/v1/live") { request, _ in
            try await auth.requireAny([.stream, .live], request)
            let now = Date()
            return MountList(mounts: await mounts.loadedAll().map { MountResource($0, auth: auth, webRTC: mounts.webRTC, now: now) })
        }
        router.get("/v1/live/:mount") { request, context in
            try await auth.requireAny([.stream, .live], request)
            guard let mount = await mounts.find(context.parameters.get("mount") ?? "") else { throw APIError.notFound("no live mount") }
            return MountResource(mount, auth: auth, webRTC: mounts.webRTC, now: Date())
        }
        router.post("/v1/live") { request, context in
            try await auth.require(.admin, request)
            let body = try await request.decode(as: NewMount.self, context: context)
            let configuration = try body.configuration(defaults: mounts.configuration)
            do {
                let mount = try await mounts.createStored(configuration)
                return EditedResponse(status: .created, headers: [.location: "/v1/live/\(mount.name)"], response: MountResource(mount, auth: auth, webRTC: mounts.webRTC, now: Date()))
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


    /// Authorises a listener of `mount` (nothing to check for a mount open to all) and returns
    /// the token its documents carry into their URIs.
    func authorise(_ request: Request, _ context: some RequestContext, mount: LiveMount, relay: Bool = false) async throws -> String? {
        if mount.configuration.openListening { return nil }
        return try await auth.authorizeLive(request, mount: mount.name, relay: relay, now: Date(), client: DeliveryRoutes.client(context))
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
