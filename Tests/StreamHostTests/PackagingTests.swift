import Foundation
import MediaCore
import StreamHost
import Testing
import TestSupport

/// `streamhost package` on a 20-second track, once for the suite.
enum Packaged {
    static let seconds = 20.0
    static let result: Result<(source: String, out: String, manifest: TrackManifest), any Error> = Result {
        let source = try Fixtures.make("package-source.flac", source: Fixtures.sourceArguments(seconds: seconds),
                                       Fixtures.tagArguments + ["-c:a", "flac", "-sample_fmt", "s16"])
        let out = Fixtures.directory + "/packaged"
        try? FileManager.default.removeItem(atPath: out)
        let run = try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["package", source, "--out", out], timeLimit: 600)
        _ = run
        let manifest = try JSONDecoder().decode(TrackManifest.self, from: Data(contentsOf: URL(fileURLWithPath: out + "/manifest.json")))
        return (source, out, manifest)
    }

    static func get() throws -> (source: String, out: String, manifest: TrackManifest) { try result.get() }
}

/// Decodes `input` with ffmpeg; fails on any error message.
func ffmpegDecode(_ input: String, extra: [String] = []) throws -> [Float] {
    let out = Fixtures.directory + "/decode-\(UUID().uuidString).f32"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let result = try Subprocess.run("ffmpeg", ["-v", "error", "-i", input] + extra + ["-f", "f32le", "-"], stdoutPath: out)
    guard result.succeeded, result.stderr.isEmpty else {
        throw TestError.failed("ffmpeg reported problems decoding \(input): \(result.stderr.prefix(500))")
    }
    let data = try Data(contentsOf: URL(fileURLWithPath: out))
    return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

@Suite("streamhost package: the whole ladder offline", .serialized)
struct PackagingTests {
    @Test("every rendition of the default ladder is written and listed")
    func ladderComplete() throws {
        let (_, out, manifest) = try Packaged.get()
        #expect(manifest.renditions.map(\.id) == LadderRendition.defaultLadder.map(\.id))
        for rendition in manifest.renditions {
            if let initSegment = rendition.initSegment {
                #expect(FileManager.default.fileExists(atPath: out + "/" + initSegment))
                #expect(rendition.segments.count == 4, "\(rendition.id): 20 s in 6 s segments")
                for segment in rendition.segments {
                    let size = try FileManager.default.attributesOfItem(atPath: out + "/" + segment.path)[.size] as? Int
                    #expect(size == segment.byteSize)
                }
            }
            let progressive = try #require(rendition.progressive)
            #expect(FileManager.default.fileExists(atPath: out + "/" + progressive))
        }
        for file in ["master.m3u8", "manifest.mpd", "waveform.json", "waveform.dat", "aac-128.m3u8", "flac.m3u8"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file)")
        }
        #expect(manifest.renditions.first { $0.id == "mp3-320" }?.initSegment == nil)
    }

    @Test("segment boundaries are identical across the renditions of a codec group")
    func alignedSegments() throws {
        let manifest = try Packaged.get().manifest
        for codec in ["aac", "opus"] {
            let group = manifest.renditions.filter { $0.codec == codec }
            #expect(group.count == 3)
            let boundaries = group.map { $0.segments.map { [$0.start, Int64($0.duration)] } }
            #expect(Set(boundaries).count == 1, "\(codec) renditions disagree on segment boundaries")
        }
    }

    @Test("the normalised renditions were made at −14 LUFS with true peak under −1 dBTP")
    func loudness() throws {
        let manifest = try Packaged.get().manifest
        #expect(abs(manifest.normalizedLoudness.integratedLoudness - -14) <= 0.5)
        #expect(manifest.normalizedLoudness.truePeak <= -0.9)
        #expect(abs(manifest.gainDB - (-14 - manifest.loudness.integratedLoudness)) < 0.01)
    }

    @Test("ffmpeg decodes the HLS master, every media playlist and the MPD without an error",
          arguments: ["master.m3u8", "aac-256.m3u8", "aac-64.m3u8", "opus-96.m3u8", "flac.m3u8", "manifest.mpd"])
    func manifestsDecode(file: String) throws {
        let out = try Packaged.get().out
        let pcm = try ffmpegDecode(out + "/" + file, extra: ["-ac", "2"])
        let rate = file.hasPrefix("flac") ? 44100.0 : 48000.0
        let seconds = Double(pcm.count / 2) / rate
        // Fragmented MP4 priming is not trimmed by FFmpeg 5.1 (MEDIA-NOTES): allow one frame each side.
        #expect(abs(seconds - Packaged.seconds) < 0.05, "\(file) decodes to \(seconds) s")
    }

    @Test("the FLAC rendition is bit-exact, in CMAF and progressive")
    func flacExact() throws {
        let (source, out, _) = try Packaged.get()
        let original = try Fixtures.ffmpegPCM(source)
        #expect(try ffmpegDecode(out + "/progressive/flac.flac") == original)
        let cmaf = try ffmpegDecode(out + "/flac.m3u8")
        #expect(cmaf == original)
    }

    @Test("progressive files decode gaplessly to the source length", arguments: ["opus-96.opus", "mp3-320.mp3", "aac-128.m4a"])
    func progressiveLength(file: String) throws {
        let out = try Packaged.get().out
        let frames = try ffmpegDecode(out + "/progressive/" + file).count / 2
        let expected = Int(Packaged.seconds * 48000)
        if file.hasSuffix(".m4a") {
            // FFmpeg applies an MP4 edit list's end only in whole frames (MEDIA-NOTES).
            #expect(frames >= expected && frames < expected + 1024)
        } else {
            #expect(frames == expected)
        }
        let probe = try MediaProbe.probe(fileAt: out + "/progressive/" + file)
        #expect(probe.tags.title == "Fixture Tone")
    }
}
