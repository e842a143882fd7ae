public import MediaCore
public import StreamKit

/// `manifest.json`: the published index of one track version (DESIGN §3), written last so that
/// a track is visible only when every object it names exists. Manifests and playlists are
/// rendered from it.
public struct TrackManifest: Sendable, Hashable, Codable {
    /// One CMAF media segment: the packager's own shape (MediaCore's `PackagedSegment`), stored as is.
    public typealias Segment = PackagedSegment

    public var version: Int = 1
    public var durationSeconds: Double
    public var sampleRate: Int
    public var probe: MediaProbe
    public var loudness: LoudnessReport
    public var normalizedLoudness: LoudnessReport
    public var gainDB: Double
    public var limiterMaximumGainReductionDB: Double
    public var renditions: [PublishedRendition]
    public var waveforms: [String]
    /// How the CMAF segments are encrypted (nil: clear). Names the key, never holds it.
    public var protection: PublishedProtection?
    /// Forensic A/B watermarking, when the track has it: each playback session's media
    /// playlists take each segment from variant A or B (``mediaPlaylist(rendition:base:query:variants:)``).
    public var watermark: PublishedWatermark?

    public init(report: PackageReport) {
        durationSeconds = Double(report.frameCount) / Double(report.probe.sampleRate)
        sampleRate = report.probe.sampleRate
        probe = report.probe
        loudness = report.sourceLoudness
        normalizedLoudness = report.normalizedLoudness
        gainDB = report.normalization.gain
        limiterMaximumGainReductionDB = report.normalization.maximumGainReduction
        waveforms = report.waveformPaths
        renditions = report.renditions.map { r in
            PublishedRendition(id: r.id, codec: r.codec.rawValue, codecs: r.codecString, sampleRate: r.sampleRate,
                      channelCount: r.channelCount, timescale: r.timescale, bitsPerSample: r.bitsPerSample,
                      targetBitrate: r.targetBitrate?.bitsPerSecond, initSegment: r.initSegment?.path,
                      initSegmentByteSize: r.initSegment?.byteSize,
                      segments: r.segments,
                      progressive: r.progressive?.path, progressiveByteSize: r.progressive?.byteSize,
                      progressiveMimeType: r.progressive?.mimeType,
                      variantSegments: r.variantSegments.isEmpty ? nil : r.variantSegments, priming: r.priming)
        }
    }

    /// The CMAF renditions as StreamKit models, with segment URIs relative to `base`
    /// (e.g. `""` for files beside the manifest, `"../../media/{id}/v1/"` when served), and
    /// `query` (a signed-URL token) added to every segment template.
    public func streamKitRenditions(base: String = "", query: (name: String, value: String)? = nil,
                                    variants: [Bool]? = nil) -> [StreamKit.Rendition] {
        func uri(_ path: String) -> String {
            guard let query else { return base + path }
            return QueryRewriter.adding(name: query.name, value: query.value, to: base + path)
        }
        return renditions.compactMap { r in
            guard let initSegment = r.initSegment, !r.segments.isEmpty else { return nil }
            return StreamKit.Rendition(
                id: r.id, codec: AudioCodec(codecsString: r.codecs), sampleRate: r.sampleRate, channelCount: r.channelCount,
                timescale: Int32(r.timescale),
                addressing: variants.map { bits in
                    // Watermarked: segment k from variant B where the session's bit k is set.
                    let alternate = r.variantSegments ?? []
                    return .files(initialization: uri(initSegment), media: r.segments.indices.map { k in
                        uri(k < bits.count && bits[k] && k < alternate.count ? alternate[k].path : r.segments[k].path)
                    })
                } ?? .template(initialization: uri(initSegment), media: uri(TrackLayout.segmentTemplate)),
                segments: r.segments.map { SegmentInfo(number: Int64($0.number), start: $0.start, duration: Int64($0.duration), byteSize: Int64($0.byteSize)) })
        }
    }

    /// The switching sets of the CMAF renditions (one per codec family in the default ladder:
    /// `aac`, `opus`, `flac`), in ladder order. Each gets its own multivariant playlist.
    public var hlsSwitchingSets: [SwitchingSet] {
        SwitchingSet.partition(streamKitRenditions())
    }

    /// The switching set `master.m3u8` plays: AAC's when the track has it (the most widely
    /// playable: every browser, Apple's players, GStreamer, ffmpeg), else the first.
    public var defaultHLSSwitchingSet: String? {
        let sets = hlsSwitchingSets.map(\.id)
        return sets.first { $0 == "aac" } ?? sets.first { $0.hasPrefix("aac-") } ?? sets.first
    }

    /// The file name of the multivariant playlist of switching set `id` (`master-opus.m3u8`), or
    /// `master.m3u8` for nil (the default set). Ladder rendition ids never start with `master`.
    public static func masterPlaylistName(_ id: String?) -> String {
        id.map { "master-\($0).m3u8" } ?? "master.m3u8"
    }

    /// The HLS multivariant playlist of one switching set (nil: ``defaultHLSSwitchingSet``), or nil
    /// when the track has no such set; `query` is added to every media playlist URI. One codec per
    /// playlist: players cannot switch codec mid-stream (see StreamKit's `SwitchingSet`).
    public func masterPlaylist(switchingSet id: String? = nil, base: String = "", query: (name: String, value: String)? = nil,
                               mediaPlaylistURI: (String) -> String = { "\($0).m3u8" }) throws(ManifestBuildError) -> String? {
        guard playsOverHLS else { return nil }
        let sets = SwitchingSet.partition(streamKitRenditions(base: base))
        guard let wanted = id ?? defaultHLSSwitchingSet, let set = sets.first(where: { $0.id == wanted }) else {
            if sets.isEmpty { throw ManifestBuildError(renditionID: nil, kind: .noRenditions) }
            return nil
        }
        let master = try MasterPlaylist.make(renditions: set.renditions, mediaPlaylistURI: { mediaPlaylistURI($0.id) })
        guard let query else { return master.render() }
        return master.addingQueryItem(name: query.name, value: query.value).render()
    }

    /// The HLS media playlist of one rendition (nil if it has no CMAF output); `query` is
    /// added to the init segment and every media segment URI.
    ///
    /// A protected track's playlist (``protection``) has an `EXT-X-KEY` before each segment,
    /// `METHOD=AES-128` with the segment's IV and the URI `key/{keyID}` (beside the playlist:
    /// `/hls/{id}/key/{keyID}` when served), which carries `query` too.
    ///
    /// A watermarked track's (``watermark``) segment `k` (from 0) is variant B's where
    /// `variants[k]` is true and variant A's otherwise: the playback session's code.
    public func mediaPlaylist(rendition id: String, base: String = "", query: (name: String, value: String)? = nil,
                              variants: [Bool]? = nil) throws(ManifestBuildError) -> String? {
        guard playsOverHLS, let rendition = streamKitRenditions(base: base, variants: variants).first(where: { $0.id == id }) else { return nil }
        var playlist = try MediaPlaylist.vod(rendition)
        if let query { playlist = playlist.addingQueryItem(name: query.name, value: query.value, scope: .relativeAndHTTP) }
        if let protection, protection.scheme == .aes128 {
            var uri = PublishedProtection.keyPath(protection.keyID)
            if let query { uri = QueryRewriter.adding(name: query.name, value: query.value, to: uri) }
            for (index, segment) in rendition.segments.enumerated() {
                playlist.segments[index].encryption = .key(EncryptionKey(
                    method: .aes128, uri: uri, initializationVector: AES128Segments.iv(segmentNumber: Int(segment.number))))
            }
        }
        return playlist.render()
    }

    /// The DASH MPD over every CMAF rendition; `query` is added to the segment templates. A
    /// watermarked track's (``watermark``) needs the session's `variants` (as
    /// ``mediaPlaylist(rendition:base:query:variants:)``) and lists each segment's file; nil without.
    /// Nil for a track protected with HLS AES-128, a scheme DASH players cannot decrypt. A `cenc`
    /// or `cbcs` track's adaptation sets carry `ContentProtection`: `mp4protection` with the scheme
    /// and its `cenc:default_KID`, W3C ClearKey and the common system.
    public func mpd(base: String = "", query: (name: String, value: String)? = nil, variants: [Bool]? = nil) throws(ManifestBuildError) -> String? {
        // A watermarked track's MPD names each segment's file (a SegmentList): per session.
        guard watermark == nil || variants != nil else { return nil }
        var mpd = try MPD.vod(renditions: streamKitRenditions(base: base, query: query, variants: variants))
        switch protection?.method {
        case nil: break
        case let scheme? where protection!.isCommonEncryption:
            let kid = protection!.uuidKeyID
            for period in mpd.periods.indices {
                for set in mpd.periods[period].adaptationSets.indices {
                    mpd.periods[period].adaptationSets[set].contentProtections = [
                        .mp4Protection(scheme: scheme, defaultKID: kid),
                        ContentProtection(schemeIdURI: "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e", value: "ClearKey1.0"),
                        ContentProtection(schemeIdURI: "urn:uuid:1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"),
                    ]
                }
            }
        default: return nil
        }
        return mpd.render()
    }

    /// Whether HLS players can play this track (clear or AES-128; `cenc` and `cbcs` are served
    /// as DASH only).
    public var playsOverHLS: Bool { !(protection?.isCommonEncryption ?? false) }
}

/// How a published track's segments are protected, as `manifest.json` records it: the method
/// and the key's id (the key itself is in the key service only).
public struct PublishedProtection: Sendable, Hashable, Codable {
    /// `aes-128`, `cenc` or `cbcs` (``ProtectionConfiguration/Method``).
    public var method: String
    /// 32 hex digits naming the content key.
    public var keyID: String

    public init(method: String, keyID: String) {
        self.method = method
        self.keyID = keyID
    }

    enum CodingKeys: String, CodingKey {
        case method
        case keyID = "keyId"
    }

    /// The method as the host's enumeration (nil for one this host does not know).
    public var scheme: ProtectionConfiguration.Method? { ProtectionConfiguration.Method(rawValue: method) }

    /// Common Encryption (`cenc` or `cbcs`): the DASH schemes.
    public var isCommonEncryption: Bool { scheme == .cenc || scheme == .cbcs }

    /// The key's URI relative to a media playlist: `key/{keyID}`.
    public static func keyPath(_ keyID: String) -> String { "key/" + keyID }

    /// The key id as a UUID (`8-4-4-4-12` hex), as DASH's `cenc:default_KID` writes it.
    public var uuidKeyID: String {
        let hex = Array(keyID)
        guard hex.count == 32 else { return keyID }
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(hex[$0]) }.joined(separator: "-")
    }
}

/// One rendition as `manifest.json` records it once published: the packager's
/// MediaCore's `PackagedRendition` in a stable JSON shape (paths relative to the version folder,
/// codec strings, sizes). The other rendition types: MediaCore's `LadderRendition` (what to
/// encode) and `PackagedRendition` (what was made), StreamKit's `Rendition` (the manifest model
/// built from this one by ``TrackManifest/streamKitRenditions(base:query:variants:)``).
public struct PublishedRendition: Sendable, Hashable, Codable {
    public var id: String
    /// The codec (`aac`, `opus`, `mp3`, `flac`).
    public var codec: String
    /// RFC 6381 codecs string.
    public var codecs: String
    public var sampleRate: Int
    public var channelCount: Int
    /// Units per second of segment starts and durations.
    public var timescale: Int
    public var bitsPerSample: Int
    public var targetBitrate: Int?
    /// `cmaf/{id}/init.mp4`, when CMAF was made.
    public var initSegment: String?
    public var initSegmentByteSize: Int?
    public var segments: [TrackManifest.Segment]
    /// `progressive/{id}.{ext}`, when a progressive file was made.
    public var progressive: String?
    public var progressiveByteSize: Int?
    public var progressiveMimeType: String?
    /// A watermarked track: variant B of each segment (``segments`` are variant A), same
    /// numbers and durations (absent otherwise).
    public var variantSegments: [TrackManifest.Segment]?
    /// Priming in timescale units (AAC's encoder delay, Opus' pre-skip): segment `k` holds the
    /// source's audio from `start − priming`. Absent in manifests written before it was kept.
    public var priming: Int?
}

/// How a watermarked track was packaged (``TrackManifest/watermark``): what the detector needs
/// besides the track's key.
public struct PublishedWatermark: Sendable, Hashable, Codable {
    /// The embedding's layout and strength.
    public var parameters: WatermarkParameters
    /// Target segment duration, seconds: one bit per segment.
    public var segmentDuration: Double

    public init(parameters: WatermarkParameters, segmentDuration: Double) {
        self.parameters = parameters
        self.segmentDuration = segmentDuration
    }
}
