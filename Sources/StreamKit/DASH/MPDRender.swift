extension MediaTime {
    /// The xs:duration rendering used by MPD attributes, e.g. `PT1H0M3.5S`, `PT6S`, `PT0S`
    /// (seconds rounded half-up to milliseconds).
    public var xsDuration: String {
        let millis = rounded(toUnitsPerSecond: 1000)
        let negative = millis < 0
        var rest = millis.magnitude
        let hours = rest / 3_600_000
        rest %= 3_600_000
        let minutes = rest / 60_000
        rest %= 60_000
        var text = negative ? "-PT" : "PT"
        if hours > 0 { text += "\(hours)H" }
        if hours > 0 || minutes > 0 { text += "\(minutes)M" }
        text += MediaTime(value: Int64(rest), timescale: 1000).compactDecimalString(maximumFractionDigits: 3) + "S"
        return text
    }
}

/// XML escaping for MPD rendering.
enum XMLText {
    /// Escapes an attribute value (double-quoted): `& < > " '` and whitespace controls as character references.
    static func attribute(_ value: String) -> String {
        guard value.contains(where: { "&<>\"'\t\n\r\r\n".contains($0) || ($0.asciiValue.map { $0 < 0x20 } ?? false) }) else {
            return value
        }
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t": out += "&#9;"
            case "\n": out += "&#10;"
            case "\r": out += "&#13;"
            default:
                // Other C0 controls are not allowed in XML 1.0 at all: drop them.
                if scalar.value < 0x20 { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Escapes character data.
    static func text(_ value: String) -> String {
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            default:
                if scalar.value < 0x20 && scalar != "\t" && scalar != "\n" && scalar != "\r" { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// Accumulates XML with two-space indentation.
struct XMLWriter {
    var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    var depth = 0

    mutating func open(_ name: String, _ attributes: [(String, String?)], selfClosing: Bool = false) {
        out += String(repeating: "  ", count: depth) + "<" + name
        for (key, value) in attributes {
            guard let value else { continue }
            out += " \(key)=\"\(XMLText.attribute(value))\""
        }
        if selfClosing {
            out += "/>\n"
        } else {
            out += ">\n"
            depth += 1
        }
    }

    mutating func close(_ name: String) {
        depth -= 1
        out += String(repeating: "  ", count: depth) + "</\(name)>\n"
    }

    mutating func element(_ name: String, text: String) {
        out += String(repeating: "  ", count: depth) + "<\(name)>\(XMLText.text(text))</\(name)>\n"
    }
}

extension MPD {
    /// Renders the MPD as XML (UTF-8, namespace `urn:mpeg:dash:schema:mpd:2011`), with elements
    /// in the order the MPD schema requires.
    public func render() -> String {
        var xml = XMLWriter()
        let usesCENC = periods.contains { period in
            period.adaptationSets.contains { set in
                set.contentProtections.contains { $0.defaultKID != nil || $0.psshBase64 != nil }
            }
        }
        var attributes: [(String, String?)] = [
            ("xmlns", "urn:mpeg:dash:schema:mpd:2011"),
            ("xmlns:cenc", usesCENC ? "urn:mpeg:cenc:2013" : nil),
            ("profiles", profiles.joined(separator: ",")),
        ]
        switch type {
        case .static(let duration):
            attributes += [("type", "static"), ("mediaPresentationDuration", duration.xsDuration)]
        case .dynamic(let timing):
            attributes += [
                ("type", "dynamic"),
                ("availabilityStartTime", timing.availabilityStartTime.iso8601),
                ("publishTime", timing.publishTime.iso8601),
                ("minimumUpdatePeriod", timing.minimumUpdatePeriod.xsDuration),
                ("timeShiftBufferDepth", timing.timeShiftBufferDepth.xsDuration),
                ("suggestedPresentationDelay", timing.suggestedPresentationDelay?.xsDuration),
            ]
        }
        attributes.append(("minBufferTime", minBufferTime.xsDuration))
        xml.open("MPD", attributes)
        if let baseURL { xml.element("BaseURL", text: baseURL) }
        if let targetLatency {
            xml.open("ServiceDescription", [("id", "0")])
            xml.open("Latency", [("target", String(targetLatency.rounded(toUnitsPerSecond: 1000)))], selfClosing: true)
            xml.close("ServiceDescription")
        }
        for period in periods {
            xml.open("Period", [("id", period.id), ("start", period.start?.xsDuration)])
            for set in period.adaptationSets {
                xml.open("AdaptationSet", [
                    ("id", String(set.id)), ("contentType", set.contentType), ("mimeType", set.mimeType),
                    ("lang", set.language), ("segmentAlignment", set.segmentAlignment ? "true" : nil),
                    ("startWithSAP", "1"),
                ])
                for protection in set.contentProtections { Self.render(protection, into: &xml) }
                for events in set.inbandEventStreams {
                    xml.open("InbandEventStream", [("schemeIdUri", events.schemeIdURI), ("value", events.value)], selfClosing: true)
                }
                for role in set.roles {
                    xml.open("Role", [("schemeIdUri", role.schemeIdURI), ("value", role.value)], selfClosing: true)
                }
                for representation in set.representations {
                    xml.open("Representation", [
                        ("id", representation.id), ("bandwidth", String(representation.bandwidth.bitsPerSecond)),
                        ("codecs", representation.codecs),
                        ("audioSamplingRate", String(representation.audioSamplingRate)),
                    ])
                    for channels in representation.audioChannelConfigurations {
                        xml.open("AudioChannelConfiguration",
                                 [("schemeIdUri", channels.schemeIdURI), ("value", channels.value)], selfClosing: true)
                    }
                    switch representation.segments {
                    case .template(let template):
                        xml.open("SegmentTemplate", [
                            ("timescale", String(template.timescale)),
                            ("presentationTimeOffset", template.presentationTimeOffset.map(String.init)),
                            ("initialization", template.initialization), ("media", template.media),
                            ("startNumber", String(template.startNumber)),
                            ("availabilityTimeOffset", template.availabilityTimeOffset?.compactDecimalString(maximumFractionDigits: 3)),
                            ("availabilityTimeComplete", template.availabilityTimeComplete.map { $0 ? "true" : "false" }),
                        ])
                        Self.render(template.timeline, into: &xml)
                        xml.close("SegmentTemplate")
                    case .list(let list):
                        xml.element("BaseURL", text: list.uri)
                        xml.open("SegmentList", [("timescale", String(list.timescale)), ("startNumber", String(list.startNumber))])
                        xml.open("Initialization", [("range", Self.range(list.initializationRange))], selfClosing: true)
                        Self.render(list.timeline, into: &xml)
                        for range in list.mediaRanges {
                            xml.open("SegmentURL", [("mediaRange", Self.range(range))], selfClosing: true)
                        }
                        xml.close("SegmentList")
                    case .files(let list):
                        // startNumber only when not the default 1: FFmpeg 5.1's DASH demuxer indexes
                        // a SegmentList's SegmentURLs by segment number, and skips the first when
                        // the MPD says 1 (measured: 18.1 s of 20.0 s played).
                        xml.open("SegmentList", [("timescale", String(list.timescale)),
                                                 ("startNumber", list.startNumber == 1 ? nil : String(list.startNumber))])
                        xml.open("Initialization", [("sourceURL", list.initialization)], selfClosing: true)
                        Self.render(list.timeline, into: &xml)
                        for media in list.media {
                            xml.open("SegmentURL", [("media", media)], selfClosing: true)
                        }
                        xml.close("SegmentList")
                    }
                    xml.close("Representation")
                }
                xml.close("AdaptationSet")
            }
            xml.close("Period")
        }
        for timing in utcTimings {
            xml.open("UTCTiming", [("schemeIdUri", timing.schemeIdURI), ("value", timing.value)], selfClosing: true)
        }
        xml.close("MPD")
        return xml.out
    }

    static func range(_ range: ClosedRange<Int64>) -> String {
        "\(range.lowerBound)-\(range.upperBound)"
    }

    static func render(_ timeline: [TimelineEntry], into xml: inout XMLWriter) {
        xml.open("SegmentTimeline", [])
        for entry in timeline {
            xml.open("S", [
                ("t", entry.time.map(String.init)), ("d", String(entry.duration)),
                ("r", entry.repeatCount > 0 ? String(entry.repeatCount) : nil),
            ], selfClosing: true)
        }
        xml.close("SegmentTimeline")
    }

    static func render(_ protection: ContentProtection, into xml: inout XMLWriter) {
        let attributes: [(String, String?)] = [
            ("schemeIdUri", protection.schemeIdURI), ("value", protection.value),
            ("cenc:default_KID", protection.defaultKID),
        ]
        if let pssh = protection.psshBase64 {
            xml.open("ContentProtection", attributes)
            xml.element("cenc:pssh", text: pssh)
            xml.close("ContentProtection")
        } else {
            xml.open("ContentProtection", attributes, selfClosing: true)
        }
    }
}

extension MPD {
    /// A static (VOD) MPD over the renditions: one AdaptationSet per codec group, Representations
    /// in ascending `@bandwidth` (the peak segment bit rate), SegmentTemplate + SegmentTimeline in each
    /// rendition's timescale (exact durations), or SegmentList with `mediaRange`s (and the isoff-main
    /// profile) for single-file addressing; `@mediaPresentationDuration` = the longest rendition,
    /// `@minBufferTime` = the longest segment (rounded up to whole seconds).
    public static func vod(renditions: [Rendition], contentProtections: [ContentProtection] = []) throws(ManifestBuildError) -> MPD {
        try validate(renditions)
        let duration = renditions.map(\.totalDuration).max()!
        return MPD(type: .static(mediaPresentationDuration: duration), profiles: profiles(for: renditions),
                   minBufferTime: .seconds(renditions.map(\.targetDuration).max()!),
                   periods: [Period(id: "0", adaptationSets: adaptationSets(renditions, contentProtections: contentProtections) { $0.segments[...] })])
    }

    /// A dynamic (live) MPD over the segments produced so far. Each representation lists the
    /// segments that end within `timing.timeShiftBufferDepth` of the newest one; the period starts at 0
    /// (`availabilityStartTime` is the wall-clock time of media time 0).
    ///
    /// - Parameters:
    ///   - renditions: the renditions, template-addressed, with the segments that exist.
    ///   - timing: the dynamic timing (StreamKit reads no clock).
    ///   - contentProtections: descriptors for every adaptation set.
    ///   - utcTiming: a clock for players to synchronise with.
    ///   - lowLatency: for segments sent in chunks as they are encoded: the
    ///     `@availabilityTimeOffset` (segment duration − chunk duration) and the latency players
    ///     should aim for (`ServiceDescription`).
    public static func live(renditions: [Rendition], timing: DynamicTiming, contentProtections: [ContentProtection] = [],
                            utcTiming: Descriptor? = nil,
                            lowLatency: (availabilityTimeOffset: MediaTime, targetLatency: MediaTime)? = nil) throws(ManifestBuildError) -> MPD {
        var mpd = try liveWindow(renditions: renditions, timing: timing, contentProtections: contentProtections, utcTiming: utcTiming)
        guard let lowLatency else { return mpd }
        mpd.targetLatency = lowLatency.targetLatency
        for p in mpd.periods.indices {
            for a in mpd.periods[p].adaptationSets.indices {
                for r in mpd.periods[p].adaptationSets[a].representations.indices {
                    guard case .template(var template) = mpd.periods[p].adaptationSets[a].representations[r].segments else { continue }
                    template.availabilityTimeOffset = lowLatency.availabilityTimeOffset
                    template.availabilityTimeComplete = false
                    mpd.periods[p].adaptationSets[a].representations[r].segments = .template(template)
                }
            }
        }
        return mpd
    }

    private static func liveWindow(renditions: [Rendition], timing: DynamicTiming, contentProtections: [ContentProtection],
                                   utcTiming: Descriptor?) throws(ManifestBuildError) -> MPD {
        try validate(renditions)
        let sets = adaptationSets(renditions, contentProtections: contentProtections) { rendition in
            let last = rendition.segments[rendition.segments.count - 1]
            let liveEdge = Int128(last.start + last.duration)
            let depth = Int128(timing.timeShiftBufferDepth.value) * Int128(rendition.timescale)
                / Int128(timing.timeShiftBufferDepth.timescale)
            let first = rendition.segments.firstIndex { Int128($0.start + $0.duration) >= liveEdge - depth }!
            return rendition.segments[first...]
        }
        return MPD(type: .dynamic(timing), profiles: profiles(for: renditions), minBufferTime: .seconds(renditions.map(\.targetDuration).max()!),
                   periods: [Period(id: "0", start: .zero, adaptationSets: sets)],
                   utcTimings: utcTiming.map { [$0] } ?? [])
    }

    private static func profiles(for renditions: [Rendition]) -> [String] {
        // SegmentList (byte ranges or named files) is the main profile's; isoff-live wants templates.
        renditions.contains { if case .template = $0.addressing { false } else { true } } ? mainProfiles : liveAndCMAFProfiles
    }

    private static func validate(_ renditions: [Rendition]) throws(ManifestBuildError) {
        guard !renditions.isEmpty else { throw ManifestBuildError(renditionID: nil, kind: .noRenditions) }
        guard Set(renditions.map(\.id)).count == renditions.count else {
            throw ManifestBuildError(renditionID: nil, kind: .duplicateRenditionID)
        }
        for rendition in renditions { try rendition.validate() }
    }

    private static func adaptationSets(_ renditions: [Rendition], contentProtections: [ContentProtection],
                                       window: (Rendition) -> ArraySlice<SegmentInfo>) -> [AdaptationSet] {
        var groups: [String] = []
        for rendition in renditions where !groups.contains(rendition.codecGroup) { groups.append(rendition.codecGroup) }
        return groups.enumerated().map { index, group in
            let members = renditions.filter { $0.codecGroup == group }
            let representations = members.map { rendition in
                let segments = window(rendition)
                return Representation(
                    id: rendition.id, bandwidth: rendition.peakSegmentBitrate, codecs: rendition.codec.codecsString,
                    audioSamplingRate: rendition.sampleRate,
                    audioChannelConfigurations: [.channelCount(rendition.channelCount)],
                    segments: segmentReference(rendition, segments))
            }.sorted { $0.bandwidth < $1.bandwidth }
            return AdaptationSet(id: index, language: members[0].language, contentProtections: contentProtections,
                                 representations: representations)
        }
    }

    private static func segmentReference(_ rendition: Rendition, _ segments: ArraySlice<SegmentInfo>) -> SegmentReference {
        let timeline = TimelineEntry.timeline(for: segments)
        switch rendition.addressing {
        case .template(let initialization, let media):
            return .template(SegmentTemplate(timescale: rendition.timescale, initialization: initialization, media: media,
                                             startNumber: segments.first!.number, timeline: timeline))
        case .singleFile(let uri, let initSize):
            var offset = initSize + rendition.segments[..<segments.startIndex].reduce(0) { $0 + $1.byteSize }
            var ranges: [ClosedRange<Int64>] = []
            for segment in segments {
                ranges.append(offset...(offset + segment.byteSize - 1))
                offset += segment.byteSize
            }
            return .list(SegmentList(timescale: rendition.timescale, timeline: timeline, startNumber: segments.first!.number,
                                     uri: uri, initializationRange: 0...(initSize - 1), mediaRanges: ranges))
        case .files(let initialization, _):
            return .files(SegmentFileList(timescale: rendition.timescale, timeline: timeline, startNumber: segments.first!.number,
                                          initialization: initialization, media: segments.map { rendition.uri(of: $0) }))
        }
    }
}
