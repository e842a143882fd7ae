import Foundation
import HTTPTypes
import GRPCCore
import SwiftProtobuf
import MediaCore
import StreamHost

/// Authentication and error mapping shared by the gRPC services: the bearer token of the
/// `authorization` metadata through the host's own ``HostAuth`` (the same keys, scopes,
/// revocation list and 401/403 decisions as HTTP), and the host's domain errors through its
/// one HTTP mapping (``APIError/init(mapping:)``), then to a gRPC status.
struct RPCAuthorization: Sendable {
    let auth: HostAuth

    /// The caller, which must hold one of `scopes` (on `track`, when given), and whose token
    /// subject is within its rate limit for `route`, the HTTP route the call mirrors
    /// (RESOURCE_EXHAUSTED beyond it).
    @discardableResult
    func require(_ scopes: [AccessScope], _ metadata: Metadata, track: String? = nil,
                 route: (method: HTTPRequest.Method, path: String) = (.get, "/v1/tracks")) async throws -> Principal {
        do {
            let values = Array(metadata[stringValues: "authorization"])
            guard values.count <= 1 else { throw APIError(.badRequest, code: "bad_request", "more than one authorization value") }
            let principal = try auth.authorize(try await auth.authenticate(authorization: values.first), anyOf: scopes, track: track)
            try auth.limitRate(of: principal, method: route.method, path: route.path)
            return principal
        } catch {
            throw Self.status(of: error)
        }
    }

    /// Runs `body`, turning whatever it throws into an `RPCError`.
    static func mapping<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw status(of: error)
        }
    }

    /// The gRPC status of a host error (by its HTTP mapping: the codes gRPC's HTTP mapping
    /// pairs with those statuses, and RESOURCE_EXHAUSTED for a full queue or a rate limit).
    static func status(of error: any Error) -> RPCError {
        if let error = error as? RPCError { return error }
        if error is CancellationError { return RPCError(code: .cancelled, message: "cancelled") }
        let mapped = APIError(mapping: error)
        let code: RPCError.Code = switch (mapped.status.code, mapped.code) {
        case (_, "queue_full"), (429, _): .resourceExhausted
        case (400, _), (413, _), (415, _), (416, _), (422, _): .invalidArgument
        case (401, _): .unauthenticated
        case (403, _): .permissionDenied
        case (404, _): .notFound
        case (409, _): .failedPrecondition
        case (503, _): .unavailable
        case (501, _): .unimplemented
        default: .internalError
        }
        var metadata: Metadata = ["veza-error-code": "\(mapped.code)"]
        if let retry = mapped.retryAfter { metadata.addString("\(retry)", forKey: "retry-after") }
        return RPCError(code: code, message: mapped.message, metadata: metadata)
    }
}
