import Hummingbird
import MediaCore

/// The one mapping from the host's domain errors to HTTP answers: a status, a stable JSON error
/// code, a message and, where waiting helps, `Retry-After`. Routes throw domain values
/// (``IntakeError``, ``CatalogError``, ``StorageError``, `MediaError`, ``APIError`` for what is
/// only HTTP: 404 of a route, 401/403 of auth, 416 of ranges) and ``ErrorMappingMiddleware``
/// answers them through ``APIError/init(mapping:)``. `streamhost` maps the same errors to exit
/// codes.
///
/// | error | status | code |
/// | --- | --- | --- |
/// | ``IntakeError`` unsupported media | 415 | `unsupported_media_type` |
/// | ``IntakeError`` unusable media | 422 | `unprocessable_media` |
/// | ``IntakeError`` too large | 413 | `payload_too_large` |
/// | ``IntakeError`` empty / malformed body | 400 | `empty_body` / `bad_multipart` |
/// | ``IntakeError`` queue full | 503 + Retry-After 30 | `queue_full` |
/// | ``IntakeError`` storage unavailable | 503 + Retry-After 10 | `storage_unavailable` |
/// | ``CatalogError`` queue full / database | 503 + Retry-After 30 / 5 | `queue_full` / `catalog_unavailable` |
/// | ``StorageError`` | 503 + Retry-After 5 | `storage_unavailable` |
/// | ``ProtectionError`` key service / unsupported | 503 + Retry-After 30 / 400 | `key_service_unavailable` / `protection_unsupported` |
/// | `MediaError` | as ``IntakeError/init(media:)`` | |
/// | `DecodingError` (a JSON body) | 400 | `bad_request` |
/// | Hummingbird's `HTTPError` (no route: 404, a body over its limit: 413, a body that does not decode: 400, …) | its status | by status: `not_found`, `payload_too_large`, `bad_request`, … |
/// | cancellation (shutting down) | 503 + Retry-After 5 | `shutting_down` |
/// | anything else | 500 | `internal_error` (the message does not leak the error) |
extension APIError {
    /// The HTTP answer to `error`.
    public init(mapping error: any Error) {
        switch error {
        case let error as APIError:
            self = error
        case let error as IntakeError:
            switch error.kind {
            case .unsupportedMedia: self.init(.unsupportedMediaType, code: "unsupported_media_type", error.message)
            case .unusableMedia: self.init(.unprocessableContent, code: "unprocessable_media", error.message)
            case .tooLarge: self.init(.contentTooLarge, code: "payload_too_large", error.message)
            case .empty: self.init(.badRequest, code: "empty_body", error.message)
            case .malformedBody: self.init(.badRequest, code: "bad_multipart", error.message)
            case .queueFull: self.init(.serviceUnavailable, code: "queue_full", error.message, retryAfter: 30)
            case .storageUnavailable: self.init(.serviceUnavailable, code: "storage_unavailable", error.message, retryAfter: 10)
            case .internalFailure: self.init(.internalServerError, code: "internal_error", error.message)
            }
        case let error as MediaError:
            self.init(mapping: IntakeError(media: error))
        case let error as CatalogError:
            switch error.code {
            case .queueFull: self.init(.serviceUnavailable, code: "queue_full", error.message, retryAfter: 30)
            case .database: self.init(.serviceUnavailable, code: "catalog_unavailable", error.message, retryAfter: 5)
            }
        case let error as ProtectionError:
            switch error.kind {
            case .keyService: self.init(.serviceUnavailable, code: "key_service_unavailable", error.message, retryAfter: 30)
            case .unsupported: self.init(.badRequest, code: "protection_unsupported", error.message)
            }
        case let error as StorageError:
            self.init(.serviceUnavailable, code: "storage_unavailable", "storage: \(error.message)", retryAfter: 5)
        case let error as HTTPError:
            // Hummingbird's own (no route, a body over its limit, a body that does not decode):
            // the same typed JSON as every other error.
            self.init(error.status, code: Self.code(for: error.status), error.body ?? error.status.reasonPhrase, headers: error.headers)
        case is DecodingError:
            self.init(.badRequest, code: "bad_request", "the request body is not the expected JSON")
        case is CancellationError:
            self.init(.serviceUnavailable, code: "shutting_down", "the host is shutting down", retryAfter: 5)
        default:
            self.init(.internalServerError, code: "internal_error", "internal error")
        }
    }
}

extension APIError {
    /// The stable code of an error that only has a status.
    static func code(for status: HTTPResponse.Status) -> String {
        switch status.code {
        case 400: "bad_request"
        case 401: "unauthorized"
        case 403: "forbidden"
        case 404: "not_found"
        case 405: "method_not_allowed"
        case 408: "request_timeout"
        case 413: "payload_too_large"
        case 415: "unsupported_media_type"
        case 416: "range_not_satisfiable"
        case 422: "unprocessable_content"
        case 429: "rate_limited"
        case 503: "unavailable"
        case 500..<600: "internal_error"
        default: "http_\(status.code)"
        }
    }
}

/// Answers every domain error a route throws through ``APIError/init(mapping:)`` (Hummingbird's
/// own `HTTPError`s become the same typed JSON; other HTTP answers pass unchanged). Innermost of
/// the host's middleware, so that logging, metrics and CORS see the mapped status; the host's
/// application also has it at the top of its router, where a request no route matches gets a
/// typed 404.
struct ErrorMappingMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as HTTPError {
            throw APIError(mapping: error)
        } catch let error as any HTTPResponseError {
            throw error
        } catch {
            throw APIError(mapping: error)
        }
    }
}
