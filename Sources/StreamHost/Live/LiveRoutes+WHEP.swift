import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import StreamKit

/// WebRTC playback (WHEP, RFC 9725) of a live mount: `POST /whep/{mount}` with an SDP offer
/// answers `201` with the SDP answer and the session's resource URL (`Location`), `DELETE` on
/// that URL ends the session, `PATCH` (trickle ICE, ICE restarts) is refused with `405`: the
/// host is ICE-lite and its answer carries every candidate. Listeners are authorised as LL-HLS
/// ones are (a mount token in `?token=` or a bearer token); the resource URL is the session's
/// capability (128 random bits).
extension LiveRoutes {
    func registerWHEP<Context: RequestContext>(on router: some RouterMethods<Context>) {
        router.post("/whep/:mount") { request, context in
            try await self.whepOffer(request, context, mount: context.parameters.get("mount") ?? "")
        }
        router.delete("/whep/:mount/:session") { _, context in
            guard let webRTC = mounts.webRTC,
                  await webRTC.close(id: context.parameters.get("session") ?? "", mount: context.parameters.get("mount") ?? "") else {
                throw APIError.notFound("no WebRTC session here")
            }
            return Response(status: .ok)
        }
        router.patch("/whep/:mount/:session") { _, _ in
            Response(status: .methodNotAllowed, headers: [.allow: "DELETE"])
        }
    }

    private func whepOffer(_ request: Request, _ context: some RequestContext, mount name: String) async throws -> Response {
        guard request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() == "application/sdp" else {
            throw APIError(.unsupportedMediaType, code: "unsupported_media_type", "a WHEP offer is an SDP body (Content-Type: application/sdp)")
        }
        guard let mount = await mounts.find(name) else { throw APIError.notFound("no live mount \(name.prefix(64))") }
        _ = try await authorise(request, context, mount: mount, relay: true)
        guard let webRTC = mounts.webRTC else {
            throw APIError(.notFound, code: "not_live", "this host has no live ladder: WebRTC plays a mount's Opus rung")
        }
        guard let session = mount.session, !session.isEnded else { throw APIError(.notFound, code: "not_live", "mount \(mount.name) has no show now") }
        guard session.webRTCRung != nil else {
            throw APIError(.conflict, code: "no_opus_rung", "mount \(mount.name)'s ladder has no Opus rung, which WebRTC plays")
        }
        let body = try await request.body.collect(upTo: 64 << 10)
        let offer: WebRTCOffer
        do {
            offer = try WebRTCOffer(parsing: String(decoding: body.readableBytesView, as: UTF8.self))
        } catch {
            throw APIError(.badRequest, code: "bad_offer", "the SDP offer cannot be answered: \(error.description)")
        }
        let local = (context as? HostRequestContext)?.localAddress?.ipAddress
        do {
            let (id, answer) = try await webRTC.open(offer: offer, mount: mount.name, address: local)
            let location = "/whep/\(mount.name)/\(id)"
            return Response(status: .created, headers: [.contentType: "application/sdp", .location: location, .cacheControl: "no-store"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: answer)))
        } catch LiveWebRTC.Failure.full {
            throw APIError(.serviceUnavailable, code: "webrtc_full", "the host runs its most WebRTC sessions (live.webrtc.maxSessions)")
        } catch LiveWebRTC.Failure.unavailable(let reason) {
            throw APIError(.serviceUnavailable, code: "webrtc_unavailable", reason)
        }
    }
}
