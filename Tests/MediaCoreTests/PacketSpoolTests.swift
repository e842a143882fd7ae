import Foundation
@testable import MediaCore
import Synchronization
import Testing
import TestSupport

/// The packaging run spools each rendition's packets to a temporary file and writes its
/// progressive file from there to another temporary file (issue 25: peak memory). These hold
/// that path to the in-memory one: byte-identical files from every writer.
@Suite("Packet spool: progressive files written from disk are the in-memory ones")
struct PacketSpoolTests {
    static func packets(_ settings: EncoderSettings, rate: Int = 48000) throws -> ([EncodedPacket], EncodedFormat) {
        let source = try Fixtures.make("spool-\(rate).wav", source: Fixtures.sourceArguments(seconds: 4, rate: rate), ["-c:a", "pcm_f32le"])
        let pcm = try AudioDecoder(path: source, options: .init(channelMode: .preserve)).readAll()
        let encoder = try makeEncoder(settings, sampleRate: rate, channelCount: 2)
        let packets = try encodeAll(encoder, pcm)
        return (packets, encoder.format)
    }

    /// Spools `packets` in uneven batches, writes with `body` to a ``FileOutput`` and returns the file's bytes.
    static func throughSpool(_ packets: [EncodedPacket], _ body: (PacketSpool, FileOutput) -> Void) throws -> [UInt8] {
        let spool = try PacketSpool()
        var start = 0
        while start < packets.count {
            let end = min(packets.count, start + 1 + start % 7)
            spool.append(Array(packets[start..<end]))
            start = end
        }
        #expect(spool.count == packets.count)
        #expect(spool.packets(0..<min(3, packets.count)) == Array(packets.prefix(3)))
        let file = try FileOutput("veza-test")
        body(spool, file)
        try file.finish()
        #expect(spool.failure == nil)
        defer { unlink(file.path) }
        let bytes = try readWholeFile(file.path)
        #expect(bytes.count == file.byteCount)
        return bytes
    }

    @Test("FLAC, Ogg Opus, MP3 and MP4 (AAC, Opus, FLAC) files from the spool equal the in-memory files")
    func identical() throws {
        let (flac, flacFormat) = try Self.packets(.flac(bitsPerSample: 16, compressionLevel: 5))
        #expect(try Self.throughSpool(flac) { spool, file in
            var out = file
            FLACFileWriter.write(streamInfo: flacFormat.codecConfiguration, sampleRate: 48000, packets: spool, metadata: ProgressiveMetadata(tags: Tags()), to: &out)
        } == FLACFileWriter.file(streamInfo: flacFormat.codecConfiguration, sampleRate: 48000, packets: flac, metadata: ProgressiveMetadata(tags: Tags())))

        let (opus, opusFormat) = try Self.packets(.opus(bitrate: .kbps(96)))
        #expect(try Self.throughSpool(opus) { spool, file in
            var out = file
            OggOpusWriter.write(packets: spool, channelCount: 2, preSkip: opusFormat.priming, inputSampleRate: 48000, sourceFrameCount: 192_000,
                                metadata: ProgressiveMetadata(tags: Tags()), to: &out)
        } == OggOpusWriter.file(packets: opus, channelCount: 2, preSkip: opusFormat.priming, inputSampleRate: 48000, sourceFrameCount: 192_000,
                                metadata: ProgressiveMetadata(tags: Tags())))

        let (mp3, mp3Format) = try Self.packets(.mp3CBR(bitrate: .kbps(128)))
        #expect(mp3.first?.duration == 0, "the first MP3 packet is the Info-frame placeholder the LAME tag replaces")
        #expect(try Self.throughSpool(mp3) { spool, file in
            var out = file
            MP3FileWriter.write(packets: spool, lameTag: mp3Format.codecConfiguration, metadata: ProgressiveMetadata(tags: Tags()), to: &out)
        } == MP3FileWriter.file(packets: mp3, lameTag: mp3Format.codecConfiguration, metadata: ProgressiveMetadata(tags: Tags())))

        let (aac, aacFormat) = try Self.packets(.aac(bitrate: .kbps(128)))
        for (packets, format) in [(aac, aacFormat), (opus, opusFormat), (flac, flacFormat)] {
            let track = EncodeJob.track(for: format, timescale: format.sampleRate)
            let tags = MP4Tags(title: "Spooled")
            #expect(try Self.throughSpool(packets) { spool, file in
                var out = file
                MP4FileWriter.write(track: track, packets: spool, sourceSampleCount: 192_000, tags: tags, to: &out)
            } == MP4FileWriter.file(track: track, packets: packets, sourceSampleCount: 192_000, tags: tags), "\(format.codec)")
        }
    }

    @Test("an empty spool writes the headers alone; a sink without write(fileAt:) gets the bytes and the file is removed")
    func emptyAndDefaultSink() async throws {
        let (_, opusFormat) = try Self.packets(.opus(bitrate: .kbps(48)))
        #expect(try Self.throughSpool([]) { spool, file in
            var out = file
            OggOpusWriter.write(packets: spool, channelCount: 2, preSkip: opusFormat.priming, inputSampleRate: 48000, sourceFrameCount: 0,
                                metadata: ProgressiveMetadata(tags: Tags()), to: &out)
        } == OggOpusWriter.file(packets: [], channelCount: 2, preSkip: opusFormat.priming, inputSampleRate: 48000, sourceFrameCount: 0,
                                metadata: ProgressiveMetadata(tags: Tags())))

        final class Collected: PackageSink {
            let files = Mutex<[String: [UInt8]]>([:])
            func write(_ bytes: [UInt8], to relativePath: String) async throws(MediaError) { files.withLock { $0[relativePath] = bytes } }
        }
        let file = try FileOutput("veza-test")
        var out = file
        out.write(Array(repeating: 7, count: 300_000))  // past the output's buffer
        out.write([1, 2, 3])
        try file.finish()
        let sink = Collected()
        try await sink.write(fileAt: file.path, to: "progressive/x.bin")
        #expect(sink.files.withLock { $0["progressive/x.bin"] } == Array(repeating: 7, count: 300_000) + [1, 2, 3])
        #expect(access(file.path, F_OK) != 0, "the sink took the file over and removed it")
    }
}
