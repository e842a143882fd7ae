import Hummingbird
import Logging
import Foundation
import NIOCore
import Synchronization
import HTTPTypes
import NIOHTTPTypes
import CoreFoundation

/// Gives every request an id (the client's `X-Request-Id` when it is sane, else a fresh one),
/// echoes it in the response, puts it in the request's logger metadata, and logs one line per
/// request: method, route pattern, path without query (signed tokens stay out of logs), status,
/// duration, and the client's network prefix (IPv4 /24, IPv6 /48: never the full address).
///
/// Successful GET/HEAD requests log at `debug` (a listener fetches a segment every few
/// seconds); everything else at `info`.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let id = request.headers[RequestIDs.header].flatMap(RequestIDs.sanitised) ?? RequestIDs.make()
        context.logger[metadataKey: "request_id"] = .string(id)
        let start = ContinuousClock.now
        do {
            var response = try await next(request, context)
            response.headers[RequestIDs.header] = id
            log(request, context, status: response.status.code, start: start)
            return response
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            log(request, context, status: status, start: start, error: error)
            guard var httpError = error as? APIError else { throw error }
            httpError.headers[RequestIDs.header] = id
            throw httpError
        }
    }

    private func log(_ request: Request, _ context: Context, status: Int, start: ContinuousClock.Instant, error: (any Error)? = nil) {
        RequestIDs.log(logger: context.logger, method: request.method, route: context.endpointPath ?? "unmatched", path: request.uri.path,
                 status: status, start: start, client: (context as? any ClientAddressRequestContext)?.clientAddress, error: error)
    }

}

/// Request ids and the per-request log line, shared by ``RequestIDMiddleware`` and the playback
/// fast path.
enum RequestIDs {
    static let header = HTTPField.Name("X-Request-Id")!

    /// The request's log line (written by ``RequestIDMiddleware`` and by the fast path, which bypasses it).
    static func log(logger: Logger, method: HTTPRequest.Method, route: String, path: String, status: Int,
                    start: ContinuousClock.Instant, client: IPAddress?, error: (any Error)?) {
        let level: Logger.Level = (status < 400 && (method == .get || method == .head)) ? .debug : .info
        guard logger.logLevel <= level else { return }
        var metadata: Logger.Metadata = [
            "method": .string(method.rawValue),
            "route": .string(route),
            "path": .string(path),
            "status": .stringConvertible(status),
            "duration_ms": .stringConvertible(((ContinuousClock.now - start) / .microseconds(1)).rounded() / 1000),
        ]
        if let client { metadata["client"] = .string(client.networkPrefix) }
        if let error = error as? APIError { metadata["error"] = .string(error.code) }
        logger.log(level: level, "request", metadata: metadata)
    }

    /// A random per-process prefix and a counter: unique, cheap, and sortable within a process.
    static func make() -> String {
        prefix + String(counter.add(1, ordering: .relaxed).newValue, radix: 36)
    }

    /// A client-supplied id, if it is 1–64 characters of `[A-Za-z0-9._-]` (no log injection).
    static func sanitised(_ value: String) -> String? {
        guard (1...64).contains(value.utf8.count),
              value.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 46 || $0 == 95 })
        else { return nil }
        return value
    }

    static let prefix: String = {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        return String((0..<8).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] }) + "-"
    }()
    static let counter = Atomic<UInt64>(0)
}
