import Foundation
import Configuration
import NIOHTTP1
import Hummingbird
import HTTPTypes
import NIOCore
import Synchronization

/// The host's rate limiting: which class a request falls in (uploads, media, the rest of the
/// API; health, readiness, metrics and preflights are never limited), one ``RateLimiter`` for
/// every key (client addresses, and token subjects once a bearer token is verified), and the
/// 429 answer. Shared by ``RateLimitMiddleware``, ``HostAuth`` and the event-loop fast path.
final class RateLimitPolicy: Sendable {
    let limiter: RateLimiter
    let limits: LimitsConfiguration
    let metrics: HostMetrics?

    /// The outcome of one check.
    struct Verdict {
        var name: String
        var limit: RateLimit
        /// Seconds until a token is available; nil when the request may go on.
        var retryAfter: Double?
        var remaining: Int
    }

    init(limits: LimitsConfiguration, metrics: HostMetrics?) {
        self.limits = limits
        self.metrics = metrics
        limiter = RateLimiter(capacity: limits.trackedClients)
    }

    /// The class of a request and its limit; nil for requests never limited.
    func classify(method: HTTPRequest.Method, path: String) -> (name: String, limit: RateLimit)? {
        if path == "/healthz" || path == "/readyz" || path == "/metrics" || method == .options { return nil }
        if method == .post && path == "/v1/tracks" { return ("upload", limits.upload) }
        if path.hasPrefix("/media/") || path.hasPrefix("/hls/") || path.hasPrefix("/dash/") { return ("media", limits.media) }
        return ("api", limits.api)
    }

    /// Takes a token for `key` (a client address, `subject:…`) in the request's class.
    func check(method: HTTPRequest.Method, path: String, key: String) -> Verdict? {
        guard let (name, limit) = classify(method: method, path: path), limit.isEnabled else { return nil }
        let now = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
        let (retryAfter, remaining) = limiter.acquire(name + "|" + key, limit: limit, now: now)
        return Verdict(name: name, limit: limit, retryAfter: retryAfter, remaining: remaining)
    }

    /// 429 with `Retry-After` and `RateLimit-*` fields (draft-ietf-httpapi-ratelimit-headers).
    func refusal(_ verdict: Verdict, who: String) -> APIError {
        metrics?.rateLimited(verdict.name)
        let seconds = max(1, Int((verdict.retryAfter ?? 1).rounded(.up)))
        return APIError(.tooManyRequests, code: "rate_limited", "too many \(verdict.name) requests from this \(who); retry in \(seconds) s",
                        retryAfter: seconds,
                        headers: [Self.limitField: String(Int(verdict.limit.burst)),
                                  Self.remainingField: "0",
                                  HTTPField.Name("RateLimit-Reset")!: String(seconds)])
    }

    /// `RateLimit-Limit` and `RateLimit-Remaining` on an allowed response.
    static func annotate(_ headers: inout HTTPFields, _ verdict: Verdict) {
        headers[limitField] = String(Int(verdict.limit.burst))
        headers[remainingField] = String(verdict.remaining)
    }

    /// Parsed once: a name is validated when it is made, and these go on every limited response.
    static let limitField = HTTPField.Name("RateLimit-Limit")!
    static let remainingField = HTTPField.Name("RateLimit-Remaining")!
}

/// Applies ``RateLimitPolicy`` per client address (behind a trusted proxy, the client it
/// forwarded: see `ClientAddressMiddleware`) and answers 429 when a bucket is empty.
struct RateLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: RateLimitPolicy

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let address = (context as? any ClientAddressRequestContext)?.clientAddress,
              let verdict = policy.check(method: request.method, path: request.uri.path, key: address.description)
        else { return try await next(request, context) }
        if verdict.retryAfter != nil { throw policy.refusal(verdict, who: "client") }
        var response = try await next(request, context)
        RateLimitPolicy.annotate(&response.headers, verdict)
        return response
    }
}
