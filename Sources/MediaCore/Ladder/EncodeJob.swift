internal import AsyncAlgorithms
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One rendition's encode-and-package task.
struct EncodeJob: Sendable {
    let rendition: LadderRendition
    let settings: EncoderSettings
    let sampleRate: Int
    let channelCount: Int
    let segmentDuration: Double
    let metadata: ProgressiveMetadata
    let sourceFrames: Int64
    let protection: SegmentProtection?
    /// The watermark and the variant this job encodes (nil: unwatermarked).
    let watermark: (WatermarkPackaging, WatermarkVariant)?

    func run(blocks: AsyncChannel<[Float]>, sink: some PackageSink) async throws(MediaError) -> PackageReport.Rendition {
        let encoder = try makeEncoder(settings, sampleRate: sampleRate, channelCount: channelCount)
        let wantsCMAF = rendition.outputs.contains(.cmaf) && settings.codec != .mp3
        let timescale = settings.codec == .opus ? 48_000 : sampleRate
        var segmenter: CMAFSegmenter?
        var segments: [PackageReport.Segment] = []
        // Kept for the progressive file (its index comes first) and for FLAC's segments (made
        // at the end): spooled to a temporary file, with only sizes and durations in memory.
        let keepsPackets = rendition.outputs.contains(.progressive) || (wantsCMAF && settings.codec == .flac)
        let packets = keepsPackets ? try PacketSpool() : nil
        var inputFrames: Int64 = 0
        // Segments need the track (codec configuration); AAC and Opus know it up front.
        func track() -> CMAFTrack {
            var track = EncodeJob.track(for: encoder.format, timescale: timescale)
            track.encryption = protection?.commonEncryption
            return track
        }
        func emit(_ made: [CMAFSegment]) async throws(MediaError) {
            for segment in made {
                let path = watermark.map { $0.segmentPath(rendition: rendition.id, number: segment.number, variant: $1) }
                    ?? "cmaf/\(rendition.id)/seg-\(segment.number).m4s"
                var bytes = segment.bytes
                if case .aes128(let key)? = protection {
                    bytes = try AES128Segments.encrypt(bytes, key: key, segmentNumber: segment.number)
                }
                try await sink.write(bytes, to: path)
                segments.append(.init(number: segment.number, start: segment.startTime, duration: segment.duration,
                                      byteSize: bytes.count, path: path))
            }
        }
        // FLAC's STREAMINFO is final only after the last frame; its segments are made at the end
        // (frames are small; memory is the compressed size).
        let segmentAsWeGo = wantsCMAF && settings.codec != .flac
        if segmentAsWeGo { segmenter = CMAFSegmenter(track: track(), targetDuration: Int(segmentDuration * Double(timescale))) }
        for await block in blocks {
            inputFrames += Int64(block.count / channelCount)
            let made = try encoder.encode(block)
            if var s = segmenter { let done = s.add(made); segmenter = s; try await emit(done) }
            packets?.append(made)
        }
        let tail = try encoder.finish()
        packets?.append(tail)
        if var s = segmenter {
            var done = s.add(tail)
            done += s.finish()
            try await emit(done)
        } else if wantsCMAF, let packets {
            var s = CMAFSegmenter(track: track(), targetDuration: Int(segmentDuration * Double(timescale)))
            for start in stride(from: 0, to: packets.count, by: 256) {
                try await emit(s.add(packets.packets(start..<min(start + 256, packets.count))))
            }
            try await emit(s.finish())
        }
        if let failure = packets?.failure { throw failure }
        var initSegment: (String, Int)?
        // The variants share variant A's init segment (same encoder, same configuration).
        if wantsCMAF && watermark?.1 != .b {
            let bytes = CMAFWriter.initSegment(track: track(), mediaDuration: inputFrames * Int64(timescale) / Int64(sampleRate))
            let path = "cmaf/\(rendition.id)/init.mp4"
            try await sink.write(bytes, to: path)
            initSegment = (path, bytes.count)
        }
        var progressive: (String, Int, String)?
        if rendition.outputs.contains(.progressive), let packets {
            let file = try FileOutput("veza-progressive")
            let (ext, mime) = writeProgressiveFile(encoder.format, packets: packets, inputFrames: inputFrames, to: file)
            try file.finish()
            if let failure = packets.failure {
                _ = unlink(file.path)
                throw failure
            }
            let path = "progressive/\(rendition.id).\(ext)"
            try await sink.write(fileAt: file.path, to: path)
            progressive = (path, file.byteCount, mime)
        }
        let format = encoder.format
        var report = PackageReport.Rendition(
            id: rendition.id, codec: format.codec, codecString: EncodeJob.codecString(format), sampleRate: format.sampleRate,
            channelCount: format.channelCount, timescale: timescale, bitsPerSample: format.bitsPerSample,
            targetBitrate: format.bitrate, initSegment: initSegment, segments: segments, progressive: progressive)
        report.priming = format.codec == .flac ? 0 : format.priming * timescale / format.sampleRate
        return report
    }

    /// Writes the progressive file to `out`; returns its extension and MIME type.
    func writeProgressiveFile(_ format: EncodedFormat, packets: PacketSpool, inputFrames: Int64, to out: FileOutput) -> (String, String) {
        var out = out
        switch format.codec {
        case .flac:
            FLACFileWriter.write(streamInfo: format.codecConfiguration, sampleRate: format.sampleRate, packets: packets, metadata: metadata, to: &out)
            return ("flac", "audio/flac")
        case .opus:
            OggOpusWriter.write(packets: packets, channelCount: format.channelCount, preSkip: format.priming,
                                inputSampleRate: format.sampleRate, sourceFrameCount: inputFrames, metadata: metadata, to: &out)
            return ("opus", "audio/ogg; codecs=opus")
        case .mp3:
            MP3FileWriter.write(packets: packets, lameTag: format.codecConfiguration, metadata: metadata, to: &out)
            return ("mp3", "audio/mpeg")
        case .aac:
            let tags = metadata.tags
            let mp4Tags = MP4Tags(title: tags.title, artist: tags.artist, album: tags.album, albumArtist: tags.albumArtist,
                                  trackNumber: tags.trackNumber, trackTotal: tags.trackTotal, discNumber: tags.discNumber,
                                  discTotal: tags.discTotal, date: tags.date, genre: tags.genre, comment: tags.comment,
                                  coverImage: metadata.cover?.data, coverIsPNG: metadata.cover?.mimeType == "image/png")
            MP4FileWriter.write(track: EncodeJob.track(for: format, timescale: format.sampleRate), packets: packets,
                                sourceSampleCount: inputFrames, tags: mp4Tags, to: &out)
            return ("m4a", "audio/mp4")
        }
    }

    static func track(for format: EncodedFormat, timescale: Int) -> CMAFTrack {
        let codec: CMAFCodec
        switch format.codec {
        case .aac: codec = .aac(audioSpecificConfig: format.codecConfiguration)
        case .opus: codec = .opus(preSkip: format.priming, inputSampleRate: format.sampleRate)
        case .flac, .mp3: codec = .flac(streamInfo: format.codecConfiguration)
        }
        return CMAFTrack(codec: codec, sampleRate: format.sampleRate, channelCount: format.channelCount, timescale: timescale,
                         priming: format.codec == .aac ? format.priming : 0, bitsPerSample: format.bitsPerSample,
                         averageBitrate: format.bitrate?.bitsPerSecond)
    }

    static func codecString(_ format: EncodedFormat) -> String {
        switch format.codec {
        case .aac: CMAFCodec.aac(audioSpecificConfig: format.codecConfiguration).codecString
        case .opus: "opus"
        case .flac: "fLaC"
        case .mp3: "mp3"
        }
    }
}
