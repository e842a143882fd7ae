import Foundation
import MediaCore
import Testing
import TestSupport

/// A fixture format: how ffmpeg makes it and what MediaCore must report.
struct FixtureFormat: Sendable, CustomTestStringConvertible {
    var file: String
    var encode: [String]
    var container: String
    var codec: String
    var bitDepth: Int?
    var testDescription: String { file }

    func path() throws -> String { try Fixtures.make(file, encode + Fixtures.tagArguments) }
}

let losslessFormats: [FixtureFormat] = [
    .init(file: "s16.wav", encode: ["-c:a", "pcm_s16le"], container: "wav", codec: "pcm_s16le", bitDepth: 16),
    .init(file: "s24.wav", encode: ["-c:a", "pcm_s24le"], container: "wav", codec: "pcm_s24le", bitDepth: 24),
    .init(file: "f32.wav", encode: ["-c:a", "pcm_f32le"], container: "wav", codec: "pcm_f32le", bitDepth: 32),
    .init(file: "rf64.wav", encode: ["-c:a", "pcm_s24le", "-rf64", "always"], container: "wav", codec: "pcm_s24le", bitDepth: 24),
    .init(file: "s16.flac", encode: ["-c:a", "flac", "-sample_fmt", "s16"], container: "flac", codec: "flac", bitDepth: 16),
    .init(file: "s24.flac", encode: ["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"], container: "flac", codec: "flac", bitDepth: 24),
    .init(file: "s16.aiff", encode: ["-c:a", "pcm_s16be", "-write_id3v2", "1"], container: "aiff", codec: "pcm_s16be", bitDepth: 16),
    .init(file: "s24.aiff", encode: ["-c:a", "pcm_s24be"], container: "aiff", codec: "pcm_s24be", bitDepth: 24),
    .init(file: "flac.oga", encode: ["-c:a", "flac", "-sample_fmt", "s16", "-f", "ogg"], container: "ogg", codec: "flac", bitDepth: 16),
]

let lossyFormats: [FixtureFormat] = [
    .init(file: "cbr.mp3", encode: ["-c:a", "libmp3lame", "-b:a", "192k"], container: "mp3", codec: "mp3"),
    .init(file: "vbr.mp3", encode: ["-c:a", "libmp3lame", "-q:a", "2"], container: "mp3", codec: "mp3"),
    .init(file: "aac.m4a", encode: ["-c:a", "aac", "-b:a", "128k"], container: "mp4", codec: "aac"),
    .init(file: "adts.aac", encode: ["-c:a", "aac", "-b:a", "128k", "-f", "adts", "-write_id3v2", "1"], container: "adts", codec: "aac"),
    .init(file: "vorbis.ogg", encode: ["-c:a", "libvorbis", "-q:a", "4"], container: "ogg", codec: "vorbis"),
    .init(file: "opus.opus", encode: ["-c:a", "libopus", "-b:a", "96k"], container: "ogg", codec: "opus"),
]

/// Index of the first sample where `a` and `b` differ by more than `tolerance`.
func firstMismatch(_ a: [Float], _ b: [Float], tolerance: Float) -> Int? {
    for i in 0..<min(a.count, b.count) where !(abs(a[i] - b[i]) <= tolerance) { return i }
    return nil
}

@Suite("Decoding against FFmpeg")
struct DecodeTests {
    @Test("lossless decodes equal FFmpeg's sample for sample", arguments: losslessFormats)
    func losslessEqualsFFmpeg(format: FixtureFormat) throws {
        let path = try format.path()
        let decoder = try AudioDecoder(path: path, options: .init(channelMode: .preserve))
        let ours = try decoder.readAll()
        let theirs = try Fixtures.ffmpegPCM(path)
        #expect(ours.samples.count == theirs.count)
        #expect(ours.samples.count == 3 * 44100 * 2)
        #expect(firstMismatch(ours.samples, theirs, tolerance: 0) == nil)
        #expect(decoder.report.corruptPackets == 0)
        #expect(decoder.report.truncated == false)
    }

    @Test("lossy decodes match FFmpeg's sample count and PCM within 1e-6", arguments: lossyFormats)
    func lossyMatchesFFmpeg(format: FixtureFormat) throws {
        let path = try format.path()
        let decoder = try AudioDecoder(path: path, options: .init(channelMode: .preserve))
        let ours = try decoder.readAll()
        let theirs = try Fixtures.ffmpegPCM(path)
        #expect(ours.samples.count == theirs.count)
        #expect(firstMismatch(ours.samples, theirs, tolerance: 1e-6) == nil)
        #expect(decoder.report.corruptPackets == 0)
    }

    @Test("probe reports container, codec, parameters and an exact length where the container has one",
          arguments: losslessFormats + lossyFormats)
    func probeParameters(format: FixtureFormat) throws {
        let path = try format.path()
        let probe = try MediaProbe.probe(fileAt: path)
        #expect(probe.container == format.container)
        #expect(probe.codec == format.codec)
        #expect(probe.sampleRate == (format.codec == "opus" ? 48000 : 44100))
        #expect(probe.channelCount == 2)
        #expect(probe.channelLayout == "stereo")
        #expect(probe.bitDepth == format.bitDepth)
        let decoder = try AudioDecoder(path: path, options: .init(channelMode: .preserve))
        let frames = try decoder.readAll().frameCount
        if probe.durationIsExact && format.container == "mp4" {
            // FFmpeg 5.1 trims MP4 priming exactly but the edit list's end only in whole
            // frames: the decode carries the last frame's padding (as `ffmpeg` does).
            let count = try #require(probe.sampleCount)
            #expect(Int64(frames) >= count && Int64(frames) < count + 1024)
        } else if probe.durationIsExact {
            #expect(probe.sampleCount == Int64(frames))
        } else {
            // An estimate: within 2 % of the truth.
            let estimate = try #require(probe.sampleCount)
            #expect(abs(Double(estimate) - Double(frames)) < 0.02 * Double(frames))
        }
        if format.bitDepth != nil || ["mp4", "ogg"].contains(format.container) || format.file == "vbr.mp3" || format.file == "cbr.mp3" {
            #expect(probe.durationIsExact, "the container states its length exactly")
        }
    }

    @Test("tags come back sanitised from every tag format", arguments: losslessFormats + lossyFormats)
    func tags(format: FixtureFormat) throws {
        let tags = try MediaProbe.probe(fileAt: try format.path()).tags
        #expect(tags.title == "Fixture Tone")
        if format.file == "s24.aiff" {
            // Native AIFF chunks: NAME and ANNO only (s16.aiff carries an ID3 chunk instead).
            #expect(tags.comment == "made by ffmpeg")
            return
        }
        #expect(tags.artist == "Veza Test")
        if format.container == "wav" {
            return  // RIFF INFO carries only some fields (below)
        }
        #expect(tags.album == "Test Album")
        #expect(tags.albumArtist == "Various")
        #expect(tags.trackNumber == 3)
        #expect(tags.trackTotal == 12)
        #expect(tags.discNumber == 1)
        #expect(tags.date?.hasPrefix("2024") == true)
        #expect(tags.genre == "Electronic")
        #expect(tags.comment == "made by ffmpeg")
    }

    @Test("RIFF INFO tags of a WAV file")
    func riffInfo() throws {
        let tags = try MediaProbe.probe(fileAt: try losslessFormats[0].path()).tags
        #expect(tags.album == "Test Album")
        #expect(tags.genre == "Electronic")
        #expect(tags.comment == "made by ffmpeg")
        #expect(tags.date == "2024")
    }

    @Test("downmix of 5.1 to stereo uses BS.775 coefficients")
    func downmix() throws {
        let path = try Fixtures.make("surround.wav", source: Fixtures.sourceArguments(seconds: 1, rate: 48000, channels: 6), ["-c:a", "pcm_f32le"])
        let surround = try AudioDecoder(path: path, options: .init(channelMode: .preserve))
        #expect(surround.probe.channelLayout == "5.1(side)")
        #expect(surround.channelCount == 6)
        let six = try surround.readAll().samples
        let stereo = try AudioDecoder(path: path).readAll()  // default: BS.775 to stereo
        #expect(stereo.channelCount == 2)
        #expect(stereo.frameCount == 48000)
        // FL FR FC LFE SL SR; normalised by 1 + 0.7071 + 0.7071.
        let c: Float = 0.70710677, n: Float = 1 + 2 * c
        for frame in stride(from: 0, to: 48000, by: 997) {
            let s = Array(six[frame * 6..<frame * 6 + 6])
            let left = (s[0] + c * s[2] + c * s[4]) / n
            let right = (s[1] + c * s[2] + c * s[5]) / n
            #expect(abs(stereo.samples[frame * 2] - left) < 1e-6)
            #expect(abs(stereo.samples[frame * 2 + 1] - right) < 1e-6)
        }
        let mono = try AudioDecoder(path: path, options: .init(channelMode: .mono(.bs775))).readAll()
        #expect(mono.channelCount == 1)
        for frame in stride(from: 0, to: 48000, by: 1231) {
            let expected = (stereo.samples[frame * 2] + stereo.samples[frame * 2 + 1]) / 2
            #expect(abs(mono.samples[frame] - expected) < 1e-6)
        }
    }

    @Test("blocks are contiguous, bounded and carry their start frame")
    func blocks() throws {
        let decoder = try AudioDecoder(path: try lossyFormats[0].path())
        var next: Int64 = 0
        var count = 0
        while let block = try decoder.read() {
            #expect(block.startFrame == next)
            #expect(block.frameCount <= 4608)
            next += Int64(block.frameCount)
            count += 1
        }
        #expect(count > 10)
        #expect(decoder.report.framesDecoded == next)
        #expect(try decoder.read() == nil)
    }

    @Test("a truncated FLAC yields its decodable prefix and says it was truncated")
    func truncated() throws {
        let path = try losslessFormats[4].path()
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = Fixtures.directory + "/cut-half.flac"
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: cut))
        let decoder = try AudioDecoder(path: cut, options: .init(channelMode: .preserve))
        let partial = try decoder.readAll()
        #expect(decoder.report.truncated)
        #expect(partial.frameCount > 44100 / 2)
        #expect(Int64(partial.frameCount) < decoder.report.expectedFrames!)
        let reference = try AudioDecoder(path: path, options: .init(channelMode: .preserve)).readAll()
        // Whole frames decoded before the cut equal the original.
        let compared = min(partial.samples.count, reference.samples.count) - 4096 * 2
        #expect(firstMismatch(Array(partial.samples.prefix(compared)), Array(reference.samples.prefix(compared)), tolerance: 0) == nil)
    }

    @Test("a truncated WAV says so: its data chunk declares more than the file holds")
    func truncatedWAV() throws {
        let path = try losslessFormats[0].path()
        let full = try Data(contentsOf: URL(fileURLWithPath: path))
        let cut = Fixtures.directory + "/cut-third.wav"
        try full.prefix(full.count / 3).write(to: URL(fileURLWithPath: cut))
        let decoder = try AudioDecoder(path: cut, options: .init(channelMode: .preserve))
        let partial = try decoder.readAll()
        #expect(decoder.report.truncated)
        #expect(abs(partial.frameCount - 44100) < 100)
        let whole = try AudioDecoder(path: path, options: .init(channelMode: .preserve))
        _ = try whole.readAll()
        #expect(whole.report.truncated == false)
    }

    @Test("cover art is found in ID3, MP4 and FLAC", arguments: ["mp3", "m4a", "flac"])
    func coverArt(ext: String) throws {
        let cover = try Fixtures.cover()
        let codec: [String] = ["mp3": ["-c:a", "libmp3lame"], "m4a": ["-c:a", "aac"], "flac": ["-c:a", "flac"]][ext]!
        let path = try Fixtures.make("cover.\(ext)", source: Fixtures.sourceArguments(seconds: 1) + ["-i", cover],
                                     ["-map", "0:a", "-map", "1:v"] + codec + ["-c:v", "png", "-disposition:v", "attached_pic"])
        let art = try #require(try MediaProbe.probe(fileAt: path).coverArt)
        #expect(art.mimeType == "image/png")
        #expect(art.width == 64 && art.height == 48)
        #expect(art.byteCount > 50)
        // The picture stream does not disturb decoding.
        #expect(try AudioDecoder(path: path).readAll().samples.count == (try Fixtures.ffmpegPCM(path)).count)
    }

    @Test("ISRC is read from ID3 TSRC, Vorbis comments and MP4")
    func isrc() throws {
        for (ext, encode) in [("mp3", ["-c:a", "libmp3lame", "-metadata", "TSRC=US-RC1-76-07839"]),
                              ("flac", ["-c:a", "flac", "-metadata", "ISRC=USRC17607839"]),
                              ("ogg", ["-c:a", "libvorbis", "-metadata", "ISRC=usrc17607839"])] {
            let path = try Fixtures.make("isrc.\(ext)", source: Fixtures.sourceArguments(seconds: 1), encode)
            #expect(try MediaProbe.probe(fileAt: path).tags.isrc == "USRC17607839", "\(ext)")
        }
    }
}
