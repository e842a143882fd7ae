/// An audio codec as it appears in CODECS (HLS) and `@codecs` (DASH): an RFC 6381 string.
public struct AudioCodec: Sendable, Hashable, CustomStringConvertible {
    /// The RFC 6381 codec string, e.g. `mp4a.40.2`.
    public var codecsString: String

    /// Creates a codec from its RFC 6381 string.
    public init(codecsString: String) {
        self.codecsString = codecsString
    }

    /// AAC-LC: `mp4a.40.2`.
    public static let aacLC = AudioCodec(codecsString: "mp4a.40.2")
    /// HE-AAC (SBR): `mp4a.40.5`.
    public static let heAAC = AudioCodec(codecsString: "mp4a.40.5")
    /// HE-AACv2 (SBR+PS): `mp4a.40.29`.
    public static let heAACv2 = AudioCodec(codecsString: "mp4a.40.29")
    /// Opus in ISOBMFF: `opus`.
    public static let opus = AudioCodec(codecsString: "opus")
    /// FLAC in ISOBMFF: `fLaC`.
    public static let flac = AudioCodec(codecsString: "fLaC")
    /// MP3 in ISOBMFF: `mp4a.40.34`.
    public static let mp3 = AudioCodec(codecsString: "mp4a.40.34")

    /// The codec string.
    public var description: String { codecsString }
}

/// How the init and media segments of a rendition are addressed.
public enum SegmentAddressing: Sendable, Hashable {
    /// One file per segment, named by templates relative to the manifest. Templates use the DASH
    /// identifiers `$RepresentationID$`, `$Number$` (optionally `$Number%05d$`), `$Time$`, `$Bandwidth$`
    /// and `$$`; HLS playlists list the expanded names.
    case template(initialization: String, media: String)
    /// One file holding the init segment (`initializationByteSize` bytes at offset 0) followed by
    /// every media segment in order, addressed with byte ranges (EXT-X-BYTERANGE / DASH `mediaRange`).
    case singleFile(uri: String, initializationByteSize: Int64)
    /// One file per segment, each named: `media[i]` is the URI of the rendition's `segments[i]`
    /// (HLS lists them; DASH gets a `SegmentList` of `SegmentURL@media`). For segments no template
    /// can name, such as the A/B variants a watermarked track's playback session is given.
    case files(initialization: String, media: [String])
}

/// One CMAF media segment of a rendition, as the packager produced it.
public struct SegmentInfo: Sendable, Hashable {
    /// The segment number (DASH `$Number$`, HLS media sequence number).
    public var number: Int64
    /// Presentation start in the rendition's timescale (DASH `$Time$`, `S@t`; the `tfdt`).
    public var start: Int64
    /// Duration in the rendition's timescale (EXTINF, `S@d`).
    public var duration: Int64
    /// Size of the segment file in bytes.
    public var byteSize: Int64
    /// Whether a discontinuity precedes this segment (EXT-X-DISCONTINUITY).
    public var discontinuity: Bool

    /// Creates a segment record.
    public init(number: Int64, start: Int64, duration: Int64, byteSize: Int64, discontinuity: Bool = false) {
        self.number = number
        self.start = start
        self.duration = duration
        self.byteSize = byteSize
        self.discontinuity = discontinuity
    }
}

/// One rendition of the ladder (one codec at one bit rate), filled in by the host from the packager.
public struct Rendition: Sendable, Hashable {
    /// Identifier, unique in the presentation (DASH `Representation@id`, `$RepresentationID$`).
    public var id: String
    /// The codec.
    public var codec: AudioCodec
    /// Renditions with the same codec group are switchable (one DASH AdaptationSet; one HLS audio group).
    public var codecGroup: String
    /// Output sample rate in Hz (DASH `@audioSamplingRate`, HLS `SAMPLE-RATE`).
    public var sampleRate: Int
    /// Number of channels (DASH AudioChannelConfiguration, HLS `CHANNELS`).
    public var channelCount: Int
    /// Units per second of `SegmentInfo.start` and `.duration` (the `mdhd` timescale).
    public var timescale: Int32
    /// RFC 5646 language tag, if known.
    public var language: String?
    /// How segments are addressed.
    public var addressing: SegmentAddressing
    /// The media segments in presentation order.
    public var segments: [SegmentInfo]

    /// Creates a rendition. `codecGroup` defaults to the codec string.
    public init(id: String, codec: AudioCodec, codecGroup: String? = nil, sampleRate: Int, channelCount: Int,
                timescale: Int32, language: String? = nil, addressing: SegmentAddressing, segments: [SegmentInfo]) {
        self.id = id
        self.codec = codec
        self.codecGroup = codecGroup ?? codec.codecsString
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        self.timescale = timescale
        self.language = language
        self.addressing = addressing
        self.segments = segments
    }

    /// The duration of each segment, exact.
    public var segmentDurations: [MediaTime] {
        segments.map { MediaTime(value: $0.duration, timescale: timescale) }
    }

    /// The total duration, exact.
    public var totalDuration: MediaTime {
        MediaTime(value: segments.reduce(0) { $0 + $1.duration }, timescale: timescale)
    }

    /// The value of EXT-X-TARGETDURATION: the ceiling of the longest segment.
    public var targetDuration: Int64 {
        MediaPlaylist.targetDuration(for: segmentDurations)
    }

    /// Sum of the media segments' sizes (init segment excluded).
    public var totalByteSize: Int64 {
        segments.reduce(0) { $0 + $1.byteSize }
    }

    /// The average segment bit rate: total bits over total duration (value of AVERAGE-BANDWIDTH).
    public var averageBitrate: Bitrate {
        Bitrate(byteCount: totalByteSize, duration: totalDuration) ?? Bitrate(bitsPerSecond: 0)
    }

    /// The largest bit rate of any single segment (value of DASH `Representation@bandwidth`:
    /// a client with a buffer of one segment duration never starves at that rate).
    public var peakSegmentBitrate: Bitrate {
        segments.compactMap { Bitrate(byteCount: $0.byteSize, duration: MediaTime(value: $0.duration, timescale: timescale)) }
            .max() ?? Bitrate(bitsPerSecond: 0)
    }

    /// The peak segment bit rate of RFC 8216 §4.3.4.2 (value of BANDWIDTH): the largest bit rate
    /// of any contiguous set of segments whose total duration is between 0.5 and 1.5 times the
    /// target duration. Falls back to the average when the whole rendition is shorter than half
    /// a target duration.
    public var hlsPeakBitrate: Bitrate {
        let target = Int128(targetDuration) * Int128(timescale)
        let low = target // compared against 2 * duration
        let high = 3 * target
        var best: (bytes: Int128, duration: Int128)?
        for first in segments.indices {
            var bytes: Int128 = 0
            var duration: Int128 = 0
            for index in first..<segments.count {
                bytes += Int128(segments[index].byteSize)
                duration += Int128(segments[index].duration)
                if 2 * duration > high { break }
                if 2 * duration >= low, duration > 0 {
                    if let current = best {
                        if bytes * current.duration > current.bytes * duration { best = (bytes, duration) }
                    } else {
                        best = (bytes, duration)
                    }
                }
            }
        }
        guard let best else { return averageBitrate }
        let numerator = best.bytes * 8 * Int128(timescale)
        let q = numerator / best.duration
        return Bitrate(bitsPerSecond: Int64(numerator % best.duration == 0 ? q : q + 1))
    }

    /// The URI of the initialization segment (EXT-X-MAP `URI`, DASH `@initialization`).
    public var initializationURI: String {
        switch addressing {
        case .template(let initialization, _):
            return SegmentTemplateText.expand(initialization, representationID: id, number: nil, time: nil,
                                              bandwidth: initialization.contains("$Bandwidth") ? peakSegmentBitrate : nil)
        case .singleFile(let uri, _):
            return uri
        case .files(let initialization, _):
            return initialization
        }
    }

    /// The URI of a media segment.
    public func uri(of segment: SegmentInfo) -> String {
        switch addressing {
        case .template(_, let media):
            return SegmentTemplateText.expand(media, representationID: id, number: segment.number, time: segment.start,
                                              bandwidth: media.contains("$Bandwidth") ? peakSegmentBitrate : nil)
        case .singleFile(let uri, _):
            return uri
        case .files(_, let media):
            // Numbers are consecutive (``validate()``): the index follows from the first.
            let index = Int(segment.number - (segments.first?.number ?? segment.number))
            return media.indices.contains(index) ? media[index] : ""
        }
    }
}

/// Expansion of DASH template identifiers (ISO/IEC 23009-1 §5.3.9.4.4), shared with HLS.
public enum SegmentTemplateText {
    /// Expands `$RepresentationID$`, `$Number$`, `$Time$`, `$Bandwidth$` (each optionally with a
    /// `%0Nd` width) and `$$`. Identifiers whose value is `nil` are left as they are.
    public static func expand(_ template: String, representationID: String, number: Int64?, time: Int64?,
                              bandwidth: Bitrate?) -> String {
        guard template.contains("$") else { return template }
        var out = ""
        var rest = template[...]
        while let dollar = rest.firstIndex(of: "$") {
            out += rest[..<dollar]
            let afterDollar = rest.index(after: dollar)
            guard let close = rest[afterDollar...].firstIndex(of: "$") else {
                out += rest[dollar...]
                return out
            }
            let identifier = rest[afterDollar..<close]
            rest = rest[rest.index(after: close)...]
            if identifier.isEmpty { out += "$"; continue }
            var name = identifier
            var width = 0
            if let percent = identifier.firstIndex(of: "%") {
                name = identifier[..<percent]
                let format = identifier[identifier.index(after: percent)...]
                if format.hasPrefix("0"), format.hasSuffix("d"), let w = Int(format.dropFirst().dropLast()) {
                    width = w
                }
            }
            let value: String?
            switch name {
            case "RepresentationID": value = representationID
            case "Number": value = number.map(String.init)
            case "Time": value = time.map(String.init)
            case "Bandwidth": value = bandwidth.map { String($0.bitsPerSecond) }
            default: value = nil
            }
            if var value {
                if name != "RepresentationID", value.count < width {
                    value = String(repeating: "0", count: width - value.count) + value
                }
                out += value
            } else {
                out += "$" + identifier + "$"
            }
        }
        out += rest
        return out
    }
}
