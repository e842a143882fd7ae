import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import StreamHost

/// The CLI's client of a running host's API: typed requests and Codable answers over
/// async-http-client; uploads stream the file from disk (never read into memory).
struct APIClient: Sendable {
    let base: String
    let token: String?
    let http: HTTPClient

    /// An answer that is not the one expected: the API's `{error: {code, message}}` when it sent one.
    struct Refusal: Error, CustomStringConvertible {
        var status: Int
        var code: String?
        var message: String
        var description: String { code.map { "\($0): \(message)" } ?? "HTTP \(status): \(message)" }
    }

    private struct ErrorBody: Decodable {
        struct Detail: Decodable { var code: String; var message: String }
        var error: Detail
    }

    private func request(_ path: String, method: HTTPMethod) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path)
        request.method = method
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    /// Sends `request`, expects `status`, decodes the JSON answer.
    private func send<Answer: Decodable>(_ request: HTTPClientRequest, expecting status: Int, as type: Answer.Type) async throws -> Answer {
        let response = try await http.execute(request, timeout: .seconds(600))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard Int(response.status.code) == status else {
            let detail = try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer: body))
            throw Refusal(status: Int(response.status.code), code: detail?.error.code,
                          message: detail?.error.message ?? String(buffer: body).prefix(200).description)
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(Answer.self, from: Data(buffer: body))
    }

    /// `POST /v1/tracks` with the file streamed as the body: the 202's `{id, jobId, status}`.
    func upload(file: String) async throws -> Accepted {
        let size = try (FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        var request = request("/v1/tracks", method: .POST)
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.body = .stream(FileChunks(path: file, range: 0..<Int64(size)), length: .known(Int64(size)))
        return try await send(request, expecting: 202, as: Accepted.self)
    }

    /// `GET /v1/tracks/{id}`.
    func track(_ id: String) async throws -> TrackResource {
        try await send(request("/v1/tracks/\(id)", method: .GET), expecting: 200, as: TrackResource.self)
    }

    /// The upload's 202 body.
    struct Accepted: Decodable {
        var id: String
        var jobId: String
        var status: TrackStatus
    }
}
