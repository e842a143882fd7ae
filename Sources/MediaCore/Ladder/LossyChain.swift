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
