/// Where a rendition's output goes.
public struct RenditionOutputs: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// CMAF init and media segments (HLS, DASH).
    public static let cmaf = RenditionOutputs(rawValue: 1)
    /// One progressive file (`.m4a`, `.opus`, `.mp3`, `.flac`).
    public static let progressive = RenditionOutputs(rawValue: 2)
}

/// One rung of the bitrate ladder.
public struct LadderRendition: Sendable, Hashable {
    /// Identifier used in paths and manifests (`aac-256`, `opus-96`, `flac`).
    public var id: String
    public var settings: EncoderSettings
    public var outputs: RenditionOutputs

    public init(id: String, settings: EncoderSettings, outputs: RenditionOutputs) {
        self.id = id
        self.settings = settings
        self.outputs = outputs
    }

    /// The default ladder (DESIGN §2): AAC-LC 256/128/64 kb/s, Opus 160/96/48 kb/s (CMAF and
    /// progressive), MP3 320 kb/s (progressive), FLAC lossless (CMAF and progressive).
    public static let defaultLadder: [LadderRendition] = [
        .init(id: "aac-256", settings: .aac(bitrate: .kbps(256)), outputs: [.cmaf, .progressive]),
        .init(id: "aac-128", settings: .aac(bitrate: .kbps(128)), outputs: [.cmaf, .progressive]),
        .init(id: "aac-64", settings: .aac(bitrate: .kbps(64)), outputs: [.cmaf, .progressive]),
        .init(id: "opus-160", settings: .opus(bitrate: .kbps(160)), outputs: [.cmaf, .progressive]),
        .init(id: "opus-96", settings: .opus(bitrate: .kbps(96)), outputs: [.cmaf, .progressive]),
        .init(id: "opus-48", settings: .opus(bitrate: .kbps(48)), outputs: [.cmaf, .progressive]),
        .init(id: "mp3-320", settings: .mp3CBR(bitrate: .kbps(320)), outputs: [.progressive]),
        .init(id: "flac", settings: .flac(bitsPerSample: 0, compressionLevel: 5), outputs: [.cmaf, .progressive]),
    ]

    /// Parses a ladder description like `aac-256,opus-96,mp3-320,mp3-v2,flac` (codec and kb/s;
    /// `mp3-vN` for LAME VBR quality N; `flac` lossless at the source depth).
    public static func parse(_ text: String) throws(MediaError) -> [LadderRendition] {
        var ladder: [LadderRendition] = []
        for item in text.split(separator: ",").map({ $0.trimmingSpaces() }) where !item.isEmpty {
            let parts = item.split(separator: "-", maxSplits: 1).map(String.init)
            let kbps = parts.count == 2 ? Int(parts[1]) : nil
            switch (parts[0], kbps) {
            case ("aac", let k?): ladder.append(.init(id: item, settings: .aac(bitrate: .kbps(k)), outputs: [.cmaf, .progressive]))
            case ("opus", let k?): ladder.append(.init(id: item, settings: .opus(bitrate: .kbps(k)), outputs: [.cmaf, .progressive]))
            case ("mp3", let k?): ladder.append(.init(id: item, settings: .mp3CBR(bitrate: .kbps(k)), outputs: [.progressive]))
            case ("mp3", nil) where parts.count == 2 && parts[1].hasPrefix("v"):
                guard let q = Int(parts[1].dropFirst()) else { throw MediaError(.unsupportedParameters, "bad ladder item '\(item)'") }
                ladder.append(.init(id: item, settings: .mp3VBR(quality: q), outputs: [.progressive]))
            case ("flac", nil) where parts.count == 1:
                ladder.append(.init(id: "flac", settings: .flac(bitsPerSample: 0, compressionLevel: 5), outputs: [.cmaf, .progressive]))
            default:
                throw MediaError(.unsupportedParameters, "bad ladder item '\(item)' (expected aac-KBPS, opus-KBPS, mp3-KBPS, mp3-vN or flac)")
            }
        }
        guard !ladder.isEmpty else { throw MediaError(.unsupportedParameters, "the ladder is empty") }
        guard Set(ladder.map(\.id)).count == ladder.count else { throw MediaError(.unsupportedParameters, "the ladder repeats a rendition") }
        return ladder
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// Settings of a packaging run.
public struct LadderConfiguration: Sendable, Hashable {
    public var renditions: [LadderRendition] = LadderRendition.defaultLadder
    /// Target CMAF segment duration, seconds (segments end at the first whole frame after it).
    public var segmentDuration: Double = 6
    /// Loudness normalisation of the lossy renditions (FLAC stays bit-exact; its gain is a tag).
    public var normalization = NormalizationConfiguration()
    /// Rate of every lossy rendition.
    public var lossySampleRate = 48_000
    public var resamplerQuality: ResamplerQuality = .high
    /// Waveform zoom levels (samples per pixel at the source rate).
    public var waveformSamplesPerPixel: [Int] = [256, 1024]
    /// Encryption of the CMAF media segments (nil: clear). Progressive files are written as the
    /// ladder asks, in the clear: a caller protecting a track leaves `.progressive` out of its
    /// renditions' outputs unless clear downloads are meant (StreamHost's `protection.progressive`).
    public var protection: SegmentProtection?
    /// Forensic A/B watermarking (nil: none): each lossy CMAF rendition is packaged in two
    /// variants (``WatermarkPackaging``), with segments of ``WatermarkPackaging/segmentDuration``.
    /// The renditions may then have no progressive output and no FLAC.
    public var watermark: WatermarkPackaging?

    public init() {}
}
