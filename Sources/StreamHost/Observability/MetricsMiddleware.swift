import Prometheus
import Hummingbird
import Foundation
import Synchronization

/// Counts and times every request by its route pattern (never the raw path: bounded label
/// values), and keeps `veza_active_streams`.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: HostMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            metrics.requestFinished(route: Self.route(context), method: request.method.rawValue, status: response.status.code,
                                    duration: ContinuousClock.now - start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            metrics.requestFinished(route: Self.route(context), method: request.method.rawValue, status: status,
                                    duration: ContinuousClock.now - start)
            if status == 401 || status == 403 { metrics.authFailure(String(status)) }
            throw error
        }
    }

    static func route(_ context: Context) -> String {
        context.endpointPath ?? "unmatched"
    }
}
