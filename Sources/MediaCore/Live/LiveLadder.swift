/// One rung of a live ladder: an id (`aac-128`, `opus-96`) and its encoder.
public struct LiveRung: Sendable, Hashable {
    public var id: String
    public var settings: EncoderSettings

    public init(id: String, settings: EncoderSettings) {
        self.id = id
        self.settings = settings
    }

    /// A rung named `codec-kbps` (`aac-128`, `opus-48`, `mp3-128`): AAC-LC 16–320 kb/s, Opus
    /// 6–510 kb/s or MP3 (CBR) 32–320 kb/s.
    public init?(name: String) {
        let parts = name.split(separator: "-")
        guard parts.count == 2, let kbps = Int(parts[1]) else { return nil }
        switch parts[0] {
        case "aac" where (16...320).contains(kbps): settings = .aac(bitrate: .kbps(kbps))
        case "opus" where (6...510).contains(kbps): settings = .opus(bitrate: .kbps(kbps))
        case "mp3" where (32...320).contains(kbps): settings = .mp3CBR(bitrate: .kbps(kbps))
        default: return nil
        }
        id = name
    }

    /// AAC-LC at 128 and 64 kb/s and Opus at 96 and 48 kb/s: the rungs LL-HLS and DASH players
    /// switch between (one switching set per codec).
    public static let defaults: [LiveRung] = [
        LiveRung(id: "aac-128", settings: .aac(bitrate: .kbps(128))),
        LiveRung(id: "aac-64", settings: .aac(bitrate: .kbps(64))),
        LiveRung(id: "opus-96", settings: .opus(bitrate: .kbps(96))),
        LiveRung(id: "opus-48", settings: .opus(bitrate: .kbps(48))),
    ]
}

/// One CMAF part of one rung: a `moof` + `mdat` fragment, playable after the rung's init
/// segment, that an LL-HLS playlist lists as an `EXT-X-PART` and a DASH player appends.
public struct LivePart: Sendable, Hashable {
    /// The rung's id.
    public var rung: String
    /// The part's index from the start of the stream (0, 1, 2, …).
    public var index: Int
    /// Decode time of its first sample, in the track's timescale.
    public var startTime: Int64
    /// Its duration in the track's timescale.
    public var duration: Int
    /// The fragment: `moof` + `mdat`.
    public var bytes: [UInt8]
    /// The encoded packets it carries, for outputs other than CMAF (ADTS or Ogg for ICY
    /// listeners). Empty once a part is kept only for LL-HLS and DASH.
    public var packets: [EncodedPacket]
}

/// Encodes live PCM into every rung at once and cuts each rung into CMAF parts of exactly the
/// same duration, so that parts (and the segments made of them) are aligned across rungs and
/// codecs: a part is a whole number of 0.32 s blocks (15,360 samples at 48 kHz), which is whole
/// AAC frames (1024) and whole Opus frames (960) at once.
///
/// Not thread-safe: one ladder per live source, fed from one task. Encoding costs CPU in
/// proportion to the rungs: keep it off an event loop.
public final class LiveLadder {
    /// Samples per second of the input and of every rung.
    public let sampleRate: Int
    public let channelCount: Int
    /// Samples in one part, a multiple of ``alignment``.
    public let partFrames: Int
    public let rungs: [LiveRung]
    /// Each CMAF rung's track and init segment (an MP3 rung has none: see ``isCMAF(_:)``).
    public let tracks: [String: CMAFTrack]
    public let initSegments: [String: [UInt8]]
    /// Each rung's codec string (`mp4a.40.2`, `opus`).
    public let codecStrings: [String: String]

    /// 0.32 s at 48 kHz: the shortest span of whole AAC and Opus frames.
    public static let alignment = 15_360

    private let encoders: [any AudioEncoder]
    private var pending: [[EncodedPacket]]
    private var pendingFrames: [Int]
    private var nextIndex: [Int]
    private var decodeTime: [Int64]

    /// - Parameters:
    ///   - rungs: the encodings, AAC or Opus, with distinct ids.
    ///   - sampleRate: the input's rate, which must be 48 kHz (``LiveDecoder`` resamples to it).
    ///   - channelCount: the input's channels (1 or 2).
    ///   - partBlocks: 0.32 s blocks per part (3: 0.96 s parts, a good LL-HLS part target).
    public init(rungs: [LiveRung] = LiveRung.defaults, sampleRate: Int = 48_000, channelCount: Int = 2, partBlocks: Int = 3) throws(MediaError) {
        guard sampleRate == 48_000 else {
            throw MediaError(.unsupportedParameters, "the live ladder runs at 48 kHz (resample the source with LiveDecoder)")
        }
        guard !rungs.isEmpty, Set(rungs.map(\.id)).count == rungs.count else {
            throw MediaError(.unsupportedParameters, "a live ladder needs rungs with distinct ids")
        }
        guard partBlocks >= 1 else { throw MediaError(.unsupportedParameters, "a part holds at least one 0.32 s block") }
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        self.rungs = rungs
        partFrames = Self.alignment * partBlocks
        var encoders: [any AudioEncoder] = []
        var tracks: [String: CMAFTrack] = [:]
        var initSegments: [String: [UInt8]] = [:]
        var codecStrings: [String: String] = [:]
        for rung in rungs {
            switch rung.settings {
            case .aac, .opus: break
            case .mp3CBR:
                encoders.append(try makeEncoder(rung.settings, sampleRate: sampleRate, channelCount: channelCount))
                codecStrings[rung.id] = "mp4a.40.34"
                continue
            default: throw MediaError(.unsupportedCodec, "live rungs are AAC, Opus or MP3 CBR, not \(rung.settings.codec.rawValue)")
            }
            let encoder = try makeEncoder(rung.settings, sampleRate: sampleRate, channelCount: channelCount)
            let format = encoder.format
            let codec: CMAFCodec = format.codec == .aac
                ? .aac(audioSpecificConfig: format.codecConfiguration)
                : .opus(preSkip: format.priming, inputSampleRate: sampleRate)
            let track = CMAFTrack(codec: codec, sampleRate: format.sampleRate, channelCount: format.channelCount, timescale: sampleRate,
                                  priming: format.codec == .aac ? format.priming : 0, averageBitrate: format.bitrate?.bitsPerSecond)
            encoders.append(encoder)
            tracks[rung.id] = track
            initSegments[rung.id] = CMAFWriter.initSegment(track: track, mediaDuration: nil)
            codecStrings[rung.id] = codec.codecString
        }
        self.encoders = encoders
        self.tracks = tracks
        self.initSegments = initSegments
        self.codecStrings = codecStrings
        pending = Array(repeating: [], count: rungs.count)
        pendingFrames = Array(repeating: 0, count: rungs.count)
        nextIndex = Array(repeating: 0, count: rungs.count)
        decodeTime = Array(repeating: 0, count: rungs.count)
    }

    /// Whether a rung is packaged as CMAF (AAC, Opus). An MP3 rung is not, as VOD serves MP3
    /// only as a file: its parts carry packets only (for a container-less MP3 stream), in
    /// whatever number the encoder gives, and are not aligned with the CMAF rungs.
    public func isCMAF(_ rung: String) -> Bool { tracks[rung] != nil }

    /// Part duration in seconds.
    public var partSeconds: Double { Double(partFrames) / Double(sampleRate) }

    /// Encodes interleaved samples; returns the parts they complete, rung by rung in order.
    public func push(_ interleaved: [Float]) throws(MediaError) -> [LivePart] {
        try push(interleaved) { _, _, _ in }
    }

    /// Encodes interleaved samples and returns the parts they complete, rung by rung in order;
    /// first hands each rung's new packets to `packets` as soon as they are encoded, with the
    /// decode time of the first (in the rung's timescale): for outputs that send packets one by
    /// one without waiting for a part (WebRTC's RTP).
    public func push(_ interleaved: [Float], packets handOut: (_ rung: String, _ startTime: Int64, _ packets: [EncodedPacket]) -> Void) throws(MediaError) -> [LivePart] {
        var parts: [LivePart] = []
        for (slot, encoder) in encoders.enumerated() {
            let packets = try encoder.encode(interleaved)
            if tracks[rungs[slot].id] == nil {
                // MP3: the packets as they come, in a part of their own.
                guard !packets.isEmpty else { continue }
                let frames = packets.reduce(0) { $0 + $1.duration }
                parts.append(LivePart(rung: rungs[slot].id, index: nextIndex[slot], startTime: decodeTime[slot], duration: frames, bytes: [], packets: packets))
                nextIndex[slot] += 1
                decodeTime[slot] += Int64(frames)
                continue
            }
            if !packets.isEmpty { handOut(rungs[slot].id, decodeTime[slot] + Int64(pendingFrames[slot]), packets) }
            pending[slot] += packets
            pendingFrames[slot] += packets.reduce(0) { $0 + $1.duration }
            while pendingFrames[slot] >= partFrames {
                parts.append(cut(slot))
            }
        }
        return parts
    }

    /// Cuts the next part of a rung: packets up to exactly ``partFrames`` (their durations
    /// divide it; a packet that would cross the boundary starts the next part instead).
    private func cut(_ slot: Int) -> LivePart {
        var frames = 0
        var count = 0
        for packet in pending[slot] {
            if count > 0, frames + packet.duration > partFrames { break }
            frames += packet.duration
            count += 1
            if frames >= partFrames { break }
        }
        let packets = Array(pending[slot].prefix(count))
        pending[slot].removeFirst(count)
        pendingFrames[slot] -= frames
        let rung = rungs[slot].id
        let index = nextIndex[slot]
        let bytes = CMAFWriter.mediaSegment(track: tracks[rung]!, sequenceNumber: UInt32(index + 1),
                                            baseMediaDecodeTime: UInt64(decodeTime[slot]), packets: packets)
        let part = LivePart(rung: rung, index: index, startTime: decodeTime[slot], duration: frames, bytes: bytes, packets: packets)
        nextIndex[slot] += 1
        decodeTime[slot] += Int64(frames)
        return part
    }
}
