import Foundation
import Logging
public import MediaCore
import ServiceLifecycle
import Synchronization

/// Packages one track: the source from storage → ``OfflinePackager`` into a private staging
/// directory → every object into storage under `tracks/{id}/v{n}/`, `manifest.json` last.
///
/// Idempotent: a retry (after a crash, a lost lease, a failure) first removes whatever an
/// earlier attempt left under the same version, so a track is never published in part.
public struct IngestPipeline: Sendable {
    public let storage: any ObjectStorage
    public let stagingDirectory: String
    public let ladder: LadderConfiguration
    /// Content keys of protected tracks (nil: every track is packaged in the clear).
    public let keys: KeyService?
    /// Watermarked tracks' keys (nil: no track is watermarked).
    public let watermarks: WatermarkService?

    public init(storage: any ObjectStorage, stagingDirectory: String, ladder: LadderConfiguration, keys: KeyService? = nil,
                watermarks: WatermarkService? = nil) {
        self.storage = storage
        self.stagingDirectory = stagingDirectory
        self.ladder = ladder
        self.keys = keys
        self.watermarks = watermarks
    }

    /// The ladder for `track`: encrypted with its content key when it has one, and then without
    /// progressive files unless `protection.progressive` is `clear`; and the manifest's record of it.
    ///
    /// A watermarked track keeps only its AAC and Opus CMAF renditions: a progressive or
    /// lossless copy would be the whole track without a watermark.
    func ladder(for track: TrackRecord) async throws -> (LadderConfiguration, PublishedProtection?) {
        var ladder = self.ladder
        if let packaging = try await watermarks?.packaging(track: track.id) {
            ladder.watermark = packaging
            ladder.renditions = ladder.renditions.compactMap { rendition in
                guard rendition.settings.codec == .aac || rendition.settings.codec == .opus, rendition.outputs.contains(.cmaf) else { return nil }
                var rendition = rendition
                rendition.outputs = .cmaf
                return rendition
            }
            if ladder.renditions.isEmpty {
                throw MediaError(.unsupportedParameters, "the ladder has no AAC or Opus CMAF rendition to watermark")
            }
        }
        guard let keys, let (record, protection) = try await keys.segmentProtection(track: track.id) else { return (ladder, nil) }
        ladder.protection = protection
        if !keys.configuration.clearProgressive {
            ladder.renditions = ladder.renditions.compactMap { rendition in
                var rendition = rendition
                rendition.outputs.remove(.progressive)
                return rendition.outputs.isEmpty || rendition.settings.codec == .mp3 ? nil : rendition
            }
        }
        return (ladder, PublishedProtection(method: record.method, keyID: record.keyID))
    }

    /// Runs `job` for `track`, returning the published `manifest.json` text.
    public func run(job: JobRecord, track: TrackRecord, progress: @escaping @Sendable (Double) -> Void) async throws -> String {
        let staging = stagingDirectory + "/" + job.id
        try? FileManager.default.removeItem(atPath: staging)
        defer { try? FileManager.default.removeItem(atPath: staging) }
        try FileManager.default.createDirectory(atPath: staging + "/out", withIntermediateDirectories: true)

        var source = storage.localPath(of: track.sourceKey)
        if source == nil {
            let local = staging + "/source"
            try await storage.fetch(track.sourceKey, to: local)
            source = local
        }
        let (ladder, protection) = try await ladder(for: track)
        _ = try await OfflinePackager.package(file: source!, to: staging + "/out", configuration: ladder, protection: protection) { fraction in
            progress(fraction * 95)
        }
        try Task.checkCancellation()

        let version = TrackLayout(track: track.id).version(job.targetVersion)
        try await storage.delete(prefix: version.prefix)
        let root = staging + "/out"
        let files = (FileManager.default.enumerator(atPath: root)?.allObjects as? [String] ?? []).filter { relative in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory) && !isDirectory.boolValue
        }.sorted()
        guard files.contains(TrackLayout.manifestName) else { throw MediaError(.internalFailure, "the packager wrote no manifest.json") }
        let manifest = try String(contentsOfFile: root + "/" + TrackLayout.manifestName, encoding: .utf8)
        for (index, relative) in files.enumerated() where relative != TrackLayout.manifestName {
            try Task.checkCancellation()
            try await storage.put(fileAt: root + "/" + relative, key: version.object(relative))
            progress(95 + 5 * Double(index) / Double(files.count))
        }
        // Last: the object that makes the version visible.
        try await storage.put(Array(manifest.utf8), key: version.manifest)
        return manifest
    }
}

/// Progress of one job, shared between the packager's callback and the heartbeat.
final class ProgressBox: Sendable {
    private let value = Mutex<Double>(0)
    func set(_ newValue: Double) { value.withLock { $0 = newValue } }
    func get() -> Double { value.withLock { $0 } }
}
