import Hummingbird
import Foundation
import Logging
import MediaCore
import HTTPTypes
import NIOCore
import StreamKit

/// Turns a received file into an accepted track: sniff, probe (and by default decode), keep the
/// source in storage, then record the track and its job atomically. Shared by the upload route
/// and in-process `streamhost ingest`. Refusals are ``IntakeError`` values (415, 422, 503 when
/// the API maps them) and ``CatalogError`` (the queue is full, the catalog is down).
public struct TrackIntake: Sendable {
    let catalog: any Catalog
    let storage: any ObjectStorage
    let configuration: HostConfiguration
    let onEnqueue: @Sendable () -> Void
    /// Makes the content keys of protected tracks (nil: protection is refused).
    let keys: KeyService?

    public init(catalog: any Catalog, storage: any ObjectStorage, configuration: HostConfiguration, keys: KeyService? = nil,
                onEnqueue: @escaping @Sendable () -> Void) {
        self.catalog = catalog
        self.storage = storage
        self.configuration = configuration
        self.keys = keys
        self.onEnqueue = onEnqueue
    }

    /// Accepts `file` (consumed: moved into storage), returning the track (an earlier one
    /// when `idempotencyKey` was used before).
    ///
    /// - Parameters:
    ///   - file: the received file.
    ///   - byteCount: its size.
    ///   - idempotencyKey: the client's key, if any.
    ///   - priority: the job's priority.
    ///   - protection: how the track's segments are encrypted (nil: the host's
    ///     `protection.default`). A protected track's content key is created before its job
    ///     exists, so no worker can package it in the clear.
    ///   - watermark: whether the track gets forensic A/B watermarks (nil: the host's
    ///     `protection.watermark`); marked before its job exists, like a content key.
    public func accept(file: String, byteCount: Int, idempotencyKey: String?, priority: JobPriority,
                       protection: ProtectionConfiguration.Method? = nil, watermark: Bool? = nil) async throws -> TrackRecord {
        let method = protection ?? configuration.protection.defaultMethod
        let watermarked = watermark ?? configuration.protection.watermarkByDefault
        if method != .none && keys == nil {
            throw ProtectionError(.unsupported, "this host has no key service: tracks cannot be protected")
        }
        let probe: MediaProbe
        let family: MediaFamily
        do {
            family = try Sniffer.sniff(fileAt: file)
            probe = try MediaProbe.probe(fileAt: file, timeLimit: .seconds(20))
            if configuration.validateUploadsByDecoding { try Self.validateByDecoding(file) }
        } catch {
            throw IntakeError(media: error)
        }
        let now = Date()
        let id = TrackRoutes.newID()
        let layout = TrackLayout(track: id)
        let sourceKey = layout.source(fileExtension: family.fileExtension)
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
            throw IntakeError(.storageUnavailable, "cannot store the upload: \(error.message)")
        }
        let outcome: InsertOutcome
        do {
            if method != .none, let keys { try await keys.createKey(track: id, method: method) }
            if watermarked { try await catalog.markWatermarked(track: id, at: now) }
            outcome = try await catalog.insert(track: track, job: job, idempotencyKey: idempotencyKey, maxQueueDepth: configuration.maxQueueDepth)
        } catch {
            try? await storage.delete(prefix: layout.prefix)
            if method != .none { try? await catalog.deleteContentKey(track: id) }
            if watermarked { try? await catalog.unmarkWatermarked(track: id) }
            throw error
        }
        switch outcome {
        case .created(let record):
            onEnqueue()
            return record
        case .existing(let record):
            try? await storage.delete(prefix: layout.prefix)
            if method != .none { try? await catalog.deleteContentKey(track: id) }
            if watermarked { try? await catalog.unmarkWatermarked(track: id) }
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
