public import Hummingbird
public import Foundation
import Logging
public import MediaCore
import MultipartKit
import HTTPTypes
import NIOCore
import StreamKit

/// What `GET /v1/tracks/{id}` (and the upload's 202) answers.
public struct TrackResource: Codable, Sendable, ResponseEncodable {
    public struct RenditionSummary: Codable, Sendable {
        public var id: String
        public var codec: String
        public var codecs: String
        public var sampleRate: Int
        public var channelCount: Int
        public var targetBitrate: Int?
        public var segmentCount: Int
        /// Storage key of the progressive file.
        public var progressive: String?
        /// The HLS switching set of a CMAF rendition (`aac`, `opus`, `flac`): the key of its
        /// multivariant playlist in ``Playback/hlsByCodec``.
        public var switchingSet: String?
    }

    public var id: String
    public var jobId: String
    public var status: TrackStatus
    /// 0–100 while processing; 100 when ready.
    public var progress: Double
    public var createdAt: Date
    public var updatedAt: Date
    public var failureReason: String?
    /// Published version (`tracks/{id}/v{n}/`), once ready.
    public var version: Int?
    /// The upload's probe: format, duration, channels, tags (sanitised).
    public var metadata: MediaProbe?
    /// Source loudness (EBU R128), once analysed.
    public var loudness: LoudnessReport?
    /// Loudness of the normalised renditions.
    public var normalizedLoudness: LoudnessReport?
    public var gainDB: Double?
    public var renditions: [RenditionSummary]?
    /// Where to play the track (signed for the caller unless the host is public), once ready.
    public var playback: Playback?

    /// Playback URLs (paths on this host, with the signed token in their query).
    public struct Playback: Codable, Sendable {
        public struct ProgressiveFile: Codable, Sendable {
            public var rendition: String
            public var mimeType: String
            public var url: String
        }
        /// When the signed URLs stop working (absent in public mode).
        public var expires: Date?
        /// The multivariant playlist of the default switching set (AAC when the track has it):
        /// `/hls/{id}/master.m3u8`.
        public var hls: String
        /// One multivariant playlist per switching set, by its id (`aac`, `opus`, `flac`):
        /// `/hls/{id}/master-{set}.m3u8`. Each lists renditions of one codec, sample rate and
        /// channel count, so a player's ABR can switch between all of them; changing codec means
        /// loading another playlist.
        public var hlsByCodec: [String: String]
        public var dash: String
        public var waveform: String
        public var progressive: [ProgressiveFile]
    }

    /// Adds ``playback`` for a ready track.
    func withPlayback(auth: HostAuth, now: Date) -> TrackResource {
        guard status == .ready, let version, let renditions else { return self }
        var copy = self
        let prefix = IngestPipeline.versionPrefix(track: id, version: version) + "/"
        copy.playback = Playback(
            expires: auth.isPublic ? nil : now.addingTimeInterval(auth.playbackTTL),
            hls: auth.signedPath("/hls/\(id)/master.m3u8", track: id, now: now),
            hlsByCodec: Dictionary(renditions.compactMap(\.switchingSet).map { set in
                (set, auth.signedPath("/hls/\(id)/" + TrackManifest.masterPlaylistName(set), track: id, now: now))
            }, uniquingKeysWith: { first, _ in first }),
            dash: auth.signedPath("/dash/\(id)/manifest.mpd", track: id, now: now),
            waveform: auth.signedPath("/v1/tracks/\(id)/waveform.json", track: id, now: now),
            progressive: renditions.compactMap { rendition in
                guard let key = rendition.progressive, key.hasPrefix(prefix) else { return nil }
                return .init(rendition: rendition.id, mimeType: MediaContentType.forKey(key),
                             url: auth.signedPath("/media/\(id)/v\(version)/" + key.dropFirst(prefix.count), track: id, now: now))
            })
        return copy
    }

    /// - Parameter manifest: the published manifest, for a ready track.
    init(_ record: TrackRecord, manifest: TrackManifest?) {
        id = record.id
        jobId = record.jobID
        status = record.status
        progress = (record.progress * 10).rounded() / 10
        createdAt = record.createdAt
        updatedAt = record.updatedAt
        failureReason = record.failureReason
        metadata = try? JSONDecoder().decode(MediaProbe.self, from: Data(record.probeJSON.utf8))
        if record.status == .ready, let manifest {
            let prefix = IngestPipeline.versionPrefix(track: record.id, version: record.version)
            version = record.version
            loudness = manifest.loudness
            normalizedLoudness = manifest.normalizedLoudness
            gainDB = manifest.gainDB
            var sets: [String: String] = [:]
            for set in manifest.hlsSwitchingSets {
                for rendition in set.renditions { sets[rendition.id] = set.id }
            }
            renditions = manifest.renditions.map {
                RenditionSummary(id: $0.id, codec: $0.codec, codecs: $0.codecs, sampleRate: $0.sampleRate, channelCount: $0.channelCount,
                                 targetBitrate: $0.targetBitrate, segmentCount: $0.segments.count,
                                 progressive: $0.progressive.map { prefix + "/" + $0 }, switchingSet: sets[$0.id])
            }
        }
    }
}

/// The body of `POST /v1/tokens/revoke`.
struct Revocation: Decodable {
    var jti: String
    /// The token's `exp` (seconds since 1970), so the entry can be forgotten after it.
    var exp: Double?
}

/// A page of `GET /v1/tracks`.
struct TrackPage: Codable, Sendable, ResponseEncodable {
    var tracks: [TrackResource]
    /// Pass as `after` for the next page; absent on the last page.
    var next: String?
}

/// The `/v1/tracks` API: upload, status, list, delete.
public struct TrackRoutes: Sendable {
    let catalog: any Catalog
    let storage: any ObjectStorage
    let configuration: HostConfiguration
    let temporaryDirectory: String
    let auth: HostAuth
    let manifests: ManifestCache
    /// Called after a job is enqueued (wakes an idle worker).
    let onEnqueue: @Sendable () -> Void
    /// Called with a track id once the track is deleted (drops cached objects, purges the CDN).
    let onDelete: @Sendable (String) async -> Void

    public init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, temporaryDirectory: String,
                auth: HostAuth, onEnqueue: @escaping @Sendable () -> Void, onDelete: @escaping @Sendable (String) async -> Void = { _ in }) {
        self.init(catalog: catalog, storage: storage, configuration: configuration, temporaryDirectory: temporaryDirectory,
                  auth: auth, manifests: ManifestCache(), onEnqueue: onEnqueue, onDelete: onDelete)
    }

    init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, temporaryDirectory: String,
         auth: HostAuth, manifests: ManifestCache, onEnqueue: @escaping @Sendable () -> Void,
         onDelete: @escaping @Sendable (String) async -> Void) {
        self.manifests = manifests
        self.auth = auth
        self.onDelete = onDelete
        self.catalog = catalog
        self.storage = storage
        self.configuration = configuration
        self.temporaryDirectory = temporaryDirectory
        self.onEnqueue = onEnqueue
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: Router<Context>) {
        router.post("/v1/tracks") { request, context in
            try await self.auth.require(.upload, request)
            return try await self.upload(request, context: context)
        }
        router.get("/v1/tracks") { request, _ in
            try await self.auth.requireAny([.stream, .admin], request)
            return try await self.list(request)
        }
        router.get("/v1/tracks/:id") { request, context in
            let id = try context.parameters.require("id")
            let principal = try await self.auth.requireAny([.stream, .upload, .admin], request, track: id)
            guard let record = try await self.catalogCall({ try await self.catalog.track(id: id) }) else { throw APIError.notFound("no track \(id)") }
            let resource = TrackResource(record, manifest: self.manifests.published(record))
            return principal.allows(.stream, track: id) ? resource.withPlayback(auth: self.auth, now: Date()) : resource
        }
        router.post("/v1/tokens/revoke") { request, context in
            try await self.auth.require(.admin, request)
            let body = try await request.decode(as: Revocation.self, context: context)
            guard !body.jti.isEmpty, body.jti.utf8.count <= 200 else { throw APIError(.badRequest, code: "bad_request", "jti must be 1–200 bytes") }
            // Without the token's expiry, keep the entry for a year (longer than any token we mint).
            let expires = body.exp.map { Date(timeIntervalSince1970: $0) } ?? Date().addingTimeInterval(365 * 86400)
            try await self.catalogCall { try await self.catalog.revoke(tokenID: body.jti, expiresAt: expires) }
            context.logger.info("token revoked", metadata: ["jti": "\(body.jti)"])
            return Response(status: .noContent)
        }
        router.delete("/v1/tracks/:id") { request, context in
            try await self.auth.require(.admin, request)
            let id = try context.parameters.require("id")
            guard try await self.catalogCall({ try await self.catalog.deleteTrack(id: id) }) else { throw APIError.notFound("no track \(id)") }
            do {
                try await self.storage.delete(prefix: "tracks/\(id)")
            } catch {
                await self.onDelete(id)
                throw APIError(.internalServerError, code: "storage_error", "the track is deleted but some objects remain: \(error)")
            }
            await self.onDelete(id)
            return Response(status: .noContent)
        }
    }

    private func catalogCall<T>(_ body: () async throws -> T) async throws(APIError) -> T {
        try await StreamHost.catalogCall(catalog, body)
    }

    private var intake: TrackIntake {
        TrackIntake(catalog: catalog, storage: storage, configuration: configuration, onEnqueue: onEnqueue)
    }

    private func list(_ request: Request) async throws -> TrackPage {
        let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 50, 1), 500)
        let after = request.uri.queryParameters.get("after")
        let records = try await catalogCall { try await catalog.tracks(limit: limit + 1, after: after) }
        let now = Date()
        let page = records.prefix(limit).map { TrackResource($0, manifest: manifests.published($0)).withPlayback(auth: auth, now: now) }
        return TrackPage(tracks: Array(page), next: records.count > limit ? page.last?.id : nil)
    }

    // MARK: Upload

    private func upload(_ request: Request, context: some RequestContext) async throws -> Response {
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!].map { String($0.prefix(200)) }
        if let idempotencyKey, let existing = try await catalogCall({ try await catalog.track(idempotencyKey: idempotencyKey) }) {
            return try accepted(existing, context: context)
        }
        let depth = try await catalogCall { try await catalog.activeJobCount() }
        guard depth < configuration.maxQueueDepth else {
            throw APIError(.serviceUnavailable, code: "queue_full", "the transcode queue is full (\(depth) jobs); retry later", retryAfter: 30)
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > configuration.maxUploadBytes {
            throw APIError(.contentTooLarge, code: "payload_too_large", "the upload is \(length) bytes; the limit is \(configuration.maxUploadBytes)")
        }

        let temporary = temporaryDirectory + "/upload-\(UUID().uuidString)"
        defer { unlink(temporary) }
        let received = try await receive(request, to: temporary)
        guard received > 0 else { throw APIError(.badRequest, code: "empty_body", "the upload has no bytes") }

        let priority = request.uri.queryParameters.get("priority") == "background" ? JobPriority.backCatalogue : .interactive
        let record = try await intake.accept(file: temporary, byteCount: received, idempotencyKey: idempotencyKey, priority: priority)
        context.logger.info("upload accepted", metadata: ["track": "\(record.id)", "bytes": "\(received)"])
        return try accepted(record, context: context)
    }

    private func accepted(_ record: TrackRecord, context: some RequestContext) throws -> Response {
        let data = try JSONEncoder().encode(Accepted(id: record.id, jobId: record.jobID, status: record.status))
        return Response(status: .accepted,
                        headers: [.contentType: "application/json; charset=utf-8", .location: "/v1/tracks/\(record.id)"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Streams the body (raw, or the first file part of `multipart/form-data`) to `path`,
    /// enforcing the size cap as bytes arrive. Returns the byte count.
    private func receive(_ request: Request, to path: String) async throws -> Int {
        let file = UploadFile(path: path, limit: configuration.maxUploadBytes)
        guard file.descriptor >= 0 else {
            throw APIError(.internalServerError, code: "storage_error", "cannot create a temporary file: \(String(cString: strerror(errno)))")
        }
        defer { file.close() }
        let contentType = request.headers[.contentType] ?? ""
        if contentType.lowercased().hasPrefix("multipart/form-data") {
            guard let boundary = Self.boundary(contentType) else {
                throw APIError(.badRequest, code: "bad_multipart", "multipart/form-data without a boundary")
            }
            let parser = MultipartParser(boundary: boundary)
            let state = MultipartState()
            parser.onHeader = { name, value in
                if name.lowercased() == "content-disposition", value.contains("filename"), !state.done { state.inFile = true }
            }
            parser.onBody = { buffer in
                guard state.inFile, state.error == nil else { return }
                do { try file.write(buffer.readableBytesView) } catch { state.error = error }
            }
            parser.onPartComplete = {
                if state.inFile { state.done = true }
                state.inFile = false
            }
            for try await chunk in request.body {
                do {
                    try parser.execute(chunk)
                } catch {
                    throw APIError(.badRequest, code: "bad_multipart", "the multipart body is malformed")
                }
                if let error = state.error { throw error }
            }
            guard state.done || file.written > 0 else {
                throw APIError(.badRequest, code: "bad_multipart", "the multipart body has no file part")
            }
        } else {
            for try await chunk in request.body {
                try file.write(chunk.readableBytesView)
            }
        }
        return file.written
    }

    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }

    /// A sortable, URL-safe id: milliseconds since 1970 in base 36, then 10 random characters.
    static func newID() -> String {
        let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz")
        let millis = UInt64(Date().timeIntervalSince1970 * 1000)
        var time = String(millis, radix: 36)
        time = String(repeating: "0", count: max(0, 9 - time.count)) + time
        return time + String((0..<10).map { _ in alphabet.randomElement()! })
    }
}

/// Turns a received file into an accepted track: sniff (415), probe (422), keep the source in
/// storage, then record the track and its job atomically (503 when the queue is full). Shared
/// by the upload route and in-process `streamhost ingest`.
public struct TrackIntake: Sendable {
    let catalog: any Catalog
    let storage: any ObjectStorage
    let configuration: HostConfiguration
    let onEnqueue: @Sendable () -> Void

    public init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, onEnqueue: @escaping @Sendable () -> Void) {
        self.catalog = catalog
        self.storage = storage
        self.configuration = configuration
        self.onEnqueue = onEnqueue
    }

    /// Accepts `file` (consumed: moved into storage), returning the track (an earlier one
    /// when `idempotencyKey` was used before).
    public func accept(file: String, byteCount: Int, idempotencyKey: String?, priority: JobPriority) async throws(APIError) -> TrackRecord {
        let probe: MediaProbe
        let family: MediaFamily
        do {
            family = try Sniffer.sniff(fileAt: file)
            probe = try MediaProbe.probe(fileAt: file, timeLimit: .seconds(20))
            if configuration.validateUploadsByDecoding { try Self.validateByDecoding(file) }
        } catch {
            throw APIError.upload(error)
        }
        let now = Date()
        let id = TrackRoutes.newID()
        let sourceKey = "tracks/\(id)/source/original.\(family.fileExtension)"
        let track = TrackRecord(id: id, status: .queued, progress: 0, createdAt: now, updatedAt: now, sourceKey: sourceKey,
                                sourceBytes: byteCount, probeJSON: MediaTools.encode(probe), version: 0, manifestJSON: nil,
                                failureReason: nil, jobID: "job_" + TrackRoutes.newID())
        let job = JobRecord(id: track.jobID, trackID: id, priority: priority, state: .queued, attempts: 0, maxAttempts: configuration.maxAttempts,
                            runAfter: now, leaseOwner: nil, leaseExpiresAt: nil, lastError: nil, targetVersion: 1, createdAt: now)
        // The source is stored before the catalog row, so an accepted upload (202) always
        // has its bytes; a crash in between leaves only an orphan object, never a lost track.
        do {
            try await storage.put(fileAt: file, key: sourceKey)
        } catch {
            // Nothing was accepted: the client keeps its file and retries when storage is back.
            throw APIError(.serviceUnavailable, code: "storage_unavailable", "cannot store the upload: \(error.message)", retryAfter: 10)
        }
        let outcome: InsertOutcome
        do {
            outcome = try await catalogCall(catalog) { try await catalog.insert(track: track, job: job, idempotencyKey: idempotencyKey, maxQueueDepth: configuration.maxQueueDepth) }
        } catch {
            try? await storage.delete(prefix: "tracks/\(id)")
            throw error
        }
        switch outcome {
        case .created(let record):
            onEnqueue()
            return record
        case .existing(let record):
            try? await storage.delete(prefix: "tracks/\(id)")
            return record
        }
    }
}

extension TrackIntake {
    /// Decodes the whole upload once (about 1/20 of the time packaging takes) and refuses it
    /// (422) when it is truncated, has corrupt packets, or decodes to nothing: such a file is
    /// almost always a broken upload, and the uploader can fix it now, while the job would
    /// only publish damaged audio.
    static func validateByDecoding(_ path: String) throws(MediaError) {
        let decoder = try AudioDecoder(path: path, options: DecoderOptions(channelMode: .preserve, timeLimit: .seconds(120)))
        while try decoder.read() != nil {}
        let report = decoder.report
        if report.framesDecoded == 0 {
            throw MediaError(.invalidData, "the file decodes to no audio")
        }
        if report.truncated {
            let rate = Double(max(decoder.sampleRate, 1))
            let expected = report.expectedFrames.map { String(format: " of %.1f s", Double($0) / rate) } ?? ""
            throw MediaError(.invalidData, String(format: "the file is truncated: it decodes to %.1f s", Double(report.framesDecoded) / rate) + expected)
        }
        if report.corruptPackets > 0 {
            throw MediaError(.invalidData, "the file has \(report.corruptPackets) corrupt packet(s)")
        }
    }
}

/// Maps a catalog failure to its HTTP answer.
func catalogCall<T>(_ catalog: any Catalog, _ body: () async throws -> T) async throws(APIError) -> T {
    do {
        return try await body()
    } catch let error as CatalogError {
        switch error.code {
        case .queueFull: throw APIError(.serviceUnavailable, code: "queue_full", error.message, retryAfter: 30)
        case .database: throw APIError(.serviceUnavailable, code: "catalog_unavailable", error.message, retryAfter: 5)
        }
    } catch {
        throw APIError(.serviceUnavailable, code: "catalog_unavailable", "\(error)", retryAfter: 5)
    }
}

/// The upload's 202 body.
private struct Accepted: Encodable {
    var id: String
    var jobId: String
    var status: TrackStatus
}

/// Multipart parser callbacks' shared state (the parser runs on one task only).
private final class MultipartState {
    var inFile = false
    var done = false
    var error: (any Error)?
}

/// A temporary upload file written with POSIX calls (small appends to local disk; the
/// descriptor never leaves the handling task). Enforces the size cap.
private final class UploadFile {
    let descriptor: Int32
    let limit: Int
    private(set) var written = 0

    init(path: String, limit: Int) {
        descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        self.limit = limit
    }

    func write(_ bytes: ByteBufferView) throws {
        written += bytes.count
        guard written <= limit else {
            throw APIError(.contentTooLarge, code: "payload_too_large", "the upload exceeds the limit of \(limit) bytes")
        }
        try bytes.withContiguousStorageIfAvailable { buffer in
            var offset = 0
            while offset < buffer.count {
                let result = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                guard result > 0 else {
                    throw APIError(.internalServerError, code: "storage_error", "cannot write the upload: \(String(cString: strerror(errno)))")
                }
                offset += result
            }
        }
    }

    func close() { _ = Glibc.close(descriptor) }
}

extension MediaFamily {
    /// The extension the kept original is stored with.
    var fileExtension: String {
        switch self {
        case .mp3: "mp3"
        case .adts: "aac"
        case .mp4: "m4a"
        case .flac: "flac"
        case .ogg(let codec):
            switch codec {
            case .opus: "opus"
            case .vorbis: "ogg"
            case .flac: "oga"
            }
        case .wav: "wav"
        case .aiff: "aiff"
        }
    }
}
