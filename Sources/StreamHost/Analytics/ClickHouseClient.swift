import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// ClickHouse's HTTP interface through async-http-client: a statement in the body, or an
/// `INSERT … FORMAT JSONEachRow` in the URL with the rows in the body. ClickHouse 18.16 has no
/// query parameters, so strings go into SQL through ``quoted(_:)``.
struct ClickHouseClient: Sendable {
    /// Why a request failed.
    struct Failure: Error {
        var message: String
        /// Nothing reached the server (connection refused): a batch certainly did not arrive.
        var refused: Bool
        var catalogError: CatalogError { CatalogError(.database, "ClickHouse: \(message)") }
    }

    let endpoint: String
    let authorization: String?

    /// A client of the server at `url` (`http://host:8123`), with Basic credentials when `user`
    /// is set.
    init(url: String?, user: String?, password: String?) throws(CatalogError) {
        guard let url, url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw CatalogError(.database, "analytics.clickhouse.url must be an http:// or https:// URL")
        }
        endpoint = url.hasSuffix("/") ? String(url.dropLast()) : url
        authorization = user.map { "Basic " + Data("\($0):\(password ?? "")".utf8).base64EncodedString() }
    }

    /// Runs one statement; returns the answer's text.
    func query(_ sql: String) async throws(Failure) -> String {
        try await post(parameters: [:], body: sql)
    }

    /// Inserts JSON lines into `table`.
    func insert(into table: String, lines: [String]) async throws(Failure) {
        _ = try await post(parameters: ["query": "INSERT INTO \(table) FORMAT JSONEachRow"], body: lines.joined(separator: "\n"),
                           timeout: .seconds(10))
    }

    private func post(parameters: [String: String], body: String, timeout: TimeAmount = .seconds(15)) async throws(Failure) -> String {
        var components = URLComponents()
        components.queryItems = (["database": "default", "output_format_json_quote_64bit_integers": "0"].merging(parameters) { $1 })
            .sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        var request = HTTPClientRequest(url: endpoint + "/" + (components.string ?? ""))
        request.method = .POST
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            let text = String(buffer: try await response.body.collect(upTo: 256 << 20))
            guard response.status == .ok else {
                throw Failure(message: "HTTP \(response.status.code): \(text.prefix(500))", refused: false)
            }
            return text
        } catch let error as Failure {
            throw error
        } catch {
            let refused = "\(error)".contains("connectionRefused") || "\(error)".contains("Connection refused")
                || (error as? HTTPClientError) == .connectTimeout
            throw Failure(message: "\(error)", refused: refused)
        }
    }

    /// A ClickHouse string literal.
    static func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
