import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1

/// Invalidates a track's URLs in a caching proxy or CDN when the track is deleted or replaced:
/// one `BAN` per prefix (`/media/{id}/`, `/hls/{id}/`, `/dash/{id}/`) with the prefix in
/// `X-Ban-Prefix`, the convention of the Varnish configuration in `scripts/services.sh`. CDNs
/// with another purge API plug in by replacing ``purge(track:)``.
struct CDNPurger: Sendable {
    let endpoint: String
    let logger: Logger

    /// Sends the bans; failures are logged (the track is already gone from storage, and the
    /// cached copies expire with their max-age).
    func purge(track id: String) async {
        for prefix in ["/media/\(id)/", "/hls/\(id)/", "/dash/\(id)/"] {
            var request = HTTPClientRequest(url: endpoint)
            request.method = .RAW(value: "BAN")
            request.headers.add(name: "X-Ban-Prefix", value: prefix)
            do {
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 1 << 16)
                if response.status.code >= 300 {
                    logger.warning("CDN purge refused", metadata: ["prefix": "\(prefix)", "status": "\(response.status.code)"])
                }
            } catch {
                logger.warning("CDN purge failed", metadata: ["prefix": "\(prefix)", "error": "\(error)"])
            }
        }
    }
}
