import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import MediaCore
import NIOCore
import NIOHTTP1
import StreamKit

/// Several hosts: a listener of a mount whose show runs on another host is answered by that
/// host, through this one.
extension LiveRoutes {
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
    func elsewhere(_ request: Request, _ context: some RequestContext, mount name: String, relay: Bool = false,
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
}
