import Hummingbird
import Prometheus
import Foundation
import HTTPTypes
import NIOCore
import StreamKit
import Synchronization

/// Answers GET and HEAD for one stored object with HTTP's conditional and range machinery
/// (RFC 9110 §13–14): `ETag`, `Last-Modified`, `If-None-Match` / `If-Modified-Since` (304),
/// `Range` with `If-Range` (206, multipart/byteranges for several ranges, 416 with
/// `Content-Range: bytes */len`), `Accept-Ranges`, `Cache-Control` and the content type.
///
/// Multiple ranges: up to 16 range-specs are accepted, overlapping or adjacent ones are merged
/// (StreamKit's ``ByteRangePolicy`` defaults), one remaining range is a plain 206, several are a
/// `multipart/byteranges` 206; more than 16 range-specs get 416.
///
/// The body is streamed in chunks of ``chunkSize`` bytes: memory per response is bounded
/// whatever the object's size. (Hummingbird 2's response writer takes `ByteBuffer`s only, so
/// `sendfile` is out of reach; small objects are read in one call when opened instead.)
struct ObjectResponder: Sendable {
    static let chunkSize = 128 * 1024
    let storage: any ObjectStorage
    let metrics: HostMetrics?
    let cache: ObjectCache

    /// Sending at a multiple of the media's bitrate after an initial burst, so a listener who
    /// stops early has not pulled the whole file.
    struct Pacing: Sendable {
        var burstBytes: Int64
        var bytesPerSecond: Double
    }

    /// How a served object is labelled in metrics and whether it counts as a stream start.
    struct Kind: Sendable {
        var metricsKind: String
        var isStreamStart: Bool
    }

    func respond(key: String, request: Request, contentType: String, cacheControl: String, kind: Kind,
                 requestStart: ContinuousClock.Instant = .now, pacing: Pacing? = nil) async throws -> Response {
        let object: any StoredObject
        do {
            if let cached = cache.object(key) {
                object = cached
            } else {
                guard let opened = try await storage.open(key) else { throw APIError.notFound("no such object") }
                if let contents = opened.contents { cache.insert(key, info: opened.info, contents: contents) }
                object = opened
            }
        } catch let error as StorageError {
            metrics?.storageError("open")
            throw APIError(.serviceUnavailable, code: "storage_unavailable", "cannot read the object: \(error.message)", retryAfter: 5)
        }
        let isHead = request.method == .head
        switch Self.plan(info: object.info, request: request.headers, contentType: contentType, cacheControl: cacheControl) {
        case .notModified(let headers):
            return Response(status: .notModified, headers: headers)
        case .full(let headers):
            let size = object.info.size
            if let contents = object.contents, pacing == nil {
                return memoryResponse(.ok, headers: headers, isHead: isHead, body: contents, kind: kind, start: requestStart)
            }
            return response(.ok, headers: headers, isHead: isHead, length: size, kind: kind, start: requestStart, pacing: pacing) { write in
                if size > 0 { try await object.read(0...(size - 1), chunkSize: Self.chunkSize(pacing), into: write) }
            }
        case .single(let headers, let range):
            let startsStream = Kind(metricsKind: kind.metricsKind, isStreamStart: kind.isStreamStart && range.lowerBound == 0)
            if let contents = object.contents, pacing == nil,
               let slice = contents.getSlice(at: contents.readerIndex + Int(range.lowerBound), length: range.count) {
                return memoryResponse(.partialContent, headers: headers, isHead: isHead, body: slice, kind: startsStream, start: requestStart)
            }
            return response(.partialContent, headers: headers, isHead: isHead, length: Int64(range.count), kind: startsStream,
                            start: requestStart, pacing: pacing) { write in
                try await object.read(range, chunkSize: Self.chunkSize(pacing), into: write)
            }
        case .multipart(let headers, let multipart, let ranges):
            let plain = Kind(metricsKind: kind.metricsKind, isStreamStart: false)
            return response(.partialContent, headers: headers, isHead: isHead, length: multipart.contentLength, kind: plain,
                            start: requestStart) { write in
                for (index, range) in ranges.enumerated() {
                    try await write(ByteBuffer(string: multipart.header(forPart: index)))
                    try await object.read(range, chunkSize: Self.chunkSize, into: write)
                }
                try await write(ByteBuffer(string: multipart.closingDelimiter))
            }
        case .refused(let error):
            throw error
        }
    }

    /// What to answer for one object, from its metadata and the request's conditional and range
    /// fields: shared by the routes and the event-loop fast path (``PlaybackFastPath``).
    enum Plan {
        /// 304, with validators and caching fields.
        case notModified(HTTPFields)
        /// 200 with the whole object (`Content-Length` set).
        case full(HTTPFields)
        /// 206 with one range (`Content-Range` and `Content-Length` set).
        case single(HTTPFields, ClosedRange<Int64>)
        /// 206 `multipart/byteranges`.
        case multipart(HTTPFields, MultipartByteRanges, [ClosedRange<Int64>])
        /// 416 (or 500 when the ranges cannot be framed).
        case refused(APIError)
    }

    /// Whether `request` asks for the whole object unconditionally (no range, no validator):
    /// then ``plan(info:request:contentType:cacheControl:now:)`` is `.full`, with fields that
    /// depend on the object alone.
    static func isUnconditional(_ request: HTTPFields) -> Bool {
        request[.range] == nil && request[.ifRange] == nil && request[.ifNoneMatch] == nil && request[.ifModifiedSince] == nil
    }

    static func plan(info: ObjectInfo, request: HTTPFields, contentType: String, cacheControl: String, now: Date = Date()) -> Plan {
        let etag = EntityTag(opaqueTag: info.entityTag)
        let modified = Timestamp(millisecondsSince1970: Int64(info.lastModified.timeIntervalSince1970) * 1000)
        let nowStamp = Timestamp(millisecondsSince1970: Int64(now.timeIntervalSince1970 * 1000))
        var headers: HTTPFields = [
            .contentType: contentType,
            .eTag: etag.description,
            .lastModified: HTTPDate.render(modified),
            .cacheControl: cacheControl,
            .acceptRanges: "bytes",
        ]
        if notModified(request, etag: etag, lastModified: modified) {
            headers[.contentType] = nil
            return .notModified(headers)
        }
        let resolution = RangeRequestEvaluator.evaluate(
            range: request[.range], ifRange: request[.ifRange], length: info.size, etag: etag,
            lastModified: modified, responseDate: nowStamp)
        switch resolution {
        case .full:
            headers[.contentLength] = String(info.size)
            return .full(headers)
        case .partial(let ranges) where ranges.count == 1:
            headers[.contentRange] = ContentRange.render(ranges[0], completeLength: info.size)
            headers[.contentLength] = String(ranges[0].count)
            return .single(headers, ranges[0])
        case .partial(let ranges):
            var generator = SystemRandomNumberGenerator()
            guard let multipart = MultipartByteRanges(boundary: MultipartByteRanges.makeBoundary(using: &generator),
                                                      partContentType: contentType, completeLength: info.size, ranges: ranges)
            else { return .refused(APIError(.internalServerError, code: "internal_error", "cannot frame the ranges")) }
            headers[.contentType] = multipart.contentType
            headers[.contentLength] = String(multipart.contentLength)
            return .multipart(headers, multipart, ranges)
        case .unsatisfiable, .tooManyRanges:
            return .refused(APIError(.rangeNotSatisfiable, code: "range_not_satisfiable",
                                     resolution == .tooManyRanges ? "more than 16 ranges requested" : "no requested range overlaps the \(info.size) bytes",
                                     headers: [.contentRange: ContentRange.unsatisfied(completeLength: info.size), .acceptRanges: "bytes"]))
        }
    }

    /// Chunks read from storage: a paced response holds one chunk while it trickles out, so
    /// it reads about a quarter second of media at a time instead of ``chunkSize`` (1,000 paced
    /// listeners would otherwise hold 128 MiB).
    static func chunkSize(_ pacing: Pacing?) -> Int {
        guard let pacing else { return chunkSize }
        return min(chunkSize, pacedPiece(pacing))
    }

    /// A quarter second at the paced rate, at least 4 KiB.
    static func pacedPiece(_ pacing: Pacing) -> Int {
        max(4096, Int(pacing.bytesPerSecond / 4))
    }

    /// An object already in memory goes out in one write (no streaming closure).
    private func memoryResponse(_ status: HTTPResponse.Status, headers: HTTPFields, isHead: Bool, body: ByteBuffer, kind: Kind,
                                start: ContinuousClock.Instant) -> Response {
        guard !isHead else { return Response(status: status, headers: headers, body: ResponseBody()) }
        if let metrics {
            metrics.bytesServed(body.readableBytes, kind: kind.metricsKind)
            if kind.isStreamStart { metrics.streamStart.record(ContinuousClock.now - start) }
        }
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: body))
    }

    private func response(_ status: HTTPResponse.Status, headers: HTTPFields, isHead: Bool, length: Int64, kind: Kind,
                          start: ContinuousClock.Instant, pacing: Pacing? = nil,
                          body: @escaping @Sendable (_ write: (ByteBuffer) async throws -> Void) async throws -> Void) -> Response {
        guard !isHead else { return Response(status: status, headers: headers, body: ResponseBody()) }
        let metrics = self.metrics
        return Response(status: status, headers: headers, body: ResponseBody(contentLength: Int(length)) { writer in
            metrics?.activeStreams.increment()
            defer { metrics?.activeStreams.decrement() }
            var sent = 0
            var first = true
            let began = ContinuousClock.now
            var waited = Duration.zero
            if pacing != nil { metrics?.pacedResponseStarted() }
            // Also when the listener leaves early (the write then throws).
            defer { if pacing != nil { metrics?.pacingWaited(waited) } }
            try await body { buffer in
                if let pacing {
                    // Pieces of at most a quarter second of media, each sent once the budget
                    // (burst + rate × elapsed) allows it.
                    let piece = Self.pacedPiece(pacing)
                    var rest = buffer
                    while rest.readableBytes > 0, let slice = rest.readSlice(length: min(piece, rest.readableBytes)) {
                        let allowed = Double(pacing.burstBytes) + pacing.bytesPerSecond * ((ContinuousClock.now - began) / .seconds(1))
                        let excess = Double(sent + slice.readableBytes) - allowed
                        if excess > 0 {
                            let pause = Duration.seconds(excess / pacing.bytesPerSecond)
                            waited += pause
                            try await Task.sleep(for: pause)
                        }
                        sent += slice.readableBytes
                        try await writer.write(slice)
                    }
                } else {
                    sent += buffer.readableBytes
                    try await writer.write(buffer)
                }
                if first {
                    first = false
                    if kind.isStreamStart { metrics?.streamStart.record(ContinuousClock.now - start) }
                }
            }
            try await writer.finish(nil)
            metrics?.bytesServed(sent, kind: kind.metricsKind)
        })
    }

    /// RFC 9110 §13.1.2 and §13.1.3: If-None-Match (weak comparison) takes precedence over
    /// If-Modified-Since.
    static func notModified(_ headers: HTTPFields, etag: EntityTag, lastModified: Timestamp) -> Bool {
        if let ifNoneMatch = headers[.ifNoneMatch] {
            if ifNoneMatch.trimmingCharacters(in: .whitespaces) == "*" { return true }
            for candidate in ifNoneMatch.split(separator: ",") {
                let trimmed = candidate.trimmingCharacters(in: .whitespaces)
                if let tag = EntityTag(parsing: Substring(trimmed)), tag.opaqueTag == etag.opaqueTag { return true }
            }
            return false
        }
        if let since = headers[.ifModifiedSince], let date = HTTPDate.parse(since) {
            return lastModified.millisecondsSince1970 / 1000 <= date.millisecondsSince1970 / 1000
        }
        return false
    }
}
