import Foundation
import Testing
@testable import StreamKit

/// ffmpeg reads StreamKit's HLS and DASH manifests over real CMAF segments (made by ffmpeg's own
/// HLS muxer) and decodes them. Fails, never skips, when ffmpeg is missing.
@Suite(.serialized) struct FFmpegIntegrationTests {
    static let sourceSeconds = 20.0
    static let sampleRate = 48_000

    struct Fixture {
        var directory: URL
        var renditions: [Rendition]
    }

    static func requireTools() throws -> (ffmpeg: String, ffprobe: String) {
        let ffmpeg = try #require(Tool.find("ffmpeg"), "ffmpeg is required for the integration test (apt-get install ffmpeg)")
        let ffprobe = try #require(Tool.find("ffprobe"), "ffprobe is required for the integration test (apt-get install ffmpeg)")
        return (ffmpeg, ffprobe)
    }

    /// Encodes a 20 s sine at two AAC bit rates into CMAF segments and builds StreamKit's model from
    /// ffmpeg's own playlist (parsed by StreamKit's strict parser) and the real file sizes.
    static func makeFixture(_ ffmpeg: String) throws -> Fixture {
        let directory = try Tool.temporaryDirectory("ffmpeg")
        var renditions: [Rendition] = []
        for kbps in [128, 64] {
            let id = "aac-\(kbps)"
            let folder = directory.appendingPathComponent(id)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let result = try Tool.run(ffmpeg, [
                "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=\(Int(sourceSeconds)):sample_rate=\(sampleRate)",
                "-ac", "2", "-c:a", "aac", "-b:a", "\(kbps)k", "-f", "hls", "-hls_time", "4", "-hls_segment_type", "fmp4",
                "-hls_playlist_type", "vod", "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", "seg-%d.m4s", "ffmpeg.m3u8",
            ], in: folder)
            #expect(result.status == 0, "ffmpeg encode: \(result.stderr)")
            let own = try HLSParser().parseMedia(String(contentsOf: folder.appendingPathComponent("ffmpeg.m3u8"), encoding: .utf8))
            var start: Int64 = 0
            var segments: [SegmentInfo] = []
            for (index, segment) in own.segments.enumerated() {
                // EXTINF has 6 decimals; AAC durations are whole 1024-sample frames.
                let frames = (segment.duration.converted(to: Int32(sampleRate)).value + 512) / 1024
                let duration = frames * 1024
                let size = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(segment.uri).path)[.size] as! Int
                segments.append(SegmentInfo(number: own.mediaSequence + Int64(index), start: start, duration: duration, byteSize: Int64(size)))
                start += duration
            }
            renditions.append(Rendition(id: id, codec: .aacLC, sampleRate: sampleRate, channelCount: 2, timescale: Int32(sampleRate),
                                        addressing: .template(initialization: "$RepresentationID$/init.mp4", media: "$RepresentationID$/seg-$Number$.m4s"),
                                        segments: segments))
        }
        return Fixture(directory: directory, renditions: renditions)
    }

    /// Decodes the first audio stream of `input` to mono float and returns (seconds decoded, stderr).
    static func decode(_ ffmpeg: String, _ input: String, in directory: URL) throws -> (seconds: Double, status: Int32, stderr: String) {
        let output = directory.appendingPathComponent("decoded-\(UUID().uuidString).f32")
        let result = try Tool.run(ffmpeg, ["-v", "error", "-y", "-allowed_extensions", "ALL", "-i", input, "-map", "0:a:0",
                                           "-f", "f32le", "-ac", "1", "-ar", "\(sampleRate)", output.path], in: directory)
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output.path)[.size] as? Int) ?? 0
        return (Double(bytes / 4) / Double(sampleRate), result.status, result.stderr)
    }

    static func expectClean(_ name: String, _ decoded: (seconds: Double, status: Int32, stderr: String), expected: Double) {
        #expect(decoded.status == 0, "\(name): exit \(decoded.status): \(decoded.stderr)")
        #expect(!decoded.stderr.localizedCaseInsensitiveContains("error"), "\(name): \(decoded.stderr)")
        #expect(!decoded.stderr.contains("Failed to open segment"), "\(name): \(decoded.stderr)")
        #expect(abs(decoded.seconds - expected) <= 0.050, "\(name): decoded \(decoded.seconds) s, expected \(expected) s")
    }

    @Test func ffmpegPlaysStreamKitManifests() throws {
        let (ffmpeg, ffprobe) = try Self.requireTools()
        let fixture = try Self.makeFixture(ffmpeg)
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let directory = fixture.directory
        let renditions = fixture.renditions
        #expect(renditions.allSatisfy { $0.segments.count == 6 })

        // HLS: master (with audio groups) + media playlists, and a master without groups.
        for rendition in renditions {
            let text = try MediaPlaylist.vod(rendition).render()
            #expect(try HLSParser().parseMedia(text).segments.count == rendition.segments.count)
            try text.write(to: directory.appendingPathComponent("\(rendition.id).m3u8"), atomically: true, encoding: .utf8)
        }
        let master = try MasterPlaylist.make(renditions: renditions, style: .audioGroups) { "\($0.id).m3u8" }
        try master.render().write(to: directory.appendingPathComponent("master.m3u8"), atomically: true, encoding: .utf8)
        let plain = try MasterPlaylist.make(renditions: renditions, style: .streamInfOnly, firstVariantID: "aac-64") { "\($0.id).m3u8" }
        try plain.render().write(to: directory.appendingPathComponent("plain.m3u8"), atomically: true, encoding: .utf8)

        // The exact duration StreamKit announces (whole AAC frames, including the priming frame ffmpeg leaves in).
        let announced = renditions[0].totalDuration.seconds
        #expect(abs(announced - Self.sourceSeconds) < 0.1)
        Self.expectClean("master.m3u8", try Self.decode(ffmpeg, "master.m3u8", in: directory), expected: announced)
        Self.expectClean("plain.m3u8", try Self.decode(ffmpeg, "plain.m3u8", in: directory), expected: announced)
        Self.expectClean("aac-64.m3u8", try Self.decode(ffmpeg, "aac-64.m3u8", in: directory), expected: announced)
        // ffprobe sees both variants of the master with their BANDWIDTH.
        let probe = try Tool.run(ffprobe, ["-v", "error", "-show_entries", "program_tags=variant_bitrate", "-of", "csv=p=0", "master.m3u8"], in: directory)
        #expect(probe.status == 0, "\(probe.stderr)")
        let announcedRates = Set(master.variants.map { String($0.bandwidth.bitsPerSecond) })
        let probedRates = Set(probe.stdout.split(separator: "\n").map { String($0.trimmingCharacters(in: CharacterSet(charactersIn: ", "))) })
        #expect(probedRates == announcedRates, "\(probe.stdout)")

        // HLS with byte ranges into one file per rendition (init + segments concatenated).
        let source = renditions[0]
        let folder = directory.appendingPathComponent(source.id)
        var single = try Data(contentsOf: folder.appendingPathComponent("init.mp4"))
        let initSize = Int64(single.count)
        for segment in source.segments {
            single += try Data(contentsOf: folder.appendingPathComponent("seg-\(segment.number).m4s"))
        }
        try single.write(to: directory.appendingPathComponent("single.mp4"))
        var byteRanged = source
        byteRanged.id = "single"
        byteRanged.addressing = .singleFile(uri: "single.mp4", initializationByteSize: initSize)
        let byteRangeText = try MediaPlaylist.vod(byteRanged).render()
        #expect(byteRangeText.contains("#EXT-X-BYTERANGE:"))
        try byteRangeText.write(to: directory.appendingPathComponent("single.m3u8"), atomically: true, encoding: .utf8)
        Self.expectClean("single.m3u8", try Self.decode(ffmpeg, "single.m3u8", in: directory), expected: announced)

        // DASH: static MPD with SegmentTemplate + SegmentTimeline over the same CMAF segments.
        let mpd = try MPD.vod(renditions: renditions)
        try mpd.render().write(to: directory.appendingPathComponent("manifest.mpd"), atomically: true, encoding: .utf8)
        Self.expectClean("manifest.mpd", try Self.decode(ffmpeg, "manifest.mpd", in: directory), expected: announced)
        let dashProbe = try Tool.run(ffprobe, ["-v", "error", "-show_entries", "stream=codec_name,sample_rate,channels", "-of", "csv=p=0", "manifest.mpd"], in: directory)
        #expect(dashProbe.status == 0, "\(dashProbe.stderr)")
        // Each representation is listed once per program it belongs to: two distinct AAC streams.
        let probedStreams = dashProbe.stdout.split(separator: "\n").map(String.init)
        #expect(probedStreams.count >= 2 && Set(probedStreams) == ["aac,48000,2"], "\(dashProbe.stdout)")
    }

    /// A playlist pointing at segments that do not exist must fail the same checks the positive test
    /// uses (guards against checks that cannot fail).
    @Test func ffmpegRejectsABrokenManifest() throws {
        let (ffmpeg, _) = try Self.requireTools()
        let directory = try Tool.temporaryDirectory("ffmpeg-broken")
        defer { try? FileManager.default.removeItem(at: directory) }
        let playlist = MediaPlaylist(targetDuration: 4, playlistType: .vod, segments: [
            MediaSegment(uri: "missing.m4s", duration: .seconds(4), map: MediaInitialization(uri: "missing-init.mp4")),
        ], endList: true)
        try playlist.render().write(to: directory.appendingPathComponent("broken.m3u8"), atomically: true, encoding: .utf8)
        let decoded = try Self.decode(ffmpeg, "broken.m3u8", in: directory)
        let clean = decoded.status == 0 && !decoded.stderr.localizedCaseInsensitiveContains("error")
            && !decoded.stderr.contains("Failed to open segment") && abs(decoded.seconds - 4) <= 0.05
        #expect(!clean, "a broken playlist passed the checks: \(decoded)")
    }
}
