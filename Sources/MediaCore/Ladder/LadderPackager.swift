internal import AsyncAlgorithms
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
        // Where the chain's output goes: every lossy encoder, or, watermarked, one embedder per
        // variant, each feeding its own variant's encoders.
        typealias Route = (embedder: WatermarkEmbedder?, channels: [AsyncChannel<[Float]>])
        let routes: [Route] = try configuration.watermark.map { mark throws(MediaError) in
            try [WatermarkVariant.a, .b].map { variant throws(MediaError) -> Route in
                (try WatermarkEmbedder(key: mark.key, variant: variant, channelCount: channels, parameters: mark.parameters),
                 zip(lossy, lossyChannels).filter { $0.0.watermark?.1 == variant }.map(\.1))
            }
        } ?? [(nil, lossyChannels)]
        /// Hands the chain's output to the lossy encoders (`last`: the end of the stream).
        func send(_ out: [Float], last: Bool = false) async {
            for (embedder, channels) in routes {
                let block = embedder.map { $0.process(out) + (last ? $0.finish() : []) } ?? out
                if block.isEmpty { continue }
                for channel in channels { await channel.send(block) }
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
                if !lossyChannels.isEmpty { await send(chain.flush(), last: true) }
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
