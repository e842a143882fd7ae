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

    @Test("CMAF init segments signal priming and exact length; tfdt and trun sums agree")
    func cmafTiming() throws {
        let (_, out, manifest) = try Packaged.get()
        for rendition in manifest.renditions {
            guard let initSegment = rendition.initSegment else { continue }
            let sourceFrames = UInt64(Packaged.seconds * Double(rendition.sampleRate))
            let moov = try #require(try mp4Root(out + "/" + initSegment).find(["moov"]))
            let edit = try singleEdit(try #require(moov.find(["trak", "edts", "elst"]), "\(rendition.id): no edit list"))
            let mvhdTimescale = moov.find(["mvhd"]).map { $0.version == 1 ? $0.u32(at: 20) : $0.u32(at: 12) }
            #expect(mvhdTimescale == UInt32(rendition.sampleRate), "\(rendition.id): movie timescale must express samples")
            #expect(edit.duration == sourceFrames, "\(rendition.id): edit duration \(edit.duration)")
            let expectedPriming: Int64 = switch rendition.codec {
            case "aac": 1024
            case "opus": 312
            default: 0
            }
            #expect(edit.mediaTime == expectedPriming, "\(rendition.id): edit media_time \(edit.mediaTime)")

            var decodeTime: UInt64 = 0
            var frame: UInt64 = 0
            for (index, segment) in rendition.segments.enumerated() {
                let timing = try fragmentTiming(try mp4Root(out + "/" + segment.path))
                #expect(timing.decodeTime == decodeTime, "\(rendition.id) segment \(index + 1): tfdt")
                #expect(UInt64(segment.start) == decodeTime)
                let duration = timing.durations.reduce(UInt64(0)) { $0 + UInt64($1) }
                #expect(duration == UInt64(segment.duration))
                frame = UInt64(timing.durations.first ?? 0)
                if index < rendition.segments.count - 1 {
                    let target = 6 * UInt64(rendition.sampleRate)
                    #expect(max(duration, target) - min(duration, target) <= frame, "\(rendition.id) segment \(index + 1): \(duration) vs \(target)")
                }
                decodeTime += duration
            }
            // The media holds priming + source + padding inside the last frame, no more.
            let trailing = Int64(decodeTime) - Int64(sourceFrames) - expectedPriming
            #expect(trailing >= 0 && trailing < Int64(max(frame, 1)), "\(rendition.id): \(trailing) samples past the source")
        }
    }

    @Test("ffmpeg decodes each CMAF rendition (init + segments) to priming + source + under one frame")
    func cmafDecodeLength() throws {
        let (_, out, manifest) = try Packaged.get()
        for rendition in manifest.renditions {
            guard let initSegment = rendition.initSegment else { continue }
            let joined = Fixtures.directory + "/joined-\(rendition.id).mp4"
            var bytes = try Data(contentsOf: URL(fileURLWithPath: out + "/" + initSegment))
            for segment in rendition.segments { bytes += try Data(contentsOf: URL(fileURLWithPath: out + "/" + segment.path)) }
            try bytes.write(to: URL(fileURLWithPath: joined))
            let frames = try ffmpegDecode(joined).count / rendition.channelCount
            let source = Int(Packaged.seconds * Double(rendition.sampleRate))
            let (priming, frame) = switch rendition.codec {
            case "aac": (1024, 1024)
            case "opus": (312, 960)
            default: (0, 1)
            }
            // FFmpeg 5.1 ignores edit lists in fragmented MP4 (MEDIA-NOTES); with Opus it
            // honours the pre-skip from dOps instead.
            let low = rendition.codec == "opus" ? source : source + priming
            #expect(frames >= low && frames < source + priming + frame, "\(rendition.id): \(frames) frames")
        }
    }

    @Test(".m4a signals priming sample-exactly (edit list, iTunSMPB)", arguments: ["aac-256", "aac-64"])
    func m4aSignalling(id: String) throws {
        let out = try Packaged.get().out
        let root = try mp4Root(out + "/progressive/\(id).m4a")
        let moov = try #require(root.find(["moov"]))
        let edit = try singleEdit(try #require(moov.find(["trak", "edts", "elst"])))
        #expect(moov.find(["mvhd"])?.u32(at: 12) == 48000)
        #expect(edit.mediaTime == 1024)
        #expect(edit.duration == UInt64(Packaged.seconds * 48000))
        let ilst = try #require(moov.find(["udta", "meta", "ilst"]))
        let smpb = try #require(ilst.all("----").first { box in
            box.all("name").first.map { String(decoding: $0.body.dropFirst(4), as: UTF8.self) } == "iTunSMPB"
        })
        let data = try #require(smpb.find(["data"]))
        let fields = String(decoding: data.body.dropFirst(8), as: UTF8.self).split(separator: " ").map { UInt64($0, radix: 16) }
        #expect(fields.count == 12)
        #expect(fields[1] == 1024)
        #expect(fields[3] == UInt64(Packaged.seconds * 48000))
        let mediaFrames = (fields[1] ?? 0) + (fields[2] ?? 0) + (fields[3] ?? 0)
        #expect(mediaFrames % 1024 == 0, "priming + padding + valid must be whole AAC frames")
    }

    @Test("ffprobe reads every output without a warning")
    func ffprobeClean() throws {
        let (_, out, manifest) = try Packaged.get()
        var files = ["master.m3u8", "manifest.mpd"]
        for rendition in manifest.renditions {
            if let progressive = rendition.progressive { files.append(progressive) }
            if rendition.initSegment != nil { files.append(rendition.id + ".m3u8") }
        }
        for file in files {
            let result = try Subprocess.run("ffprobe", ["-v", "warning", "-show_streams", "-count_packets", out + "/" + file])
            #expect(result.succeeded && result.stderr.isEmpty, "\(file): \(result.stderr.prefix(400))")
        }
    }

    @Test("each rendition correlates with the normalised, resampled source: level within 0.5 dB, no clipping")
    func renditionFidelity() throws {
        let (source, out, manifest) = try Packaged.get()
        for rendition in manifest.renditions {
            let progressive = try #require(rendition.progressive)
            let lossless = rendition.codec == "flac"
            // Reference made independently by FFmpeg: the manifest's gain, then soxr.
            var filters = ["aresample=\(rendition.sampleRate):resampler=soxr:precision=28"]
            if !lossless { filters.insert("volume=\(manifest.gainDB)dB", at: 0) }
            let reference = try Fixtures.ffmpegPCM(source, extra: ["-af", filters.joined(separator: ","), "-ac", "2"])
            let decoded = try ffmpegDecode(out + "/" + progressive, extra: ["-ac", "2"])
            let count = min(reference.count, decoded.count)
            #expect(count >= reference.count - 2)
            var dot = 0.0, energyA = 0.0, energyB = 0.0
            var peak: Float = 0
            for i in 0..<count {
                dot += Double(reference[i]) * Double(decoded[i])
                energyA += Double(reference[i]) * Double(reference[i])
                energyB += Double(decoded[i]) * Double(decoded[i])
                peak = max(peak, abs(decoded[i]))
            }
            let correlation = dot / (energyA * energyB).squareRoot()
            let levelDB = 10 * log10(energyB / energyA)
            // Measured on this fixture (tones + 0.05 uniform noise, 2026-11-30): flac 1.0,
            // aac-256/128 0.99946, opus-160 > 0.9995, mp3-320 > 0.9995, aac-64 0.99858,
            // opus-96 0.99843, opus-48 0.99599. Exact alignment is checked by the length tests.
            let bitrate = Int(rendition.id.split(separator: "-").last ?? "") ?? 0
            let floor = rendition.codec == "flac" ? 0.999999 : bitrate >= 128 ? 0.999 : 0.99
            #expect(correlation > floor, "\(rendition.id): correlation \(correlation)")
            #expect(abs(levelDB) <= 0.5, "\(rendition.id): level \(levelDB) dB")
            #expect(peak <= 1.0, "\(rendition.id): peak \(peak)")
        }
    }
}
