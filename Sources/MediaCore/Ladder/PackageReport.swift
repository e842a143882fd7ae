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
