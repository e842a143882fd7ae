import Hummingbird
import HummingbirdCore
import Logging
import Foundation
import NIOCore
import NIOPosix
import HTTPTypes
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `Access-Control-Expose-Headers` on actual cross-origin responses (Fetch standard §3.2.3):
/// Hummingbird's `CORSMiddleware` sends it only on preflight answers, where browsers ignore it,
/// so a player on another origin could not read `Content-Range` or `ETag` without this.
struct ExposeHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    static var exposed: String { "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Location, Retry-After, X-Request-Id" }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.headers[.origin] != nil, request.method != .options else { return try await next(request, context) }
        var response = try await next(request, context)
        response.headers[.accessControlExposeHeaders] = Self.exposed
        return response
    }
}
