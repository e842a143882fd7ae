/// A DASH Media Presentation Description (ISO/IEC 23009-1), as pure values.
public struct MPD: Sendable, Hashable {
    /// Static (VOD) or dynamic (live) presentation, with the timing attributes each requires.
    public enum PresentationType: Sendable, Hashable {
        /// `type="static"` with `@mediaPresentationDuration`.
        case `static`(mediaPresentationDuration: MediaTime)
        /// `type="dynamic"` with its timing.
        case dynamic(DynamicTiming)
    }

    /// Timing of a dynamic MPD. All instants are passed in: StreamKit reads no clock.
    public struct DynamicTiming: Sendable, Hashable {
        /// `@availabilityStartTime`: wall-clock time of media time 0 of the first period.
        public var availabilityStartTime: Timestamp
        /// `@publishTime`: when this version of the MPD was generated.
        public var publishTime: Timestamp
        /// `@minimumUpdatePeriod`: how often clients should reload.
        public var minimumUpdatePeriod: MediaTime
        /// `@timeShiftBufferDepth`: the DVR window.
        public var timeShiftBufferDepth: MediaTime
        /// `@suggestedPresentationDelay`, if any.
        public var suggestedPresentationDelay: MediaTime?

        /// Creates dynamic timing.
        public init(availabilityStartTime: Timestamp, publishTime: Timestamp, minimumUpdatePeriod: MediaTime,
                    timeShiftBufferDepth: MediaTime, suggestedPresentationDelay: MediaTime? = nil) {
            self.availabilityStartTime = availabilityStartTime
            self.publishTime = publishTime
            self.minimumUpdatePeriod = minimumUpdatePeriod
            self.timeShiftBufferDepth = timeShiftBufferDepth
            self.suggestedPresentationDelay = suggestedPresentationDelay
        }
    }

    /// The profiles StreamKit produces: ISO BMFF live and CMAF.
    public static let liveAndCMAFProfiles = ["urn:mpeg:dash:profile:isoff-live:2011", "urn:mpeg:dash:profile:cmaf:2019"]

    /// The profile used when a rendition is addressed by byte ranges into one file (`SegmentList`),
    /// which the live and CMAF profiles do not allow.
    public static let mainProfiles = ["urn:mpeg:dash:profile:isoff-main:2011"]

    /// `@type` and its timing.
    public var type: PresentationType
    /// `@profiles`.
    public var profiles: [String]
    /// `@minBufferTime`.
    public var minBufferTime: MediaTime
    /// `BaseURL` of the MPD, if any.
    public var baseURL: String?
    /// The periods (one for StreamKit's output).
    public var periods: [Period]
    /// `UTCTiming` elements for dynamic presentations (clients synchronise their clock with them).
    public var utcTimings: [Descriptor]
    /// `ServiceDescription/Latency@target`: the live latency players should keep (low-latency
    /// DASH), if any.
    public var targetLatency: MediaTime?

    /// Creates an MPD.
    public init(type: PresentationType, profiles: [String] = MPD.liveAndCMAFProfiles, minBufferTime: MediaTime,
                baseURL: String? = nil, periods: [Period], utcTimings: [Descriptor] = [], targetLatency: MediaTime? = nil) {
        self.type = type
        self.profiles = profiles
        self.minBufferTime = minBufferTime
        self.baseURL = baseURL
        self.periods = periods
        self.utcTimings = utcTimings
        self.targetLatency = targetLatency
    }
}

/// A generic descriptor element (`schemeIdUri` + `value`), used for AudioChannelConfiguration, UTCTiming, Role.
public struct Descriptor: Sendable, Hashable {
    /// `@schemeIdUri`.
    public var schemeIdURI: String
    /// `@value`.
    public var value: String?

    /// Creates a descriptor.
    public init(schemeIdURI: String, value: String? = nil) {
        self.schemeIdURI = schemeIdURI
        self.value = value
    }

    /// The `InbandEventStream` of ID3 timed metadata in `emsg` boxes (AOM "Carriage of ID3
    /// Timed Metadata in CMAF": `https://aomedia.org/emsg/ID3`).
    public static let id3TimedMetadata = Descriptor(schemeIdURI: "https://aomedia.org/emsg/ID3")

    /// AudioChannelConfiguration with the 23009-1 scheme (`value` = channel count).
    public static func channelCount(_ count: Int) -> Descriptor {
        Descriptor(schemeIdURI: "urn:mpeg:dash:23003:3:audio_channel_configuration:2011", value: String(count))
    }

    /// UTCTiming carried in the MPD itself (`urn:mpeg:dash:utc:direct:2014`): the server's time
    /// when it rendered the MPD.
    public static func directTiming(_ now: Timestamp) -> Descriptor {
        Descriptor(schemeIdURI: "urn:mpeg:dash:utc:direct:2014", value: now.iso8601)
    }

    /// UTCTiming by HTTP GET of an ISO 8601 time.
    public static func httpISOTiming(url: String) -> Descriptor {
        Descriptor(schemeIdURI: "urn:mpeg:dash:utc:http-iso:2014", value: url)
    }
}

/// A ContentProtection slot (ISO/IEC 23009-1 §5.8.4.1, CENC `default_KID` and `pssh`).
public struct ContentProtection: Sendable, Hashable {
    /// `@schemeIdUri`: `urn:mpeg:dash:mp4protection:2011` or a DRM system's `urn:uuid:…`.
    public var schemeIdURI: String
    /// `@value`: for mp4protection, the scheme (`cenc`, `cbcs`).
    public var value: String?
    /// `@cenc:default_KID`: the key ID as a UUID string.
    public var defaultKID: String?
    /// `cenc:pssh` element content (base64 PSSH box).
    public var psshBase64: String?

    /// Creates a ContentProtection descriptor.
    public init(schemeIdURI: String, value: String? = nil, defaultKID: String? = nil, psshBase64: String? = nil) {
        self.schemeIdURI = schemeIdURI
        self.value = value
        self.defaultKID = defaultKID
        self.psshBase64 = psshBase64
    }

    /// The common-encryption descriptor for a scheme (`cenc` or `cbcs`) and key ID.
    public static func mp4Protection(scheme: String, defaultKID: String?) -> ContentProtection {
        ContentProtection(schemeIdURI: "urn:mpeg:dash:mp4protection:2011", value: scheme, defaultKID: defaultKID)
    }
}

/// A Period.
public struct Period: Sendable, Hashable {
    /// `@id`.
    public var id: String
    /// `@start` (required for dynamic MPDs).
    public var start: MediaTime?
    /// The adaptation sets, one per codec group.
    public var adaptationSets: [AdaptationSet]

    /// Creates a period.
    public init(id: String, start: MediaTime? = nil, adaptationSets: [AdaptationSet]) {
        self.id = id
        self.start = start
        self.adaptationSets = adaptationSets
    }
}

/// An AdaptationSet: switchable representations of one codec group.
public struct AdaptationSet: Sendable, Hashable {
    /// `@id`.
    public var id: Int
    /// `@contentType` (`audio`).
    public var contentType: String
    /// `@mimeType` (`audio/mp4`).
    public var mimeType: String
    /// `@lang`.
    public var language: String?
    /// `@segmentAlignment`: segment boundaries are at the same times in every representation.
    public var segmentAlignment: Bool
    /// `ContentProtection` descriptors.
    public var contentProtections: [ContentProtection]
    /// `Role` descriptors (e.g. `urn:mpeg:dash:role:2011` / `main`).
    public var roles: [Descriptor]
    /// `InbandEventStream` descriptors: event schemes carried in `emsg` boxes of the segments
    /// (for example ``Descriptor/id3TimedMetadata``).
    public var inbandEventStreams: [Descriptor]
    /// The representations, in ascending bandwidth.
    public var representations: [Representation]

    /// Creates an adaptation set.
    public init(id: Int, contentType: String = "audio", mimeType: String = "audio/mp4", language: String? = nil,
                segmentAlignment: Bool = true, contentProtections: [ContentProtection] = [], roles: [Descriptor] = [],
                inbandEventStreams: [Descriptor] = [], representations: [Representation]) {
        self.id = id
        self.contentType = contentType
        self.mimeType = mimeType
        self.language = language
        self.segmentAlignment = segmentAlignment
        self.contentProtections = contentProtections
        self.roles = roles
        self.inbandEventStreams = inbandEventStreams
        self.representations = representations
    }
}

/// A Representation.
public struct Representation: Sendable, Hashable {
    /// `@id`.
    public var id: String
    /// `@bandwidth` in bits per second.
    public var bandwidth: Bitrate
    /// `@codecs` (RFC 6381).
    public var codecs: String
    /// `@audioSamplingRate` in Hz.
    public var audioSamplingRate: Int
    /// AudioChannelConfiguration descriptors.
    public var audioChannelConfigurations: [Descriptor]
    /// How segments are addressed.
    public var segments: SegmentReference

    /// Creates a representation.
    public init(id: String, bandwidth: Bitrate, codecs: String, audioSamplingRate: Int,
                audioChannelConfigurations: [Descriptor], segments: SegmentReference) {
        self.id = id
        self.bandwidth = bandwidth
        self.codecs = codecs
        self.audioSamplingRate = audioSamplingRate
        self.audioChannelConfigurations = audioChannelConfigurations
        self.segments = segments
    }
}

/// How a representation's segments are addressed.
public enum SegmentReference: Sendable, Hashable {
    /// `SegmentTemplate` with a `SegmentTimeline` (isoff-live, CMAF).
    case template(SegmentTemplate)
    /// `SegmentList` with `mediaRange`s into one file (single-file addressing).
    case list(SegmentList)
    /// `SegmentList` naming each segment's file (`Initialization@sourceURL`, `SegmentURL@media`).
    case files(SegmentFileList)
}

/// A `SegmentTemplate` element with its `SegmentTimeline`.
public struct SegmentTemplate: Sendable, Hashable {
    /// `@timescale`.
    public var timescale: Int32
    /// `@initialization` template.
    public var initialization: String
    /// `@media` template.
    public var media: String
    /// `@startNumber`.
    public var startNumber: Int64
    /// `@presentationTimeOffset`, if not zero.
    public var presentationTimeOffset: Int64?
    /// `SegmentTimeline` entries, in the template's timescale.
    public var timeline: [TimelineEntry]
    /// `@availabilityTimeOffset`: how long before its end a segment can be requested (low-latency
    /// DASH: a segment sent in chunks as it is encoded is available once its first chunk is).
    public var availabilityTimeOffset: MediaTime?
    /// `@availabilityTimeComplete`: false when segments are sent in chunks as they are encoded.
    public var availabilityTimeComplete: Bool?

    /// Creates a segment template.
    public init(timescale: Int32, initialization: String, media: String, startNumber: Int64,
                presentationTimeOffset: Int64? = nil, timeline: [TimelineEntry],
                availabilityTimeOffset: MediaTime? = nil, availabilityTimeComplete: Bool? = nil) {
        self.timescale = timescale
        self.initialization = initialization
        self.media = media
        self.startNumber = startNumber
        self.presentationTimeOffset = presentationTimeOffset
        self.timeline = timeline
        self.availabilityTimeOffset = availabilityTimeOffset
        self.availabilityTimeComplete = availabilityTimeComplete
    }
}

/// An `S` element: `repeatCount + 1` consecutive segments of `duration`, the first at `time`.
public struct TimelineEntry: Sendable, Hashable {
    /// `@t`: start time; `nil` means "where the previous entry ended".
    public var time: Int64?
    /// `@d`: duration of each segment.
    public var duration: Int64
    /// `@r`: number of repeats after the first (0 = one segment).
    public var repeatCount: Int

    /// Creates a timeline entry.
    public init(time: Int64?, duration: Int64, repeatCount: Int = 0) {
        self.time = time
        self.duration = duration
        self.repeatCount = repeatCount
    }

    /// Run-length encodes segments into `S` elements: `@t` on the first and after any gap.
    public static func timeline(for segments: some Sequence<SegmentInfo>) -> [TimelineEntry] {
        var entries: [TimelineEntry] = []
        var expectedStart: Int64?
        for segment in segments {
            if let last = entries.last, expectedStart == segment.start, last.duration == segment.duration {
                entries[entries.count - 1].repeatCount += 1
            } else {
                entries.append(TimelineEntry(time: expectedStart == segment.start ? nil : segment.start,
                                             duration: segment.duration))
            }
            expectedStart = segment.start + segment.duration
        }
        return entries
    }
}

/// A `SegmentList` with `Initialization@range` and `SegmentURL@mediaRange` into one file.
public struct SegmentList: Sendable, Hashable {
    /// `@timescale`.
    public var timescale: Int32
    /// `SegmentTimeline` entries: exact durations in `timescale`.
    public var timeline: [TimelineEntry]
    /// `@startNumber`.
    public var startNumber: Int64
    /// The file (emitted as the Representation's `BaseURL`).
    public var uri: String
    /// `Initialization@range` as inclusive first and last byte.
    public var initializationRange: ClosedRange<Int64>
    /// `SegmentURL@mediaRange` for each segment, inclusive.
    public var mediaRanges: [ClosedRange<Int64>]

    /// Creates a segment list.
    public init(timescale: Int32, timeline: [TimelineEntry], startNumber: Int64, uri: String,
                initializationRange: ClosedRange<Int64>, mediaRanges: [ClosedRange<Int64>]) {
        self.timescale = timescale
        self.timeline = timeline
        self.startNumber = startNumber
        self.uri = uri
        self.initializationRange = initializationRange
        self.mediaRanges = mediaRanges
    }
}

/// A `SegmentList` that names every segment's file: `Initialization@sourceURL` and one
/// `SegmentURL@media` per segment, with a `SegmentTimeline`.
public struct SegmentFileList: Sendable, Hashable {
    /// `@timescale`.
    public var timescale: Int32
    /// `SegmentTimeline` entries: exact durations in `timescale`.
    public var timeline: [TimelineEntry]
    /// `@startNumber`.
    public var startNumber: Int64
    /// `Initialization@sourceURL`.
    public var initialization: String
    /// `SegmentURL@media` of each segment, in order.
    public var media: [String]

    /// Creates a segment list of named files.
    public init(timescale: Int32, timeline: [TimelineEntry], startNumber: Int64, initialization: String, media: [String]) {
        self.timescale = timescale
        self.timeline = timeline
        self.startNumber = startNumber
        self.initialization = initialization
        self.media = media
    }
}
