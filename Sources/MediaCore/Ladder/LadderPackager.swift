internal import AsyncAlgorithms
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Receives the files a packaging run makes, by path relative to the track's version folder
/// (`cmaf/aac-128/seg-1.m4s`, `progressive/flac.flac`, `waveform.json`). Called concurrently.
public protocol PackageSink: Sendable {
    /// Stores `bytes` as `relativePath` (segments, init segments, waveforms).
    func write(_ bytes: [UInt8], to relativePath: String) async throws(MediaError)
    /// Stores the file at `path`, a temporary file the packager has finished, as `relativePath`,
    /// and takes the file over: the sink moves it into place or removes it when done.
    /// Progressive files arrive this way, so a whole file never has to be held in memory. The
    /// default implementation reads the file into memory, calls ``write(_:to:)`` and removes it.
    func write(fileAt path: String, to relativePath: String) async throws(MediaError)
}

extension PackageSink {
    public func write(fileAt path: String, to relativePath: String) async throws(MediaError) {
        defer { _ = unlink(path) }
        try await write(try readWholeFile(path), to: relativePath)
    }
}

/// The bytes of the file at `path`.
func readWholeFile(_ path: String) throws(MediaError) -> [UInt8] {
    let file = try ReadOnlyFile(path: path)
    let bytes = file.read(at: 0, count: Int(file.size))
    guard bytes.count == file.size else { throw MediaError(.ioError, "cannot read \(path): short read") }
    return bytes
}

/// What a packaging run produced, for the manifests and the catalog.
public struct PackageReport: Sendable, Hashable {
    /// One rendition's outputs (``PackagedRendition``).
    public typealias Rendition = PackagedRendition
    /// One CMAF media segment (``PackagedSegment``).
    public typealias Segment = PackagedSegment

    public var probe: MediaProbe
    /// Loudness of the source (as decoded, downmixed to stereo when it has more channels).
    public var sourceLoudness: LoudnessReport
    /// Loudness of the normalised PCM the lossy renditions were encoded from.
    public var normalizedLoudness: LoudnessReport
    public var normalization: NormalizationStatistics
    public var renditions: [Rendition]
    /// Waveform files written (`waveform.json`, `waveform.dat`, and per zoom level).
    public var waveformPaths: [String]
    public var decode: DecodeReport
    /// Frames of the source at its rate.
    public var frameCount: Int64
}

/// Runs the whole media side of ingest for one track: decode once, analyse (loudness and
/// waveform in the same pass), normalise and resample once, then encode every rendition of the
/// ladder concurrently and package it (CMAF segments, progressive files).
///
/// The decoded PCM is spooled to a temporary file during analysis, so the source is decoded
/// once. Each encoder runs in its own child task and takes PCM blocks from its own
/// `AsyncChannel`, which holds no block until the encoder is ready for it: a slow encoder holds
/// back the producer instead of letting buffers grow.
public enum LadderPackager {
    /// Frames per PCM block handed to the encoders.
    static let blockFrames = 8192

    public static func package(
        source path: String,
        configuration: LadderConfiguration = LadderConfiguration(),
        sink: some PackageSink,
        progress: @Sendable (Double) -> Void = { _ in }
    ) async throws(MediaError) -> PackageReport {
        switch configuration.protection {
        case .cenc(_, let keyID)? where keyID.count != 16, .cbcs(_, let keyID, _)? where keyID.count != 16:
            throw MediaError(.unsupportedParameters, "a key id has 16 bytes, not \(keyID.count)")
        case .cbcs(_, _, let iv)? where iv.count != 16:
            throw MediaError(.unsupportedParameters, "a cbcs constant IV has 16 bytes, not \(iv.count)")
        default:
            break
        }
        if configuration.watermark != nil,
           let unmarked = configuration.renditions.first(where: { $0.outputs.contains(.progressive) || $0.settings.codec == .flac || $0.settings.codec == .mp3 }) {
            throw MediaError(.unsupportedParameters, "rendition \(unmarked.id) would be an unwatermarked copy: a watermarked ladder has only AAC and Opus CMAF renditions")
        }
        // Pass 1: decode, measure, build the waveform, spool the PCM.
        let decoder = try AudioDecoder(path: path, options: DecoderOptions(channelMode: .downmixToStereo(.bs775)))
        let rate = decoder.sampleRate
        let channels = decoder.channelCount
        let spool = try Spool()
        var meter = try LoudnessMeter(sampleRate: rate, channelCount: channels)
        var waveform = try WaveformBuilder(sampleRate: rate, channelCount: channels,
                                           samplesPerPixel: configuration.waveformSamplesPerPixel, bits: .eight)
        let expected = max(1, decoder.probe.sampleCount ?? 1)
        while let block = try decoder.read() {
            if Task.isCancelled { throw MediaError(.cancelled, "packaging was cancelled") }
            try block.samples.withUnsafeBufferPointer { samples throws(MediaError) in
                meter.process(samples)
                waveform.process(samples)
                try spool.append(samples)
            }
            progress(min(0.3, 0.3 * Double(decoder.report.framesDecoded) / Double(expected)))
        }
        let frames = decoder.report.framesDecoded
        guard frames > 0 else { throw MediaError(.invalidData, "the file decodes to no audio") }
        let loudness = meter.report
        var waveformPaths: [String] = []
        for (index, level) in waveform.finish().enumerated() {
            let json = level.json()
            if index == 0 {
                try await sink.write(Array(json.utf8), to: "waveform.json")
                try await sink.write(level.dat(), to: "waveform.dat")
                waveformPaths += ["waveform.json", "waveform.dat"]
            }
            let zoomed = "waveform-\(level.samplesPerPixel).json"
            try await sink.write(Array(json.utf8), to: zoomed)
            waveformPaths.append(zoomed)
        }

        // Pass 2: PCM to every encoder.
        let gain = configuration.normalization.gain(forIntegratedLoudness: loudness.integratedLoudness)
        let sourceBits = min(24, max(16, decoder.probe.bitDepth ?? 16))
        let metadata = ProgressiveMetadata(tags: decoder.probe.tags, integratedLoudness: loudness.integratedLoudness,
                                           truePeak: pow(10, loudness.truePeak / 20))
        let variants: [WatermarkVariant?] = configuration.watermark == nil ? [nil] : [.a, .b]
        let segmentDuration = configuration.watermark?.segmentDuration ?? configuration.segmentDuration
        let jobs = configuration.renditions.flatMap { rendition -> [EncodeJob] in
            var settings = rendition.settings
            var jobRate = configuration.lossySampleRate
            if case .flac(let bits, let level) = settings {
                settings = .flac(bitsPerSample: bits == 0 ? sourceBits : bits, compressionLevel: level)
                jobRate = rate
            }
            return variants.map { variant in
                EncodeJob(rendition: rendition, settings: settings, sampleRate: jobRate, channelCount: channels,
                          segmentDuration: segmentDuration, metadata: metadata, sourceFrames: frames,
                          protection: configuration.protection, watermark: configuration.watermark.flatMap { mark in variant.map { (mark, $0) } })
            }
        }
        let lossless = jobs.filter { $0.sampleRate == rate && $0.settings.codec == .flac }
        let lossy = jobs.filter { !($0.sampleRate == rate && $0.settings.codec == .flac) }
        let losslessChannels = lossless.map { _ in AsyncChannel<[Float]>() }
        let lossyChannels = lossy.map { _ in AsyncChannel<[Float]>() }

        var chain = try LossyChain(sampleRate: rate, channelCount: channels, gain: gain, configuration: configuration)
        // Watermarked: the chain's output once per variant, each to its own encoders.
        let embedders = try configuration.watermark.map { mark throws(MediaError) in
            try [WatermarkVariant.a, .b].map { variant throws(MediaError) in
                try WatermarkEmbedder(key: mark.key, variant: variant, channelCount: channels, parameters: mark.parameters)
            }
        }
        func send(_ out: [Float]) async {
            guard !out.isEmpty else { return }
            guard let embedders else {
                for channel in lossyChannels { await channel.send(out) }
                return
            }
            for embedder in embedders {
                let marked = embedder.process(out)
                if marked.isEmpty { continue }
                for (job, channel) in zip(lossy, lossyChannels) where job.watermark?.1 == embedder.variant { await channel.send(marked) }
            }
        }

        let results: [PackageReport.Rendition]
        do {
            results = try await withThrowingTaskGroup(of: (Int, PackageReport.Rendition).self) { group in
                for (i, job) in (lossless + lossy).enumerated() {
                    let channel = i < lossless.count ? losslessChannels[i] : lossyChannels[i - lossless.count]
                    group.addTask { (i, try await job.run(blocks: channel, sink: sink)) }
                }
                // The producer: read the spool, fan out.
                var offset: Int64 = 0
                while offset < frames {
                    if Task.isCancelled { throw MediaError(.cancelled, "packaging was cancelled") }
                    let count = Int(min(Int64(blockFrames), frames - offset))
                    let block = try spool.read(frame: offset, count: count, channels: channels)
                    offset += Int64(count)
                    for channel in losslessChannels { await channel.send(block) }
                    if !lossyChannels.isEmpty { await send(chain.process(block)) }
                    progress(0.3 + 0.65 * Double(offset) / Double(frames))
                }
                if !lossyChannels.isEmpty {
                    await send(chain.flush())
                    for embedder in embedders ?? [] {
                        let tail = embedder.finish()
                        if tail.isEmpty { continue }
                        for (job, channel) in zip(lossy, lossyChannels) where job.watermark?.1 == embedder.variant { await channel.send(tail) }
                    }
                }
                for channel in losslessChannels + lossyChannels { channel.finish() }
                var byID: [String: PackageReport.Rendition] = [:]
                var variantB: [String: [PackagedSegment]] = [:]
                for try await (index, result) in group {
                    if (lossless + lossy)[index].watermark?.1 == .b { variantB[result.id] = result.segments } else { byID[result.id] = result }
                }
                for (id, segments) in variantB {
                    guard var rendition = byID[id], rendition.segments.map(\.duration) == segments.map(\.duration) else {
                        throw MediaError(.internalFailure, "the watermark variants of \(id) have different segments")
                    }
                    rendition.variantSegments = segments
                    byID[id] = rendition
                }
                // In ladder order.
                return configuration.renditions.compactMap { byID[$0.id] }
            }
        } catch let error as MediaError {
            throw error
        } catch {
            throw MediaError(.internalFailure, "packaging failed: \(error)")
        }
        progress(1)
        return PackageReport(probe: decoder.probe, sourceLoudness: loudness, normalizedLoudness: chain.meter.report,
                             normalization: chain.normalizer.statistics, renditions: results, waveformPaths: waveformPaths,
                             decode: decoder.report, frameCount: frames)
    }
}

/// What every lossy rendition is encoded from: the source's PCM normalised (gain and limiter),
/// measured again, and resampled to the lossy rate. One chain per packaging run; the watermark
/// detector's reference (``LadderPackager/watermarkReference(source:configuration:)``) is made
/// by the same chain, so it is the PCM the embedders were given.
struct LossyChain {
    var normalizer: LoudnessNormalizer
    var meter: LoudnessMeter
    var resampler: Resampler

    init(sampleRate rate: Int, channelCount channels: Int, gain: Double, configuration: LadderConfiguration) throws(MediaError) {
        normalizer = try LoudnessNormalizer(sampleRate: rate, channelCount: channels, gain: gain, configuration: configuration.normalization)
        meter = try LoudnessMeter(sampleRate: rate, channelCount: channels)
        do {
            resampler = try Resampler(inputRate: rate, outputRate: configuration.lossySampleRate, channelCount: channels,
                                      quality: configuration.resamplerQuality)
        } catch {
            throw MediaError(.unsupportedParameters, "cannot resample \(rate) Hz to \(configuration.lossySampleRate) Hz: \(error)")
        }
    }

    /// A block of source PCM in; the resampled PCM ready so far out.
    mutating func process(_ block: [Float]) -> [Float] {
        let shaped = normalizer.process(block)
        meter.process(shaped)
        var out: [Float] = []
        shaped.withUnsafeBufferPointer { resampler.process($0, appendingTo: &out) }
        return out
    }

    /// The rest, at the end of the source.
    mutating func flush() -> [Float] {
        let tail = normalizer.flush()
        meter.process(tail)
        var out: [Float] = []
        tail.withUnsafeBufferPointer { resampler.process($0, appendingTo: &out) }
        return out + resampler.flush()
    }
}

extension LadderPackager {
    /// The clear master a watermarked run embedded its variants into, as
    /// ``WatermarkDetector`` wants its reference: the source decoded, normalised and resampled
    /// exactly as ``package(source:configuration:sink:progress:)`` does for the lossy
    /// renditions, downmixed to mono, at `configuration.lossySampleRate`.
    ///
    /// The source is decoded twice (once to measure its loudness, once through the chain), so
    /// only the mono result is held in memory.
    public static func watermarkReference(source path: String, configuration: LadderConfiguration) throws(MediaError) -> [Float] {
        let options = DecoderOptions(channelMode: .downmixToStereo(.bs775))
        let measuring = try AudioDecoder(path: path, options: options)
        var meter = try LoudnessMeter(sampleRate: measuring.sampleRate, channelCount: measuring.channelCount)
        while let block = try measuring.read() {
            block.samples.withUnsafeBufferPointer { meter.process($0) }
        }
        let decoder = try AudioDecoder(path: path, options: options)
        let channels = decoder.channelCount
        let gain = configuration.normalization.gain(forIntegratedLoudness: meter.report.integratedLoudness)
        var chain = try LossyChain(sampleRate: decoder.sampleRate, channelCount: channels, gain: gain, configuration: configuration)
        var mono: [Float] = []
        func add(_ samples: [Float]) {
            mono += WatermarkDetector.mono(samples, channelCount: channels)
        }
        while let block = try decoder.read() {
            if Task.isCancelled { throw MediaError(.cancelled, "reading the reference was cancelled") }
            add(chain.process(block.samples))
        }
        add(chain.flush())
        return mono
    }
}

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

/// A temporary file of interleaved Float32 PCM, removed when released.
final class Spool: @unchecked Sendable {  // safe: written only in pass 1 and read only in pass 2, by one task at a time
    private let descriptor: Int32
    private var written: Int64 = 0

    init() throws(MediaError) {
        let (fd, path) = try makeTemporaryFile("veza-spool")
        _ = unlink(path)  // gone from the directory once closed
        descriptor = fd
    }

    deinit { close(descriptor) }

    func append(_ samples: UnsafeBufferPointer<Float>) throws(MediaError) {
        let bytes = UnsafeRawBufferPointer(samples)
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(written) + off_t(done))
            guard n > 0 else { throw MediaError(.ioError, "writing the PCM spool failed (disk full?)") }
            done += n
        }
        written += Int64(bytes.count)
    }

    func read(frame: Int64, count: Int, channels: Int) throws(MediaError) -> [Float] {
        let total = count * channels
        var failed = false
        let samples = [Float](unsafeUninitializedCapacity: total) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var done = 0
            let start = off_t(frame) * off_t(channels * 4)
            while done < raw.count {
                let n = pread(descriptor, raw.baseAddress! + done, raw.count - done, start + off_t(done))
                if n <= 0 { failed = true; break }
                done += n
            }
            initialized = failed ? 0 : total
        }
        if failed { throw MediaError(.ioError, "reading the PCM spool failed") }
        return samples
    }
}

/// One rendition as a packaging run produced it: its codec parameters, CMAF init and media
/// segments (paths relative to the version folder, sizes, timing) and progressive file. The
/// ladder's configuration is a ``LadderRendition``; StreamHost publishes this as its manifest's
/// `PublishedRendition`, and StreamKit's `Rendition` is the manifest model built from either.
public struct PackagedRendition: Sendable, Hashable {
    public var id: String
    public var codec: AudioCodecKind
    /// RFC 6381 codec string (`mp4a.40.2`, `opus`, `fLaC`, `mp3`).
    public var codecString: String
    public var sampleRate: Int
    public var channelCount: Int
    /// Timescale of segment starts and durations.
    public var timescale: Int
    public var bitsPerSample: Int
    public var targetBitrate: AudioBitrate?
    /// `cmaf/{id}/init.mp4` and its size, when CMAF was made.
    public var initSegment: (path: String, byteSize: Int)?
    public var segments: [PackagedSegment]
    /// The progressive file, when one was made.
    public var progressive: (path: String, byteSize: Int, mimeType: String)?
    /// Watermarked runs: variant B of each segment (``segments`` are variant A), with the same
    /// numbers and durations; empty otherwise.
    public var variantSegments: [PackagedSegment] = []
    /// Priming in timescale units (AAC's encoder delay, Opus' pre-skip; 0 for FLAC): segment
    /// `k` holds the source's audio from `start − priming`.
    public var priming: Int = 0

    public static func == (a: PackagedRendition, b: PackagedRendition) -> Bool {
        a.id == b.id && a.segments == b.segments && a.initSegment?.path == b.initSegment?.path
            && a.progressive?.path == b.progressive?.path && a.progressive?.byteSize == b.progressive?.byteSize
            && a.variantSegments == b.variantSegments
    }
    public func hash(into hasher: inout Hasher) { hasher.combine(id); hasher.combine(segments) }
}

/// One CMAF media segment of a ``PackagedRendition`` (also the shape StreamHost's published
/// manifest stores: the same fields, the same JSON).
public struct PackagedSegment: Sendable, Hashable, Codable {
    public var number: Int
    /// Start and duration in the rendition's timescale.
    public var start: Int64
    public var duration: Int
    public var byteSize: Int
    public var path: String
}
