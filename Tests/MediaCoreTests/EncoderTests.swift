import Foundation
import MediaCore
import Testing
import TestSupport

/// Encodes `pcm` in uneven blocks (to exercise buffering) and finishes.
func encodeAll(_ encoder: any AudioEncoder, _ pcm: PCMBuffer) throws -> [EncodedPacket] {
    var packets: [EncodedPacket] = []
    var start = 0
    var size = 1000
    while start < pcm.samples.count {
        let end = min(pcm.samples.count, start + size * pcm.channelCount)
        packets += try encoder.encode(Array(pcm.samples[start..<end]))
        start = end
        size = size == 1000 ? 4097 : 1000
    }
    return packets + (try encoder.finish())
}

/// Signal-to-noise ratio of `decoded` against `reference`, dB.
func snr(_ reference: [Float], _ decoded: [Float]) -> Double {
    var signal = 0.0, noise = 0.0
    for i in 0..<min(reference.count, decoded.count) {
        signal += Double(reference[i] * reference[i])
        let d = Double(reference[i] - decoded[i])
        noise += d * d
    }
    return 10 * log10(signal / max(noise, 1e-30))
}

func write(_ bytes: [UInt8], _ name: String) throws -> String {
    let path = Fixtures.directory + "/" + name
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

let sampleMetadata: ProgressiveMetadata = {
    var tags = Tags()
    tags.title = "Encoded Tone"
    tags.artist = "Veza Test"
    tags.album = "Encoders"
    tags.trackNumber = 2
    tags.trackTotal = 9
    tags.isrc = "USRC17607839"
    return ProgressiveMetadata(tags: tags, integratedLoudness: -20, truePeak: 0.5)
}()

@Suite("Encoders and progressive files")
struct EncoderTests {
    @Test("FLAC is bit-exact at the source depth, with tags, seek table and STREAMINFO MD5", arguments: [16, 24])
    func flacLossless(bits: Int) throws {
        let source = try Fixtures.make("enc-\(bits).flac", ["-c:a", "flac", "-sample_fmt", bits == 16 ? "s16" : "s32", "-bits_per_raw_sample", "\(bits)"])
        let pcm = try AudioDecoder(path: source, options: .init(channelMode: .preserve)).readAll()
        let encoder = try FLACEncoder(sampleRate: 44100, channelCount: 2, bitsPerSample: bits)
        let packets = try encodeAll(encoder, pcm)
        #expect(packets.reduce(0) { $0 + $1.duration } == pcm.frameCount)
        let info = encoder.format.codecConfiguration
        #expect(info.count == 34)
        #expect(info[18...].contains { $0 != 0 }, "STREAMINFO carries the MD5")
        let path = try write(FLACFileWriter.file(streamInfo: info, sampleRate: 44100, packets: packets, metadata: sampleMetadata), "out-\(bits).flac")
        #expect(try Fixtures.ffmpegPCM(path) == Fixtures.ffmpegPCM(source))
        let probe = try MediaProbe.probe(fileAt: path)
        #expect(probe.bitDepth == bits)
        #expect(probe.durationIsExact && probe.sampleCount == Int64(pcm.frameCount))
        #expect(probe.tags.title == "Encoded Tone" && probe.tags.trackTotal == 9 && probe.tags.isrc == "USRC17607839")
        let replayGain = try Subprocess.check("ffprobe", ["-v", "error", "-show_entries", "format_tags=REPLAYGAIN_TRACK_GAIN", "-of", "default=nw=1:nk=1", path])
        #expect(String(decoding: replayGain.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "2.00 dB")
    }

    @Test("Opus in Ogg decodes to exactly the source length (pre-skip and end granule)")
    func opusGapless() throws {
        let source = try Fixtures.make("enc-48k.wav", source: Fixtures.sourceArguments(seconds: 3.3, rate: 48000), ["-c:a", "pcm_f32le"])
        let pcm = try AudioDecoder(path: source, options: .init(channelMode: .preserve)).readAll()
        let encoder = try OpusEncoder(sampleRate: 48000, channelCount: 2, bitrate: .kbps(160))
        let packets = try encodeAll(encoder, pcm)
        #expect(encoder.format.priming == 312)
        let file = OggOpusWriter.file(packets: packets, channelCount: 2, preSkip: encoder.format.priming, inputSampleRate: 48000,
                                      sourceFrameCount: Int64(pcm.frameCount), metadata: sampleMetadata)
        let path = try write(file, "out.opus")
        let decoded = try Fixtures.ffmpegPCM(path)
        #expect(decoded.count == pcm.samples.count, "ffmpeg decodes \(decoded.count / 2) frames for \(pcm.frameCount)")
        #expect(snr(pcm.samples, decoded) > 15, "SNR \(snr(pcm.samples, decoded)) dB: the decode is aligned with the source")
        let ours = try AudioDecoder(path: path, options: .init(channelMode: .preserve)).readAll()
        #expect(ours.frameCount == pcm.frameCount)
        let tags = try Subprocess.check("ffprobe", ["-v", "error", "-show_entries", "stream_tags=R128_TRACK_GAIN,title", "-of", "default=nw=1", path])
        let text = String(decoding: tags.stdout, as: UTF8.self).lowercased()
        #expect(text.contains("r128_track_gain=-768"))  // (−23 − (−20)) × 256
        #expect(text.contains("title=encoded tone"))
    }

    @Test("MP3 with a LAME tag decodes gaplessly to the source length", arguments: [EncoderSettings.mp3CBR(bitrate: .kbps(320)), .mp3VBR(quality: 2)])
    func mp3Gapless(settings: EncoderSettings) throws {
        let source = try losslessFormats[0].path()
        let pcm = try AudioDecoder(path: source, options: .init(channelMode: .preserve)).readAll()
        let encoder = try makeEncoder(settings, sampleRate: 44100, channelCount: 2)
        let packets = try encodeAll(encoder, pcm)
        var metadata = sampleMetadata
        metadata.cover = (Array(try Data(contentsOf: URL(fileURLWithPath: try Fixtures.cover()))), "image/png")
        let path = try write(MP3FileWriter.file(packets: packets, lameTag: encoder.format.codecConfiguration, metadata: metadata), "out-\(UUID().uuidString.prefix(8)).mp3")
        let decoded = try Fixtures.ffmpegPCM(path)
        #expect(decoded.count == pcm.samples.count, "ffmpeg decodes \(decoded.count / 2) frames for \(pcm.frameCount)")
        #expect(snr(pcm.samples, decoded) > 15, "SNR \(snr(pcm.samples, decoded)) dB")
        let probe = try MediaProbe.probe(fileAt: path)
        #expect(probe.durationIsExact && probe.sampleCount == Int64(pcm.frameCount))
        #expect(probe.tags.title == "Encoded Tone" && probe.tags.trackNumber == 2 && probe.tags.isrc == "USRC17607839")
        #expect(probe.coverArt?.mimeType == "image/png")
    }

    @Test("AAC packets decode (ADTS-wrapped) with the stated priming")
    func aac() throws {
        let pcm = try AudioDecoder(path: try losslessFormats[0].path(), options: .init(channelMode: .preserve)).readAll()
        let encoder = try AACEncoder(sampleRate: 44100, channelCount: 2, bitrate: .kbps(192))
        let packets = try encodeAll(encoder, pcm)
        #expect(encoder.format.priming == 1024)
        #expect(encoder.format.codecConfiguration.starts(with: [0x12, 0x10]))  // AAC-LC, 44.1 kHz, stereo
        #expect(packets.allSatisfy { $0.duration == 1024 })
        let total = packets.count * 1024
        #expect(total >= pcm.frameCount + 1024 && total < pcm.frameCount + 1024 + 2048)
        // ADTS: 7-byte headers (profile LC, rate index 4, 2 channels).
        var adts: [UInt8] = []
        for p in packets {
            let length = p.data.count + 7
            adts += [0xFF, 0xF1, 0x50, 0x80 | UInt8((length >> 11) & 0x03), UInt8((length >> 3) & 0xFF), UInt8((length & 0x07) << 5) | 0x1F, 0xFC]
            adts += p.data
        }
        let decoded = try Fixtures.ffmpegPCM(try write(adts, "out.aac"))
        #expect(decoded.count == total * 2)
        let aligned = Array(decoded.dropFirst(1024 * 2).prefix(pcm.samples.count))
        #expect(snr(pcm.samples, aligned) > 15, "SNR \(snr(pcm.samples, aligned)) dB after removing the priming")
    }

    @Test("encoders refuse what their codec cannot carry")
    func refusals() {
        #expect(throws: MediaError.self) { try OpusEncoder(sampleRate: 44100, channelCount: 2, bitrate: .kbps(96)) }
        #expect(throws: MediaError.self) { try OpusEncoder(sampleRate: 48000, channelCount: 6, bitrate: .kbps(96)) }
        #expect(throws: MediaError.self) { try MP3Encoder(sampleRate: 96000, channelCount: 2, mode: .cbr(.kbps(320))) }
        #expect(throws: MediaError.self) { try MP3Encoder(sampleRate: 44100, channelCount: 2, mode: .cbr(.kbps(500))) }
        #expect(throws: MediaError.self) { try FLACEncoder(sampleRate: 44100, channelCount: 2, bitsPerSample: 20) }
        #expect(throws: MediaError.self) { try AACEncoder(sampleRate: 44100, channelCount: 6, bitrate: .kbps(128)) }
    }
}
