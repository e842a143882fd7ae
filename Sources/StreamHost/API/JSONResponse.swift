import Foundation
import Hummingbird
import HTTPTypes
import NIOCore

extension Response {
    /// A JSON body (sorted keys, ISO 8601 dates) that no cache keeps: the admin APIs' answers.
    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, extra: HTTPFields = [:]) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        var headers = extra
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}
