public import MediaCore
import Foundation
import StreamKit

/// Writes a packaging run's files under a directory (what `streamhost package` does).
public struct DirectorySink: PackageSink {
    public let root: String

    public init(root: String) { self.root = root }

    public func write(_ bytes: [UInt8], to relativePath: String) async throws(MediaError) {
        let url = try target(relativePath)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw MediaError(.ioError, "cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    /// Moves the file into place: rename(2) when it is on the same file system, else a copy
    /// to a temporary name beside the target, renamed when complete (the target is never partial).
    public func write(fileAt path: String, to relativePath: String) async throws(MediaError) {
        defer { _ = unlink(path) }
        let url = try target(relativePath)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            if rename(path, url.path) == 0 { return }
            let temporary = url.path + ".part-\(UUID().uuidString)"
            try FileManager.default.copyItem(atPath: path, toPath: temporary)
            guard rename(temporary, url.path) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = unlink(temporary)
                throw MediaError(.ioError, "cannot write \(url.path): \(reason)")
            }
        } catch let error as MediaError {
            throw error
        } catch {
            throw MediaError(.ioError, "cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    private func target(_ relativePath: String) throws(MediaError) -> URL {
        guard !relativePath.hasPrefix("/"), !relativePath.split(separator: "/").contains("..") else {
            throw MediaError(.ioError, "refusing to write outside the output directory: \(relativePath)")
        }
        return URL(fileURLWithPath: root).appendingPathComponent(relativePath)
    }
}

/// Packages one file to a directory with no server: every rendition, CMAF segments, HLS and
/// DASH manifests, waveforms and `manifest.json` (written last). HLS gets one multivariant
/// playlist per switching set (`master-aac.m3u8`, `master-opus.m3u8`, `master-flac.m3u8`) and
/// `master.m3u8`, the default set's (AAC when there is one).
public enum OfflinePackager {
    /// - Parameters:
    ///   - file: the source.
    ///   - directory: where the files go (created as needed).
    ///   - configuration: the ladder, and how its segments are encrypted.
    ///   - protection: names the key of `configuration.protection` in the manifest and the
    ///     playlists (required when the configuration encrypts; the MPD is then not written).
    ///   - progress: called with the fraction done, 0…1.
    public static func package(file: String, to directory: String, configuration: LadderConfiguration = LadderConfiguration(),
                               protection: PublishedProtection? = nil,
                               progress: @Sendable (Double) -> Void = { _ in }) async throws(MediaError) -> TrackManifest {
        guard (configuration.protection == nil) == (protection == nil) else {
            throw MediaError(.unsupportedParameters, "an encrypted package needs its key named (protection), and only an encrypted one")
        }
        let sink = DirectorySink(root: directory)
        let report = try await LadderPackager.package(source: file, configuration: configuration, sink: sink, progress: progress)
        var manifest = TrackManifest(report: report)
        manifest.protection = protection
        manifest.watermark = configuration.watermark.map { PublishedWatermark(parameters: $0.parameters, segmentDuration: $0.segmentDuration) }
        do {
            if manifest.renditions.contains(where: { $0.initSegment != nil }) && manifest.playsOverHLS {
                // One multivariant playlist per switching set, and master.m3u8 for the default one.
                for id in [nil] + manifest.hlsSwitchingSets.map(\.id) {
                    if let master = try manifest.masterPlaylist(switchingSet: id) {
                        try await sink.write(Array(master.utf8), to: TrackManifest.masterPlaylistName(id))
                    }
                }
                for rendition in manifest.renditions {
                    // Watermarked: the files list variant A throughout (the host renders each
                    // session's own choice of variants).
                    if let playlist = try manifest.mediaPlaylist(rendition: rendition.id, variants: manifest.watermark == nil ? nil : []) {
                        try await sink.write(Array(playlist.utf8), to: "\(rendition.id).m3u8")
                    }
                }
                if let mpd = try manifest.mpd(variants: manifest.watermark == nil ? nil : []) { try await sink.write(Array(mpd.utf8), to: "manifest.mpd") }
            } else if manifest.renditions.contains(where: { $0.initSegment != nil }), let mpd = try manifest.mpd() {
                try await sink.write(Array(mpd.utf8), to: "manifest.mpd")
            }
        } catch let error as MediaError {
            throw error
        } catch {
            throw MediaError(.internalFailure, "cannot build the manifests: \(error)")
        }
        try await sink.write(Array(MediaTools.encode(manifest).utf8), to: TrackLayout.manifestName)
        return manifest
    }
}
