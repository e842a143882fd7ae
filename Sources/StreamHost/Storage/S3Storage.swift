import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import StreamKit
import Synchronization

/// Where an S3-compatible store lives and how to sign for it (`s3.*` keys).
public struct S3Configuration: Sendable {
    /// `http://127.0.0.1:8333`, `https://s3.eu-west-1.amazonaws.com`, … (`s3.endpoint`).
    public var endpoint: String
    public var bucket: String
    public var region: String = "us-east-1"
    public var accessKeyID: String
    public var secretAccessKey: String
    /// Objects above this size are sent as a multipart upload (`s3.multipartThreshold`). Default 64 MiB.
    public var multipartThreshold: Int = 64 << 20
    /// Part size of multipart uploads. Default 16 MiB.
    public var partSize: Int = 16 << 20
    /// Attempts per request for transient failures (connection errors, 429, 5xx). Default 4.
    public var maxAttempts: Int = 4
    /// Consecutive failures that open the circuit breaker, and how long it stays open.
    public var breakerThreshold: Int = 5
    public var breakerOpenSeconds: Double = 10

    public init(endpoint: String, bucket: String, region: String = "us-east-1", accessKeyID: String, secretAccessKey: String) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
    }
}

/// ``ObjectStorage`` on an S3-compatible store (AWS S3, MinIO, SeaweedFS, …): path-style
/// requests signed with StreamKit's `AWSSignatureV4` and sent with async-http-client (no S3
/// SDK exists for Swift on Linux here; the signer is small and tested against AWS's vectors).
///
/// Files are streamed (PUT with an unsigned payload, multipart above
/// ``S3Configuration/multipartThreshold``); reads are ranged GETs. Objects are written with their
/// `Content-Type` and `Cache-Control` (published objects: a year, immutable). Transient failures
/// are retried with exponential backoff and full jitter; after
/// ``S3Configuration/breakerThreshold`` consecutive failures the circuit opens and calls fail at
/// once (so `/readyz` turns 503 and uploads are refused cleanly) until a probe succeeds.
public final class S3Storage: ObjectStorage {
    let configuration: S3Configuration
    let signer: AWSSignatureV4
    let client: HTTPClient
    let baseURL: String
    let hostHeader: String
    let logger: Logger
    private let breaker = Mutex(Breaker())

    private struct Breaker {
        var consecutiveFailures = 0
        var openUntil: ContinuousClock.Instant?
    }

    /// The store did not answer the last request (after its retries), or the circuit is open.
    /// An answered error (a 404, a refused signature) resets this: the store is up.
    public var isUnavailable: Bool {
        breaker.withLock { $0.consecutiveFailures > 0 || ($0.openUntil.map { ContinuousClock.now < $0 } ?? false) }
    }

    public init(configuration: S3Configuration, logger: Logger = Logger(label: "veza.s3")) throws(StorageError) {
        guard let url = URLComponents(string: configuration.endpoint), let host = url.host, ["http", "https"].contains(url.scheme ?? "") else {
            throw StorageError(key: "", "s3.endpoint must be an http(s) URL, not \(configuration.endpoint)")
        }
        guard !configuration.bucket.isEmpty, !configuration.bucket.contains("/") else { throw StorageError(key: "", "s3.bucket is missing or invalid") }
        do {
            signer = try AWSSignatureV4(credentials: AWSCredentials(accessKeyID: configuration.accessKeyID,
                                                                   secretAccessKey: configuration.secretAccessKey),
                                        region: configuration.region)
        } catch {
            throw StorageError(key: "", "s3 credentials: \(error)")
        }
        self.configuration = configuration
        self.logger = logger
        let defaultPort = url.scheme == "https" ? 443 : 80
        hostHeader = url.port.map { $0 == defaultPort ? host : "\(host):\($0)" } ?? host
        baseURL = "\(url.scheme!)://\(hostHeader)"
        // Connection failures come back at once: this type retries with backoff itself and
        // counts failures for its circuit breaker (AHC would otherwise keep a request waiting
        // while it retries the connection until the request's deadline).
        var http = HTTPClient.Configuration()
        http.connectionPool.retryConnectionEstablishment = false
        http.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 32
        http.timeout.connect = .seconds(3)
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http)
    }

    deinit {
        client.shutdown { _ in }
    }

    // MARK: Requests

    private func path(_ key: String?) -> String {
        "/" + configuration.bucket + (key.map { "/" + AWSSignatureV4.uriEncode($0, encodeSlash: false) } ?? "")
    }

    private func now() -> Timestamp { Timestamp(millisecondsSince1970: Int64(Date().timeIntervalSince1970 * 1000)) }

    /// Builds and signs a request.
    private func request(_ method: HTTPMethod, key: String?, query: [(String, String)] = [], headers: [(String, String)] = [],
                         payloadHash: String = AWSSignatureV4.emptyPayloadHash) throws -> HTTPClientRequest {
        let path = path(key)
        let signed = try signer.sign(method: method.rawValue, path: path, query: query, headers: [("Host", hostHeader)] + headers,
                                     payloadHash: payloadHash, date: now())
        var request = HTTPClientRequest(url: baseURL + path + (signed.canonicalQuery.isEmpty ? "" : "?" + signed.canonicalQuery))
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        for header in signed.headers { request.headers.add(name: header.name, value: header.value) }
        return request
    }

    /// Runs `attempt` with retries for transient failures and the circuit breaker. `attempt`
    /// builds its request afresh each time (bodies are streams that cannot be replayed).
    private func perform<T>(_ key: String, _ operation: String, probe: Bool = false,
                            _ attempt: () async throws -> T) async throws(StorageError) -> T {
        if !probe, let open = breaker.withLock({ $0.openUntil }), ContinuousClock.now < open {
            throw StorageError(key: key, "object storage unavailable (circuit open after repeated failures)")
        }
        var lastError: any Error = StorageError(key: key, "no attempt")
        for attemptNumber in 0..<max(1, configuration.maxAttempts) {
            do {
                let value = try await attempt()
                breaker.withLock { $0 = Breaker() }
                return value
            } catch let error as S3Error where !error.isTransient {
                // The store answered: it is up, the request was wrong or the object absent.
                breaker.withLock { $0 = Breaker() }
                throw StorageError(key: key, "\(operation): \(error)")
            } catch {
                lastError = error
                if Task.isCancelled { break }
                if attemptNumber + 1 < configuration.maxAttempts {
                    // Exponential backoff with full jitter: 0…(100 ms × 2^n).
                    let cap = 0.1 * pow(2, Double(attemptNumber))
                    try? await Task.sleep(for: .seconds(Double.random(in: 0...cap)))
                }
            }
        }
        breaker.withLock { breaker in
            breaker.consecutiveFailures += 1
            if breaker.consecutiveFailures >= configuration.breakerThreshold {
                breaker.openUntil = .now + .seconds(configuration.breakerOpenSeconds)
            }
        }
        logger.warning("object storage request failed", metadata: ["operation": "\(operation)", "key": "\(key)", "error": "\(lastError)"])
        throw StorageError(key: key, "\(operation) failed: \(lastError)")
    }

    /// Sends `request` and returns the response, throwing ``S3Error`` for an error status.
    private func send(_ request: HTTPClientRequest, timeout: TimeAmount = .seconds(60), accept: Set<UInt> = [200, 204, 206]) async throws -> HTTPClientResponse {
        let response = try await client.execute(request, timeout: timeout)
        guard accept.contains(response.status.code) else {
            let body = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
            throw S3Error(status: response.status.code, code: Self.tag("Code", in: body) ?? "", message: Self.tag("Message", in: body) ?? "")
        }
        return response
    }

    // MARK: ObjectStorage

    public func put(fileAt path: String, key: String) async throws(StorageError) {
        try validateKey(key)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path), let size = (attributes[.size] as? NSNumber)?.intValue else {
            throw StorageError(key: key, "cannot read \(path)")
        }
        if size > configuration.multipartThreshold {
            try await multipartUpload(fileAt: path, size: size, key: key)
        } else {
            try await perform(key, "PUT") {
                var request = try self.request(.PUT, key: key, headers: self.objectHeaders(key) + [("Content-Length", String(size))],
                                               payloadHash: AWSSignatureV4.unsignedPayload)
                request.body = .stream(FileChunks(path: path, range: 0..<Int64(size)), length: .known(Int64(size)))
                _ = try await self.send(request, timeout: .seconds(300))
            }
        }
        unlink(path)
    }

    public func put(_ bytes: [UInt8], key: String) async throws(StorageError) {
        try validateKey(key)
        try await perform(key, "PUT") {
            var request = try self.request(.PUT, key: key, headers: self.objectHeaders(key) + [("Content-Length", String(bytes.count))],
                                           payloadHash: AWSSignatureV4.sha256Hex(bytes))
            request.body = .bytes(ByteBuffer(bytes: bytes))
            _ = try await self.send(request)
        }
    }

    /// `Content-Type` from the key's extension; published objects (`tracks/{id}/v{n}/…`) are
    /// immutable and cached for a year, everything else is private.
    func objectHeaders(_ key: String) -> [(String, String)] {
        let parts = key.split(separator: "/")
        let published = parts.count > 3 && parts[0] == "tracks" && parts[2].first == "v" && Int(parts[2].dropFirst()) != nil
        return [("Content-Type", MediaContentType.forKey(key)),
                ("Cache-Control", published ? "public, max-age=31536000, immutable" : "private, no-store")]
    }

    private func multipartUpload(fileAt path: String, size: Int, key: String) async throws(StorageError) {
        let uploadID: String = try await perform(key, "CreateMultipartUpload") {
            let response = try await self.send(try self.request(.POST, key: key, query: [("uploads", "")], headers: self.objectHeaders(key)))
            let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
            guard let id = Self.tag("UploadId", in: body) else { throw S3Error(status: 200, code: "NoUploadId", message: body) }
            return id
        }
        do {
            var parts: [(Int, String)] = []
            var offset = 0
            var number = 1
            while offset < size {
                let length = min(configuration.partSize, size - offset)
                let start = offset
                let partNumber = number
                let etag: String = try await perform(key, "UploadPart") {
                    var request = try self.request(.PUT, key: key, query: [("partNumber", String(partNumber)), ("uploadId", uploadID)],
                                                   headers: [("Content-Length", String(length))], payloadHash: AWSSignatureV4.unsignedPayload)
                    request.body = .stream(FileChunks(path: path, range: Int64(start)..<Int64(start + length)), length: .known(Int64(length)))
                    let response = try await self.send(request, timeout: .seconds(300))
                    guard let etag = response.headers.first(name: "ETag") else { throw S3Error(status: 200, code: "NoETag", message: "") }
                    return etag
                }
                parts.append((partNumber, etag))
                offset += length
                number += 1
            }
            let xml = "<CompleteMultipartUpload>" + parts.map { "<Part><PartNumber>\($0.0)</PartNumber><ETag>\(Self.escape($0.1))</ETag></Part>" }.joined()
                + "</CompleteMultipartUpload>"
            try await perform(key, "CompleteMultipartUpload") {
                var request = try self.request(.POST, key: key, query: [("uploadId", uploadID)],
                                               headers: [("Content-Type", "application/xml"), ("Content-Length", String(xml.utf8.count))],
                                               payloadHash: AWSSignatureV4.sha256Hex(xml))
                request.body = .bytes(ByteBuffer(string: xml))
                let response = try await self.send(request, timeout: .seconds(300))
                // S3 can answer 200 with an error document.
                let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
                if body.contains("<Error>") { throw S3Error(status: 200, code: Self.tag("Code", in: body) ?? "", message: Self.tag("Message", in: body) ?? "") }
            }
        } catch {
            _ = try? await perform(key, "AbortMultipartUpload") {
                _ = try await self.send(try self.request(.DELETE, key: key, query: [("uploadId", uploadID)]))
            }
            throw error
        }
    }

    public func size(of key: String) async throws(StorageError) -> Int? {
        try validateKey(key)
        return try await perform(key, "HEAD") {
            let response = try await self.send(try self.request(.HEAD, key: key), accept: [200, 404])
            guard response.status.code == 200 else { return nil }
            return response.headers.first(name: "Content-Length").flatMap { Int($0) }
        }
    }

    public func list(prefix: String) async throws(StorageError) -> [String] {
        let listPrefix = prefix.hasSuffix("/") || prefix.isEmpty ? prefix : prefix + "/"
        var keys: [String] = []
        var token: String?
        repeat {
            let page: (keys: [String], next: String?) = try await perform(prefix, "ListObjectsV2") {
                var query = [("list-type", "2"), ("prefix", listPrefix), ("max-keys", "1000")]
                if let token { query.append(("continuation-token", token)) }
                let response = try await self.send(try self.request(.GET, key: nil, query: query))
                let body = String(buffer: try await response.body.collect(upTo: 16 << 20))
                let truncated = Self.tag("IsTruncated", in: body) == "true"
                return (Self.tags("Key", in: body), truncated ? Self.tag("NextContinuationToken", in: body) : nil)
            }
            keys += page.keys
            token = page.next
        } while token != nil
        return keys.sorted()
    }

    public func delete(prefix: String) async throws(StorageError) {
        try validateKey(prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix)
        let keys = try await list(prefix: prefix)
        for key in keys.filter(TrackLayout.isManifest) + keys.filter({ !TrackLayout.isManifest($0) }) {
            try await perform(key, "DELETE") {
                _ = try await self.send(try self.request(.DELETE, key: key), accept: [200, 204, 404])
            }
        }
    }

    public func localPath(of key: String) -> String? { nil }

    public func fetch(_ key: String, to destination: String) async throws(StorageError) {
        try validateKey(key)
        try await perform(key, "GET") {
            let response = try await self.send(try self.request(.GET, key: key), timeout: .seconds(600))
            guard let handle = FileHandle(forWritingAtPath: destination) ?? {
                FileManager.default.createFile(atPath: destination, contents: nil) ? FileHandle(forWritingAtPath: destination) : nil
            }() else { throw StorageError(key: key, "cannot write \(destination)") }
            defer { try? handle.close() }
            try handle.truncate(atOffset: 0)
            for try await chunk in response.body { try handle.write(contentsOf: Data(chunk.readableBytesView)) }
        }
    }

    public func check() async throws(StorageError) {
        let key = ".readyz/\(UUID().uuidString)"
        try await perform(key, "check", probe: true) {
            var put = try self.request(.PUT, key: key, headers: [("Content-Length", "2")], payloadHash: AWSSignatureV4.sha256Hex("ok"))
            put.body = .bytes(ByteBuffer(string: "ok"))
            _ = try await self.send(put, timeout: .seconds(5))
            let got = try await self.send(try self.request(.GET, key: key), timeout: .seconds(5))
            guard String(buffer: try await got.body.collect(upTo: 16)) == "ok" else { throw S3Error(status: 200, code: "ReadBack", message: "wrong bytes") }
            _ = try await self.send(try self.request(.DELETE, key: key), timeout: .seconds(5), accept: [200, 204, 404])
        }
    }

    public func open(_ key: String) async throws(StorageError) -> (any StoredObject)? {
        try validateKey(key)
        // One ranged GET: small objects (segments) come back whole; larger ones are read on demand.
        let limit = LocalDiskStorage.prefetchLimit
        return try await perform(key, "GET") { () -> (any StoredObject)? in
            let response = try await self.send(try self.request(.GET, key: key, headers: [("Range", "bytes=0-\(limit - 1)")]),
                                               accept: [200, 206, 404, 416])
            switch response.status.code {
            case 404: return nil
            case 416:
                return S3StoredObject(storage: self, key: key, info: Self.info(response.headers, size: 0), contents: ByteBuffer())
            default:
                let total = response.headers.first(name: "Content-Range").flatMap { $0.split(separator: "/").last.flatMap { Int64($0) } }
                    ?? response.headers.first(name: "Content-Length").flatMap { Int64($0) } ?? 0
                let info = Self.info(response.headers, size: total)
                if total <= Int64(limit) {
                    return S3StoredObject(storage: self, key: key, info: info, contents: try await response.body.collect(upTo: limit))
                }
                return S3StoredObject(storage: self, key: key, info: info, contents: nil)
            }
        }
    }

    /// A presigned GET URL (for delivery by redirect).
    public func presignedURL(for key: String, expires: Int) -> String? {
        guard let query = try? signer.presignedQuery(method: "GET", path: path(key), host: hostHeader, expires: expires, date: now()) else { return nil }
        return baseURL + path(key) + "?" + query.queryString
    }

    func read(_ key: String, _ range: ClosedRange<Int64>, chunkSize: Int, into body: (ByteBuffer) async throws -> Void) async throws {
        // Not retried once bytes have gone to the client: a retry would repeat them.
        let response = try await send(try request(.GET, key: key, headers: [("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")]),
                                       timeout: .seconds(600), accept: [206])
        for try await chunk in response.body { try await body(chunk) }
    }

    static func info(_ headers: HTTPHeaders, size: Int64) -> ObjectInfo {
        let modified = headers.first(name: "Last-Modified").flatMap { HTTPDate.parse($0) }
            .map { Date(timeIntervalSince1970: Double($0.millisecondsSince1970) / 1000) } ?? Date(timeIntervalSince1970: 0)
        let etag = headers.first(name: "ETag").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"W/")) }
            ?? "\(size)-\(Int(modified.timeIntervalSince1970))"
        return ObjectInfo(size: size, lastModified: modified, entityTag: etag)
    }

    // MARK: XML (the few elements S3 answers with; no XML library needed for them)

    static func tags(_ name: String, in xml: String) -> [String] {
        var values: [String] = []
        var rest = Substring(xml)
        while let open = rest.range(of: "<\(name)>"), let close = rest.range(of: "</\(name)>", range: open.upperBound..<rest.endIndex) {
            values.append(unescape(String(rest[open.upperBound..<close.lowerBound])))
            rest = rest[close.upperBound...]
        }
        return values
    }

    static func tag(_ name: String, in xml: String) -> String? { tags(name, in: xml).first }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// An error status from the store.
struct S3Error: Error, CustomStringConvertible {
    var status: UInt
    var code: String
    var message: String
    /// Throttling and server errors are worth retrying; other answers are final.
    var isTransient: Bool { status == 429 || status >= 500 }
    var description: String { "HTTP \(status) \(code) \(message)".trimmingCharacters(in: .whitespaces) }
}

/// An object of ``S3Storage``: small ones already in memory, larger ones read by ranged GETs.
struct S3StoredObject: StoredObject {
    let storage: S3Storage
    let key: String
    let info: ObjectInfo
    let contents: ByteBuffer?

    func read(_ range: ClosedRange<Int64>, chunkSize: Int, into body: (ByteBuffer) async throws -> Void) async throws {
        if let contents {
            try await StoredObjects.read(contents, range, chunkSize: chunkSize, into: body)
        } else {
            try await storage.read(key, range, chunkSize: chunkSize, into: body)
        }
    }
}
