/// ADTS framing (ISO/IEC 13818-7 §6.2, as used by MPEG-4 AAC): a 7-byte header before each raw
/// AAC frame, so that AAC can be streamed without a container (an ICY `audio/aac` mount).
public enum ADTS {
    /// One ADTS frame: the header for `audioSpecificConfig` (AAC-LC/HE object types 1–4, a
    /// standard sampling-frequency index, 1–7 channels) and the raw frame. Nil when the
    /// configuration cannot be expressed in ADTS or the frame is longer than 8,184 bytes.
    ///
    /// - Parameters:
    ///   - payload: one raw AAC frame.
    ///   - config: the stream's AudioSpecificConfig.
    public static func frame(_ payload: [UInt8], audioSpecificConfig config: [UInt8]) -> [UInt8]? {
        guard config.count >= 2 else { return nil }
        let objectType = Int(config[0] >> 3)
        let frequencyIndex = Int((config[0] & 0x07) << 1 | config[1] >> 7)
        let channels = Int((config[1] >> 3) & 0x0F)
        let length = payload.count + 7
        guard (1...4).contains(objectType), frequencyIndex < 13, (1...7).contains(channels), length < 1 << 13 else { return nil }
        var frame: [UInt8] = [
            0xFF, 0xF1,  // sync, MPEG-4, layer 0, no CRC
            UInt8((objectType - 1) << 6 | frequencyIndex << 2 | channels >> 2),
            UInt8((channels & 3) << 6 | length >> 11),
            UInt8((length >> 3) & 0xFF),
            UInt8((length & 7) << 5 | 0x1F),  // buffer fullness 0x7FF: variable bit rate
            0xFC,  // + one raw data block
        ]
        frame.reserveCapacity(length)
        frame += payload
        return frame
    }
}

/// An Ogg Opus stream (RFC 7845) written as it is encoded, for listeners that join at any time:
/// ``headers(vendor:title:)`` gives the two header pages a listener needs first, and
/// ``pages(_:)`` the audio pages that follow, with granule positions counted from the start of
/// the stream (a listener who joins late sees a stream that starts at a later granule, as an
/// Icecast relay serves it).
public struct OggOpusStream: Sendable {
    public let channelCount: Int
    public let preSkip: Int
    public let inputSampleRate: Int
    private let serial: UInt32
    private var audioSequence: UInt32 = 2
    private var granule: Int64 = 0

    /// - Parameters:
    ///   - channelCount: the encoder's channels (1 or 2).
    ///   - preSkip: the encoder's priming, in 48 kHz samples (`OpusHead` pre-skip).
    ///   - inputSampleRate: the rate of the audio before encoding (informative).
    ///   - serial: the Ogg stream's serial number.
    public init(channelCount: Int, preSkip: Int, inputSampleRate: Int, serial: UInt32 = 0x5645_5A4C) {
        self.channelCount = channelCount
        self.preSkip = preSkip
        self.inputSampleRate = inputSampleRate
        self.serial = serial
    }

    /// The `OpusHead` and `OpusTags` pages (with `TITLE` when given).
    ///
    /// - Parameters:
    ///   - vendor: the `OpusTags` vendor string.
    ///   - title: a `TITLE` comment, if any.
    public func headers(vendor: String = "Veza Stream", title: String? = nil) -> [UInt8] {
        var writer = OggPageWriter(serial: serial)
        var head: [UInt8] = Array("OpusHead".utf8)
        head.append(1)
        head.append(UInt8(channelCount))
        head.appendLE(UInt64(preSkip), bytes: 2)
        head.appendLE(UInt64(inputSampleRate), bytes: 4)
        head.appendLE(0, bytes: 2)
        head.append(0)
        writer.pages([(head, 0)], beginning: true)
        let fields = title.map { ["TITLE=" + $0] } ?? []
        writer.pages([(Array("OpusTags".utf8) + vorbisCommentBody(vendor: vendor, fields: fields), 0)])
        return writer.bytes
    }

    /// The audio pages for `packets` (one page, or more when the packets need over 255 lacing
    /// values).
    ///
    /// - Parameter packets: the next Opus packets of the stream, in order.
    public mutating func pages(_ packets: [EncodedPacket]) -> [UInt8] {
        guard !packets.isEmpty else { return [] }
        var writer = OggPageWriter(serial: serial)
        writer.sequence = audioSequence
        var batch: [(data: [UInt8], granule: Int64)] = []
        for packet in packets {
            granule += Int64(packet.duration)
            batch.append((packet.data, granule))
        }
        writer.pages(batch)
        audioSequence = writer.sequence
        return writer.bytes
    }
}

/// The live loudness stage: a short-term meter (3 s, EBU R128) drives a gain that moves slowly
/// toward the target (at most ``slewDecibelsPerSecond``, and not at all while the programme is
/// silent or quieter than ``gateLoudness``), followed by the true-peak limiter of
/// ``LoudnessNormalizer``. For sources that are not mastered to one level; off by default, since
/// most live sources are.
public struct LiveLoudnessStage: Sendable {
    /// Target short-term loudness, LUFS.
    public let targetLoudness: Double
    /// The gain stays within ± this many dB.
    public let maximumGain: Double
    /// How fast the gain may move, dB per second.
    public let slewDecibelsPerSecond: Double
    /// Programme quieter than this (LUFS, short-term) holds the gain: pauses are not pumped up.
    public let gateLoudness: Double
    /// The gain applied now, dB.
    public private(set) var gain: Double = 0

    private var meter: LoudnessMeter
    private var limiter: LoudnessNormalizer
    private let sampleRate: Int
    private let channelCount: Int

    /// - Parameters:
    ///   - sampleRate: the input's rate in Hz.
    ///   - channelCount: the input's interleaved channels.
    ///   - targetLoudness: LUFS (−14 by default, like the VOD ladder).
    ///   - ceiling: the limiter's true-peak ceiling, dBTP.
    ///   - maximumGain: the largest boost or cut, dB.
    ///   - slewDecibelsPerSecond: the largest change of gain per second.
    public init(sampleRate: Int, channelCount: Int, targetLoudness: Double = -14, ceiling: Double = -1,
                maximumGain: Double = 12, slewDecibelsPerSecond: Double = 1) throws(MediaError) {
        guard maximumGain >= 0, slewDecibelsPerSecond > 0, targetLoudness.isFinite else {
            throw MediaError(.unsupportedParameters, "a live loudness stage needs a finite target, a gain range ≥ 0 and a slew > 0")
        }
        self.targetLoudness = targetLoudness
        self.maximumGain = maximumGain
        self.slewDecibelsPerSecond = slewDecibelsPerSecond
        gateLoudness = targetLoudness - 30
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        meter = try LoudnessMeter(sampleRate: sampleRate, channelCount: channelCount)
        limiter = try LoudnessNormalizer(sampleRate: sampleRate, channelCount: channelCount, gain: 0,
                                         configuration: NormalizationConfiguration(targetLoudness: targetLoudness, ceiling: ceiling))
    }

    /// Frames the limiter holds back (its look-ahead): output lags input by this much.
    public var latency: Int { limiter.latency }

    /// Measures, moves the gain and limits; returns the frames that are ready.
    ///
    /// - Parameter interleaved: the next frames of the programme.
    public mutating func process(_ interleaved: [Float]) -> [Float] {
        meter.process(interleaved)
        let frames = interleaved.count / channelCount
        let shortTerm = meter.shortTermLoudness
        if shortTerm.isFinite, shortTerm > gateLoudness, meter.frameCount >= Int64(3 * sampleRate) {
            let wanted = min(max(targetLoudness - shortTerm, -maximumGain), maximumGain)
            let step = slewDecibelsPerSecond * Double(frames) / Double(sampleRate)
            gain += min(max(wanted - gain, -step), step)
            limiter.setGain(gain)
        }
        // The meter keeps every 100 ms block for the integrated loudness, which a live stage
        // never asks for: start a fresh one every hour (the gain holds while it fills).
        if meter.frameCount > Int64(3600 * sampleRate), let fresh = try? LoudnessMeter(sampleRate: sampleRate, channelCount: channelCount) {
            meter = fresh
        }
        return limiter.process(interleaved)
    }
}
