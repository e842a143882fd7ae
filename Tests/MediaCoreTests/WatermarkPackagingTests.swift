import Foundation
import MediaCore
import StreamKit
import Synchronization
import Testing
import TestSupport

/// Keeps every file a packaging run writes.
private final class Files: PackageSink {
    let files = Mutex<[String: [UInt8]]>([:])
    func write(_ bytes: [UInt8], to relativePath: String) async throws(MediaError) { files.withLock { $0[relativePath] = bytes } }
}

/// The ladder's A/B packaging (issue 23): both variants of each segment, aligned across codecs,
/// read back by the detector through the real encoders and ffmpeg's decoder.
@Suite("Watermarked ladder packaging", .serialized)
struct WatermarkPackagingTests {
    /// 100 s of real music (from 30 s into the first long enough track), as FLAC.
    static func music() throws -> String {
        let directory = "/usr/share/games/singularity/music"
        let tracks = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".ogg") }.sorted()
        let track = try #require(tracks.first { WatermarkRobustnessTests.duration(directory + "/" + $0) >= 150 }, "singularity-music is installed")
        return try Fixtures.make("watermark-music-100.flac", source: ["-ss", "30", "-t", "100", "-i", directory + "/" + track], ["-c:a", "flac"])
    }

    @Test("a watermarked ladder refuses renditions that would be unwatermarked copies (progressive files, FLAC, MP3)")
    func refusesUnmarkedOutputs() async throws {
        let source = try Fixtures.make("watermark-refuse-3.flac", source: Fixtures.sourceArguments(seconds: 3), ["-c:a", "flac"])
        for ladder in ["aac-128", "opus-96,flac", "mp3-128"] {
            var configuration = LadderConfiguration()
            configuration.renditions = try LadderRendition.parse(ladder)
            configuration.watermark = WatermarkPackaging(key: .random())
            await #expect(throws: MediaError.self, "\(ladder)") {
                _ = try await LadderPackager.package(source: source, configuration: configuration, sink: Files())
            }
        }
    }

    @Test("AAC and Opus renditions are packaged in two variants with keyed paths, one init segment, 1.92-s segments ending at the same instants in both codecs; a session's splice of real segments decodes (ffmpeg) and reads back its bits")
    func variantsReadBack() async throws {
        let source = try Self.music()
        let key = WatermarkKey.random()
        var configuration = LadderConfiguration()
        configuration.renditions = try LadderRendition.parse("aac-128,opus-96")
        configuration.renditions = configuration.renditions.map { var r = $0; r.outputs = .cmaf; return r }
        let packaging = WatermarkPackaging(key: key)
        configuration.watermark = packaging
        let sink = Files()
        let report = try await LadderPackager.package(source: source, configuration: configuration, sink: sink)
        let files = sink.files.withLock { $0 }
        #expect(report.renditions.map(\.id) == ["aac-128", "opus-96"])
        var layouts: [[Int64]] = []
        for rendition in report.renditions {
            #expect(rendition.progressive == nil)
            #expect(rendition.segments.count == rendition.variantSegments.count && rendition.segments.count >= 52, "\(rendition.id)")
            #expect(rendition.initSegment?.path == "cmaf/\(rendition.id)/init.mp4")
            #expect(files["cmaf/\(rendition.id)/init.mp4"] != nil)
            for (a, b) in zip(rendition.segments, rendition.variantSegments) {
                #expect(a.number == b.number && a.start == b.start && a.duration == b.duration)
                #expect(a.path == packaging.segmentPath(rendition: rendition.id, number: a.number, variant: .a))
                #expect(b.path == packaging.segmentPath(rendition: rendition.id, number: b.number, variant: .b))
                #expect(a.path != b.path && files[a.path] != nil && files[b.path] != nil)
                #expect(files[a.path] != files[b.path], "the variants differ")
            }
            // 90 AAC frames = 96 Opus packets = 92,160 samples at 48 kHz.
            #expect(rendition.segments.dropLast().allSatisfy { $0.duration == 92_160 }, "\(rendition.id)")
            #expect(rendition.priming == (rendition.codec == .aac ? 1024 : 312), "\(rendition.id) \(rendition.priming)")
            layouts.append(rendition.segments.map(\.start))
        }
        #expect(layouts[0] == layouts[1], "segments start at the same decode times in both codecs")
        #expect(!files.keys.contains { $0.hasSuffix("/seg-1.m4s") }, "no unwatermarked segment name")
        // Another key tags other paths: a variant's URI cannot be guessed without the key.
        #expect(WatermarkPackaging(key: .random()).segmentPath(rendition: "aac-128", number: 1, variant: .a) != report.renditions[0].segments[0].path)

        // A session's splice, as a player fetches it: init + its variant of each segment.
        let reference = try LadderPackager.watermarkReference(source: source, configuration: configuration)
        let codeKey = (0..<32).map { UInt8($0) }
        let bits = WatermarkSessionCode(key: codeKey, session: "leaker").bits(count: report.renditions[0].segments.count)
        var generator = SplitMix64(seed: 23)
        let others = (0..<999).map { _ in String(generator.next(), radix: 36) }
        for rendition in report.renditions {
            var bytes = files[rendition.initSegment!.path]!
            for (index, segment) in rendition.segments.enumerated() {
                bytes += files[(bits[index] ? rendition.variantSegments[index] : segment).path]!
            }
            let path = Fixtures.directory + "/watermark-splice-\(rendition.id)-\(UUID().uuidString).mp4"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let recording = try Fixtures.ffmpegPCM(path, extra: ["-ar", "48000", "-ac", "1"])
            let boundaries = rendition.segments.map { max(0, Int($0.start) - rendition.priming) }
                + [Int(rendition.segments.last!.start) + rendition.segments.last!.duration - rendition.priming]
            let placements = try WatermarkDetector.readings(recording: recording, reference: reference, key: key, segmentBoundaries: boundaries)
            // FFmpeg 5.1 keeps AAC's priming when it decodes fragmented MP4 (it ignores the edit
            // list there): the recording then starts `priming` samples early.
            let placed = try #require(placements.first { abs($0.offset) <= 2 || abs($0.offset + rendition.priming) <= 2 },
                                      "\(rendition.id) placed at \(placements.map(\.offset))")
            let wrong = placed.segments.filter { ($0.variant == .b) != bits[$0.index] }.count
            #expect(placed.segments.count >= bits.count - 1 && wrong == 0, "\(rendition.id): \(wrong) of \(placed.segments.count) segments read wrong")
            // The music repeats itself: every placement is weighed, as the host's detector does.
            let verdicts = WatermarkAccusation.rank(placements: placements.map { $0.segments.map { (segment: $0.index, value: $0.value) } },
                                                    candidates: ["leaker"] + others, key: codeKey, population: 1_000_000)
            #expect(verdicts.first?.session == "leaker" && verdicts.first?.accused == true && verdicts.filter(\.accused).count == 1,
                    "\(rendition.id): \(verdicts.prefix(2))")
        }
    }
}
