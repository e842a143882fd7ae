public import Hummingbird
import Foundation

/// An error the API answers with: a status, a stable code and a message, rendered as
/// `{"error": {"code": …, "message": …}}` (DESIGN.md §4), with `Retry-After` when set.
public struct APIError: HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    /// Stable, machine-readable code (`payload_too_large`, `unsupported_media_type`, …).
    public var code: String
    public var message: String
    /// Seconds the client should wait before retrying (503, 429).
    public var retryAfter: Int?
    /// Extra response fields (`WWW-Authenticate` on 401, `Content-Range` on 416).
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, _ message: String, retryAfter: Int? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.headers = headers
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    /// The JSON body: `{"error":{"code":…,"message":…}}`.
    var jsonBody: Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(ErrorBody(error: .init(code: code, message: message)))) ?? Data("{}".utf8)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = jsonBody
        var headers = self.headers
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        if let retryAfter { headers[.retryAfter] = "\(retryAfter)" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func notFound(_ what: String) -> APIError { APIError(.notFound, code: "not_found", what) }

    /// 401 with a `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
    static func unauthorized(_ message: String, error: String = "invalid_token") -> APIError {
        APIError(.unauthorized, code: "unauthorized", message,
                 headers: [.wwwAuthenticate: #"Bearer realm="veza-stream", error="\#(error)""#])
    }

    /// 403: authenticated, but not allowed to do this.
    static func forbidden(_ message: String) -> APIError { APIError(.forbidden, code: "forbidden", message) }
}

/// The JSON shape of every API error.
private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var code: String
        var message: String
    }
    var error: Detail
}

extension Request {
    /// The integer query parameter `name`, clamped to `range`; `fallback` when absent, and a
    /// typed 400 when present but not an integer (never silently ignored).
    func integerQuery(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        guard let text = uri.queryParameters.get(name) else { return fallback }
        guard let value = Int(text) else { throw APIError(.badRequest, code: "bad_request", "\(name) must be an integer") }
        return min(max(value, range.lowerBound), range.upperBound)
    }
}
