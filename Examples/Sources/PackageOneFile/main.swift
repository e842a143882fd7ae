// A backend job with MediaCore: probe an upload, package it to the default ladder (AAC, Opus,
// MP3, FLAC; CMAF segments, progressive files, waveform) into a directory, and write HLS and
// DASH manifests for it with StreamKit. No server, no database.
//
//   swift run PackageOneFile song.flac out/
import Foundation
import MediaCore
import StreamKit

/// Writes each file the packager makes under a directory.
struct DirectoryWriter: PackageSink {
    let root: URL

    func write(_ bytes: [UInt8], to relativePath: String) async throws(MediaError) {
        let url = root.appendingPathComponent(relativePath)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(bytes).write(to: url, options: .atomic)
        } catch {
            throw MediaError(.ioError, "cannot write \(url.path): \(error)")
        }
    }
}

let arguments = CommandLine.arguments.dropFirst()
guard arguments.count == 2, let input = arguments.first, let output = arguments.last else {
    print("usage: PackageOneFile INPUT OUTPUT-DIRECTORY")
    exit(2)
}
do {
    let probe = try MediaProbe.probe(fileAt: input)
    print("\(input): \(probe.durationSeconds.map { String(format: "%.1f s", $0) } ?? "?"), \(probe.sampleRate) Hz, \(probe.channelCount) ch")
    let report = try await LadderPackager.package(source: input, sink: DirectoryWriter(root: URL(fileURLWithPath: output))) { fraction in
        if Int(fraction * 100) % 25 == 0 { print("  \(Int(fraction * 100)) %") }
    }
    print(String(format: "loudness %.1f LUFS → %.1f LUFS", report.sourceLoudness.integratedLoudness, report.normalizedLoudness.integratedLoudness))

    // The packager's index as StreamKit renditions (CMAF outputs only), then one HLS
    // multivariant playlist per switching set (players cannot change codec mid-stream) and an MPD.
    let renditions = report.renditions.compactMap { r -> Rendition? in
        guard let initSegment = r.initSegment, !r.segments.isEmpty else { return nil }
        return Rendition(id: r.id, codec: AudioCodec(codecsString: r.codecString), sampleRate: r.sampleRate,
                         channelCount: r.channelCount, timescale: Int32(r.timescale),
                         addressing: .template(initialization: initSegment.path, media: "cmaf/$RepresentationID$/seg-$Number$.m4s"),
                         segments: r.segments.map { SegmentInfo(number: Int64($0.number), start: $0.start, duration: Int64($0.duration),
                                                                byteSize: Int64($0.byteSize)) })
    }
    for rendition in renditions {
        try MediaPlaylist.vod(rendition).render().write(toFile: "\(output)/\(rendition.id).m3u8", atomically: true, encoding: .utf8)
    }
    for set in SwitchingSet.partition(renditions) {
        let master = try MasterPlaylist.make(renditions: set.renditions) { "\($0.id).m3u8" }
        try master.render().write(toFile: "\(output)/master-\(set.id).m3u8", atomically: true, encoding: .utf8)
        print("HLS \(set.id): \(output)/master-\(set.id).m3u8 (\(set.renditions.map(\.id).joined(separator: ", ")))")
    }
    try MPD.vod(renditions: renditions).render().write(toFile: "\(output)/manifest.mpd", atomically: true, encoding: .utf8)
    print("DASH: \(output)/manifest.mpd")
} catch let error as MediaError {
    print("error: \(error.code): \(error.message)")
    exit(3)
} catch {
    print("error: \(error)")
    exit(1)
}
