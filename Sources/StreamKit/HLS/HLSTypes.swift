/// A parsed or buildable HLS playlist: either a multivariant (master) playlist or a media playlist.
public enum Playlist: Sendable, Hashable {
    /// A multivariant ("master") playlist (EXT-X-STREAM-INF, EXT-X-MEDIA, …).
    case master(MasterPlaylist)
    /// A media playlist (EXTINF, EXT-X-TARGETDURATION, …).
    case media(MediaPlaylist)

    /// Renders the playlist text (see ``MasterPlaylist/render()`` and ``MediaPlaylist/render()``).
    public func render() -> String {
        switch self {
        case .master(let playlist): playlist.render()
        case .media(let playlist): playlist.render()
        }
    }
}

/// A sub-range of a resource: value of EXT-X-BYTERANGE (`<length>[@<offset>]`) and of the
/// BYTERANGE attribute of EXT-X-MAP and EXT-X-PART.
public struct HLSByteRange: Sendable, Hashable {
    /// Number of bytes in the sub-range.
    public var length: Int64
    /// Offset of the first byte; `nil` means "the byte after the previous sub-range of the same resource".
    public var offset: Int64?

    /// Creates a byte range of `length` bytes starting at `offset` (or following the previous one).
    public init(length: Int64, offset: Int64? = nil) {
        self.length = length
        self.offset = offset
    }

    /// `"<length>"` or `"<length>@<offset>"`.
    public var rendered: String {
        offset.map { "\(length)@\($0)" } ?? "\(length)"
    }
}

/// Value of EXT-X-PLAYLIST-TYPE.
public enum PlaylistType: String, Sendable, Hashable, CaseIterable {
    /// `EVENT`: segments may only be appended.
    case event = "EVENT"
    /// `VOD`: the playlist never changes.
    case vod = "VOD"
}

/// Encryption method of EXT-X-KEY / EXT-X-SESSION-KEY (`METHOD` attribute), other than `NONE`.
public enum EncryptionMethod: String, Sendable, Hashable, CaseIterable {
    /// `AES-128`: whole-segment AES-128-CBC.
    case aes128 = "AES-128"
    /// `SAMPLE-AES`: sample encryption (for CMAF, `cbcs`).
    case sampleAES = "SAMPLE-AES"
    /// `SAMPLE-AES-CTR`: sample encryption with `cenc` (rfc8216bis).
    case sampleAESCTR = "SAMPLE-AES-CTR"
}

/// The key information of an EXT-X-KEY or EXT-X-SESSION-KEY tag whose METHOD is not `NONE`.
public struct EncryptionKey: Sendable, Hashable {
    /// Value of `METHOD`.
    public var method: EncryptionMethod
    /// Value of `URI`: where the key (or the key-system data) is obtained.
    public var uri: String
    /// Value of `IV`: the 128-bit initialisation vector, 16 bytes, rendered as `0x` + 32 hex digits.
    public var initializationVector: [UInt8]?
    /// Value of `KEYFORMAT` (for example `"identity"` or `"com.apple.streamingkeydelivery"`).
    public var keyFormat: String?
    /// Value of `KEYFORMATVERSIONS`: slash-separated positive integers.
    public var keyFormatVersions: [Int]?

    /// Creates key information.
    /// - Precondition: `initializationVector`, when given, has 16 bytes.
    public init(method: EncryptionMethod, uri: String, initializationVector: [UInt8]? = nil,
                keyFormat: String? = nil, keyFormatVersions: [Int]? = nil) {
        precondition(initializationVector.map { $0.count == 16 } ?? true, "IV must be 16 bytes")
        self.method = method
        self.uri = uri
        self.initializationVector = initializationVector
        self.keyFormat = keyFormat
        self.keyFormatVersions = keyFormatVersions
    }
}

/// Value of an EXT-X-KEY tag: segments that follow are either in the clear or encrypted.
public enum SegmentEncryption: Sendable, Hashable {
    /// `METHOD=NONE`: the following segments are not encrypted.
    case none
    /// An encryption method with its key information.
    case key(EncryptionKey)
}

/// The EXT-X-MAP tag: the Media Initialization Section (CMAF header, `init.mp4`).
public struct MediaInitialization: Sendable, Hashable {
    /// Value of `URI`.
    public var uri: String
    /// Value of `BYTERANGE` (quoted `"<length>[@<offset>]"`), for single-file addressing.
    public var byteRange: HLSByteRange?

    /// Creates an EXT-X-MAP value.
    public init(uri: String, byteRange: HLSByteRange? = nil) {
        self.uri = uri
        self.byteRange = byteRange
    }
}

/// An EXT-X-PART tag: a partial segment (LL-HLS, rfc8216bis §4.4.4.9).
public struct PartialSegment: Sendable, Hashable {
    /// Value of `URI`.
    public var uri: String
    /// Value of `DURATION` (decimal seconds).
    public var duration: MediaTime
    /// `INDEPENDENT=YES`: the part starts with an independent frame (every audio part does).
    public var independent: Bool
    /// Value of `BYTERANGE` (quoted `"<length>[@<offset>]"`).
    public var byteRange: HLSByteRange?
    /// `GAP=YES`: the part is unavailable.
    public var gap: Bool

    /// Creates a partial segment.
    public init(uri: String, duration: MediaTime, independent: Bool = false,
                byteRange: HLSByteRange? = nil, gap: Bool = false) {
        self.uri = uri
        self.duration = duration
        self.independent = independent
        self.byteRange = byteRange
        self.gap = gap
    }
}

/// A media segment: its EXTINF line, its URI and the tags that apply from it onwards.
public struct MediaSegment: Sendable, Hashable {
    /// The URI line.
    public var uri: String
    /// Duration from EXTINF, exact. Rendered with three decimals.
    public var duration: MediaTime
    /// The optional title after the comma of EXTINF.
    public var title: String
    /// Value of EXT-X-BYTERANGE.
    public var byteRange: HLSByteRange?
    /// EXT-X-DISCONTINUITY before this segment.
    public var discontinuity: Bool
    /// An EXT-X-KEY tag placed before this segment (applies to it and the following ones).
    /// Rendered after this segment's ``map``: the key does not apply to that initialization
    /// section, which stays in the clear (an encrypted initialization section is not modelled).
    public var encryption: SegmentEncryption?
    /// An EXT-X-MAP tag placed before this segment (applies to it and the following ones).
    public var map: MediaInitialization?
    /// Value of EXT-X-PROGRAM-DATE-TIME for the first sample of this segment.
    public var programDateTime: Timestamp?
    /// EXT-X-GAP: the segment is unavailable.
    public var gap: Bool
    /// Value of EXT-X-BITRATE in kb/s (rfc8216bis), applying from this segment on.
    public var bitrateKilobits: Int?
    /// EXT-X-PART tags of this segment (LL-HLS), placed before its EXTINF.
    public var parts: [PartialSegment]

    /// Creates a media segment.
    public init(uri: String, duration: MediaTime, title: String = "", byteRange: HLSByteRange? = nil,
                discontinuity: Bool = false, encryption: SegmentEncryption? = nil,
                map: MediaInitialization? = nil, programDateTime: Timestamp? = nil, gap: Bool = false,
                bitrateKilobits: Int? = nil, parts: [PartialSegment] = []) {
        self.uri = uri
        self.duration = duration
        self.title = title
        self.byteRange = byteRange
        self.discontinuity = discontinuity
        self.encryption = encryption
        self.map = map
        self.programDateTime = programDateTime
        self.gap = gap
        self.bitrateKilobits = bitrateKilobits
        self.parts = parts
    }
}

/// Value of EXT-X-SERVER-CONTROL (LL-HLS, delta updates, blocking reload).
public struct ServerControl: Sendable, Hashable {
    /// Value of `CAN-SKIP-UNTIL`: the Skip Boundary, at least six target durations.
    public var canSkipUntil: MediaTime?
    /// `CAN-SKIP-DATERANGES=YES`.
    public var canSkipDateRanges: Bool
    /// Value of `HOLD-BACK` (at least three target durations).
    public var holdBack: MediaTime?
    /// Value of `PART-HOLD-BACK` (at least twice the part target; three times recommended).
    public var partHoldBack: MediaTime?
    /// `CAN-BLOCK-RELOAD=YES`: the server supports `_HLS_msn` / `_HLS_part` blocking reloads.
    public var canBlockReload: Bool

    /// Creates a server-control value.
    public init(canSkipUntil: MediaTime? = nil, canSkipDateRanges: Bool = false, holdBack: MediaTime? = nil,
                partHoldBack: MediaTime? = nil, canBlockReload: Bool = false) {
        self.canSkipUntil = canSkipUntil
        self.canSkipDateRanges = canSkipDateRanges
        self.holdBack = holdBack
        self.partHoldBack = partHoldBack
        self.canBlockReload = canBlockReload
    }
}

/// Value of EXT-X-SKIP in a Playlist Delta Update.
public struct SkipInformation: Sendable, Hashable {
    /// Value of `SKIPPED-SEGMENTS`.
    public var skippedSegments: Int
    /// Value of `RECENTLY-REMOVED-DATERANGES` (tab-separated IDs); requires version 10.
    public var recentlyRemovedDateRanges: [String]?

    /// Creates skip information.
    public init(skippedSegments: Int, recentlyRemovedDateRanges: [String]? = nil) {
        self.skippedSegments = skippedSegments
        self.recentlyRemovedDateRanges = recentlyRemovedDateRanges
    }
}

/// Value of an EXT-X-PRELOAD-HINT tag.
public struct PreloadHint: Sendable, Hashable {
    /// Value of `TYPE`.
    public enum HintType: String, Sendable, Hashable, CaseIterable {
        /// `PART`: the next partial segment.
        case part = "PART"
        /// `MAP`: the next Media Initialization Section.
        case map = "MAP"
    }
    /// Value of `TYPE`.
    public var type: HintType
    /// Value of `URI`.
    public var uri: String
    /// Value of `BYTERANGE-START`.
    public var byteRangeStart: Int64?
    /// Value of `BYTERANGE-LENGTH`.
    public var byteRangeLength: Int64?

    /// Creates a preload hint.
    public init(type: HintType, uri: String, byteRangeStart: Int64? = nil, byteRangeLength: Int64? = nil) {
        self.type = type
        self.uri = uri
        self.byteRangeStart = byteRangeStart
        self.byteRangeLength = byteRangeLength
    }
}

/// Value of an EXT-X-RENDITION-REPORT tag.
public struct RenditionReport: Sendable, Hashable {
    /// Value of `URI` (relative URI of the other rendition's media playlist).
    public var uri: String
    /// Value of `LAST-MSN`.
    public var lastMediaSequenceNumber: Int64?
    /// Value of `LAST-PART`.
    public var lastPart: Int?

    /// Creates a rendition report.
    public init(uri: String, lastMediaSequenceNumber: Int64? = nil, lastPart: Int? = nil) {
        self.uri = uri
        self.lastMediaSequenceNumber = lastMediaSequenceNumber
        self.lastPart = lastPart
    }
}

/// An HLS media playlist (RFC 8216 §4.3.3, rfc8216bis), VOD, event or live, including LL-HLS tags.
///
/// `EXT-X-VERSION` is not stored: ``render()`` writes the lowest version that the features
/// used allow (``minimumVersion``), and the parser checks a declared version against it.
public struct MediaPlaylist: Sendable, Hashable {
    /// Value of EXT-X-TARGETDURATION in whole seconds (see ``targetDuration(for:)``).
    public var targetDuration: Int64
    /// Value of EXT-X-MEDIA-SEQUENCE: the sequence number of the first segment listed
    /// (the first one after skipped ones count as `mediaSequence + skip.skippedSegments`).
    public var mediaSequence: Int64
    /// Value of EXT-X-DISCONTINUITY-SEQUENCE.
    public var discontinuitySequence: Int64
    /// Value of EXT-X-PLAYLIST-TYPE.
    public var playlistType: PlaylistType?
    /// EXT-X-INDEPENDENT-SEGMENTS.
    public var independentSegments: Bool
    /// Value of EXT-X-PART-INF `PART-TARGET` (LL-HLS).
    public var partTarget: MediaTime?
    /// Value of EXT-X-SERVER-CONTROL.
    public var serverControl: ServerControl?
    /// Value of EXT-X-SKIP (delta updates): segments omitted before ``segments``.
    public var skip: SkipInformation?
    /// The media segments, in order.
    public var segments: [MediaSegment]
    /// EXT-X-PART tags after the last complete segment (the segment being produced).
    public var trailingParts: [PartialSegment]
    /// EXT-X-PRELOAD-HINT tags.
    public var preloadHints: [PreloadHint]
    /// EXT-X-RENDITION-REPORT tags.
    public var renditionReports: [RenditionReport]
    /// EXT-X-ENDLIST: no more segments will be added.
    public var endList: Bool

    /// Creates a media playlist.
    public init(targetDuration: Int64, mediaSequence: Int64 = 0, discontinuitySequence: Int64 = 0,
                playlistType: PlaylistType? = nil, independentSegments: Bool = false,
                partTarget: MediaTime? = nil, serverControl: ServerControl? = nil, skip: SkipInformation? = nil,
                segments: [MediaSegment] = [], trailingParts: [PartialSegment] = [],
                preloadHints: [PreloadHint] = [], renditionReports: [RenditionReport] = [],
                endList: Bool = false) {
        self.targetDuration = targetDuration
        self.mediaSequence = mediaSequence
        self.discontinuitySequence = discontinuitySequence
        self.playlistType = playlistType
        self.independentSegments = independentSegments
        self.partTarget = partTarget
        self.serverControl = serverControl
        self.skip = skip
        self.segments = segments
        self.trailingParts = trailingParts
        self.preloadHints = preloadHints
        self.renditionReports = renditionReports
        self.endList = endList
    }

    /// The value of EXT-X-TARGETDURATION for these durations: the ceiling of the longest one,
    /// computed exactly from the rationals (never less than 1).
    public static func targetDuration(for durations: some Sequence<MediaTime>) -> Int64 {
        durations.reduce(1) { max($0, $1.ceilingSeconds) }
    }

    /// The sum of the listed segments' durations (exact).
    public var totalDuration: MediaTime {
        segments.reduce(MediaTime.zero) { $0 + $1.duration }
    }
}

/// Value of the `TYPE` attribute of EXT-X-MEDIA.
public enum MediaType: String, Sendable, Hashable, CaseIterable {
    /// `AUDIO`.
    case audio = "AUDIO"
    /// `VIDEO`.
    case video = "VIDEO"
    /// `SUBTITLES`.
    case subtitles = "SUBTITLES"
    /// `CLOSED-CAPTIONS`.
    case closedCaptions = "CLOSED-CAPTIONS"
}

/// Value of the `CHANNELS` attribute of EXT-X-MEDIA: a slash-separated list whose first
/// parameter is the channel count (e.g. `"2"`, `"6"`, `"16/JOC"`).
public struct ChannelsAttribute: Sendable, Hashable {
    /// The number of independent, simultaneous audio channels.
    public var count: Int
    /// The remaining parameters (audio coding identifiers, spatial audio flags).
    public var parameters: [String]

    /// Creates a CHANNELS value.
    public init(count: Int, parameters: [String] = []) {
        self.count = count
        self.parameters = parameters
    }

    /// The attribute text, e.g. `"2"` or `"16/JOC"`.
    public var rendered: String {
        ([String(count)] + parameters).joined(separator: "/")
    }
}

/// An EXT-X-MEDIA tag: an alternative rendition.
public struct AlternativeRendition: Sendable, Hashable {
    /// Value of `TYPE`.
    public var type: MediaType
    /// Value of `GROUP-ID`.
    public var groupID: String
    /// Value of `NAME`.
    public var name: String
    /// Value of `URI`; `nil` means the rendition is carried in the variant streams that reference the group.
    public var uri: String?
    /// Value of `LANGUAGE` (RFC 5646 tag).
    public var language: String?
    /// Value of `ASSOC-LANGUAGE`.
    public var associatedLanguage: String?
    /// Value of `STABLE-RENDITION-ID`.
    public var stableRenditionID: String?
    /// `DEFAULT=YES`.
    public var isDefault: Bool
    /// `AUTOSELECT=YES`.
    public var autoselect: Bool
    /// `FORCED=YES` (subtitles only).
    public var forced: Bool
    /// Value of `INSTREAM-ID` (closed captions only).
    public var instreamID: String?
    /// Value of `CHARACTERISTICS` (comma-separated UTIs).
    public var characteristics: [String]?
    /// Value of `CHANNELS` (audio).
    public var channels: ChannelsAttribute?
    /// Value of `SAMPLE-RATE` in Hz (audio, rfc8216bis).
    public var sampleRate: Int?
    /// Value of `BIT-DEPTH` (audio, rfc8216bis).
    public var bitDepth: Int?

    /// Creates an EXT-X-MEDIA value.
    public init(type: MediaType, groupID: String, name: String, uri: String? = nil, language: String? = nil,
                associatedLanguage: String? = nil, stableRenditionID: String? = nil, isDefault: Bool = false,
                autoselect: Bool = false, forced: Bool = false, instreamID: String? = nil,
                characteristics: [String]? = nil, channels: ChannelsAttribute? = nil,
                sampleRate: Int? = nil, bitDepth: Int? = nil) {
        self.type = type
        self.groupID = groupID
        self.name = name
        self.uri = uri
        self.language = language
        self.associatedLanguage = associatedLanguage
        self.stableRenditionID = stableRenditionID
        self.isDefault = isDefault
        self.autoselect = autoselect
        self.forced = forced
        self.instreamID = instreamID
        self.characteristics = characteristics
        self.channels = channels
        self.sampleRate = sampleRate
        self.bitDepth = bitDepth
    }
}

/// An EXT-X-STREAM-INF tag and its URI: a variant stream.
public struct VariantStream: Sendable, Hashable {
    /// The URI line (the variant's media playlist).
    public var uri: String
    /// Value of `BANDWIDTH`: the peak segment bit rate.
    public var bandwidth: Bitrate
    /// Value of `AVERAGE-BANDWIDTH`: the average segment bit rate.
    public var averageBandwidth: Bitrate?
    /// Value of `CODECS`: RFC 6381 codec strings (`mp4a.40.2`, `opus`, `fLaC`).
    public var codecs: [String]
    /// Value of `SCORE` (rfc8216bis), a decimal-floating-point rank.
    public var score: MediaTime?
    /// Value of `AUDIO`: the GROUP-ID of an EXT-X-MEDIA TYPE=AUDIO group.
    public var audioGroup: String?
    /// Value of `STABLE-VARIANT-ID`.
    public var stableVariantID: String?

    /// Creates a variant stream.
    public init(uri: String, bandwidth: Bitrate, averageBandwidth: Bitrate? = nil, codecs: [String] = [],
                score: MediaTime? = nil, audioGroup: String? = nil, stableVariantID: String? = nil) {
        self.uri = uri
        self.bandwidth = bandwidth
        self.averageBandwidth = averageBandwidth
        self.codecs = codecs
        self.score = score
        self.audioGroup = audioGroup
        self.stableVariantID = stableVariantID
    }
}

/// An HLS multivariant ("master") playlist.
public struct MasterPlaylist: Sendable, Hashable {
    /// EXT-X-INDEPENDENT-SEGMENTS (applies to every media playlist).
    public var independentSegments: Bool
    /// EXT-X-SESSION-KEY tags: keys clients may preload.
    public var sessionKeys: [EncryptionKey]
    /// EXT-X-MEDIA tags.
    public var renditions: [AlternativeRendition]
    /// EXT-X-STREAM-INF tags with their URIs, in order of preference.
    public var variants: [VariantStream]

    /// Creates a multivariant playlist.
    public init(independentSegments: Bool = false, sessionKeys: [EncryptionKey] = [],
                renditions: [AlternativeRendition] = [], variants: [VariantStream] = []) {
        self.independentSegments = independentSegments
        self.sessionKeys = sessionKeys
        self.renditions = renditions
        self.variants = variants
    }
}
