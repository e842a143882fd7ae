/// A playlist that the strict parser refused, with the 1-based line where the problem was found.
public struct HLSParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Hashable {
        /// The first line is not `#EXTM3U`.
        case missingHeader
        /// A tag StreamKit does not know (strict mode only).
        case unknownTag(String)
        /// An attribute-list that does not follow RFC 8216 §4.2.
        case malformedAttributeList(tag: String, reason: String)
        /// An attribute the tag does not define (strict mode only).
        case unknownAttribute(tag: String, name: String)
        /// The same attribute appears twice in one list.
        case duplicateAttribute(tag: String, name: String)
        /// A required attribute is absent.
        case missingAttribute(tag: String, name: String)
        /// An attribute value of the wrong type or out of range.
        case invalidAttributeValue(tag: String, name: String, value: String)
        /// A tag value that is not of the form the tag requires.
        case invalidTagValue(tag: String, value: String)
        /// A playlist-level tag that appears more than once.
        case duplicateTag(String)
        /// EXTINF (or other segment tags) not followed by a URI line.
        case extinfWithoutURI
        /// A URI line in a media playlist that has no EXTINF before it.
        case uriWithoutEXTINF
        /// EXT-X-STREAM-INF not followed by a URI line.
        case streamInfWithoutURI
        /// A URI line in a multivariant playlist without EXT-X-STREAM-INF before it.
        case uriWithoutStreamInf
        /// Media-playlist and multivariant-playlist tags in the same file.
        case mixedPlaylistKinds
        /// EXT-X-TARGETDURATION is absent from a media playlist.
        case missingTargetDuration
        /// A segment whose EXTINF, rounded to the nearest integer, exceeds EXT-X-TARGETDURATION.
        case segmentExceedsTargetDuration(duration: String, target: Int64)
        /// EXT-X-VERSION lower than the features used require.
        case versionTooLow(declared: Int, required: Int)
        /// A variant references an AUDIO group that no EXT-X-MEDIA defines.
        case undefinedGroup(String)
        /// Semantically invalid combination (for example CLOSED-CAPTIONS with a URI).
        case invalidCombination(String)
    }

    /// The 1-based line number (0 when the problem concerns the whole file).
    public var line: Int
    /// What went wrong.
    public var kind: Kind

    /// Creates an error.
    public init(line: Int, kind: Kind) {
        self.line = line
        self.kind = kind
    }

    /// For example `line 7: missingAttribute(tag: "EXT-X-MAP", name: "URI")`.
    public var description: String { "line \(line): \(kind)" }
}

/// A strict parser for HLS playlists (RFC 8216 / rfc8216bis).
///
/// It refuses: a missing `#EXTM3U`, malformed attribute lists, duplicate or unknown attributes,
/// unknown `#EXT` tags (unless ``Options/allowUnknownTags``), EXTINF without a URI, URIs without
/// EXTINF, segments longer than the target duration, and a declared EXT-X-VERSION lower than the
/// features used. Lines starting with `#` but not `#EXT` are comments; blank lines are ignored;
/// CRLF line endings are accepted.
public struct HLSParser: Sendable {
    /// Parser options.
    public struct Options: Sendable, Hashable {
        /// Skip `#EXT…` tags StreamKit does not model instead of failing.
        public var allowUnknownTags: Bool
        /// Skip attributes StreamKit does not model instead of failing.
        public var allowUnknownAttributes: Bool

        /// Creates options; the default is fully strict.
        public init(allowUnknownTags: Bool = false, allowUnknownAttributes: Bool = false) {
            self.allowUnknownTags = allowUnknownTags
            self.allowUnknownAttributes = allowUnknownAttributes
        }

        /// Refuse anything StreamKit does not model.
        public static let strict = Options()
    }

    /// The options in force.
    public var options: Options

    /// Creates a parser.
    public init(options: Options = .strict) {
        self.options = options
    }

    private static let masterTags: Set<Substring> = [
        "EXT-X-STREAM-INF", "EXT-X-MEDIA", "EXT-X-SESSION-KEY",
    ]
    private static let mediaTags: Set<Substring> = [
        "EXTINF", "EXT-X-TARGETDURATION", "EXT-X-MEDIA-SEQUENCE", "EXT-X-DISCONTINUITY-SEQUENCE",
        "EXT-X-PLAYLIST-TYPE", "EXT-X-ENDLIST", "EXT-X-BYTERANGE", "EXT-X-DISCONTINUITY", "EXT-X-KEY",
        "EXT-X-MAP", "EXT-X-PROGRAM-DATE-TIME", "EXT-X-GAP", "EXT-X-BITRATE", "EXT-X-PART", "EXT-X-PART-INF",
        "EXT-X-SERVER-CONTROL", "EXT-X-SKIP", "EXT-X-PRELOAD-HINT", "EXT-X-RENDITION-REPORT",
    ]

    /// Parses either kind of playlist.
    public func parse(_ text: String) throws(HLSParseError) -> Playlist {
        let lines = Self.lines(of: text)
        try Self.checkHeader(lines)
        var sawMaster = false
        var sawMedia = false
        for (_, line) in lines.dropFirst() where line.hasPrefix("#EXT") {
            let name = Self.tagName(line)
            if Self.masterTags.contains(name) { sawMaster = true }
            if Self.mediaTags.contains(name) { sawMedia = true }
        }
        if sawMaster && sawMedia { throw HLSParseError(line: 0, kind: .mixedPlaylistKinds) }
        if sawMaster { return .master(try parseMaster(lines: lines)) }
        return .media(try parseMedia(lines: lines))
    }

    /// Parses a media playlist.
    public func parseMedia(_ text: String) throws(HLSParseError) -> MediaPlaylist {
        guard case .media(let playlist) = try parse(text) else {
            throw HLSParseError(line: 0, kind: .mixedPlaylistKinds)
        }
        return playlist
    }

    /// Parses a multivariant (master) playlist.
    public func parseMaster(_ text: String) throws(HLSParseError) -> MasterPlaylist {
        guard case .master(let playlist) = try parse(text) else {
            throw HLSParseError(line: 0, kind: .mixedPlaylistKinds)
        }
        return playlist
    }

    // MARK: - Lines

    typealias Line = (number: Int, text: Substring)

    static func lines(of text: String) -> [Line] {
        var result: [Line] = []
        var number = 0
        // "\r\n" is a single Character in Swift, so both separators are listed.
        for raw in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            var line = raw
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.allSatisfy(\.isWhitespace) { continue }
            result.append((number, line))
        }
        return result
    }

    static func checkHeader(_ lines: [Line]) throws(HLSParseError) {
        guard let first = lines.first, first.number == 1,
              first.text == "#EXTM3U" || first.text == "\u{FEFF}#EXTM3U"
        else { throw HLSParseError(line: 1, kind: .missingHeader) }
    }

    static func tagName(_ line: Substring) -> Substring {
        let body = line.dropFirst()
        if let colon = body.firstIndex(of: ":") { return body[..<colon] }
        return body
    }

    static func tagValue(_ line: Substring) -> Substring? {
        guard let colon = line.firstIndex(of: ":") else { return nil }
        return line[line.index(after: colon)...]
    }

    private func requireNoValue(_ line: Line, _ tag: Substring) throws(HLSParseError) {
        if Self.tagValue(line.text) != nil {
            throw HLSParseError(line: line.number, kind: .invalidTagValue(tag: String(tag), value: String(line.text)))
        }
    }

    private func requireValue(_ line: Line, _ tag: Substring) throws(HLSParseError) -> Substring {
        guard let value = Self.tagValue(line.text), !value.isEmpty else {
            throw HLSParseError(line: line.number, kind: .invalidTagValue(tag: String(tag), value: ""))
        }
        return value
    }

    private func integerValue(_ line: Line, _ tag: Substring) throws(HLSParseError) -> Int64 {
        let value = try requireValue(line, tag)
        guard value.count <= 19, value.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int64(value) else {
            throw HLSParseError(line: line.number, kind: .invalidTagValue(tag: String(tag), value: String(value)))
        }
        return number
    }

    private func attributes(_ line: Line, _ tag: Substring) throws(HLSParseError) -> AttributeReader {
        try AttributeReader(tag: String(tag), text: try requireValue(line, tag), line: line.number)
    }

    private func setOnce<T>(_ slot: inout T?, _ value: T, _ line: Line, _ tag: Substring) throws(HLSParseError) {
        guard slot == nil else { throw HLSParseError(line: line.number, kind: .duplicateTag(String(tag))) }
        slot = value
    }

    private func unknownTag(_ line: Line, _ tag: Substring) throws(HLSParseError) {
        if !options.allowUnknownTags {
            throw HLSParseError(line: line.number, kind: .unknownTag(String(tag)))
        }
    }

    // MARK: - Media playlists

    func parseMedia(lines: [Line]) throws(HLSParseError) -> MediaPlaylist {
        var version: (Int, Int)?
        var targetDuration: Int64?
        var mediaSequence: Int64?
        var discontinuitySequence: Int64?
        var playlistType: PlaylistType?
        var independent: Bool?
        var partTarget: MediaTime?
        var serverControl: ServerControl?
        var skip: SkipInformation?
        var endList = false
        var segments: [MediaSegment] = []
        var preloadHints: [PreloadHint] = []
        var reports: [RenditionReport] = []

        // Pending per-segment state.
        var pendingInf: (duration: MediaTime, title: String, line: Int)?
        var pending = MediaSegment(uri: "", duration: .zero)
        var pendingLine: Int?
        var decimalDurations = false
        let rejectUnknown = !options.allowUnknownAttributes

        for line in lines.dropFirst() {
            let text = line.text
            guard text.hasPrefix("#") else {
                guard let inf = pendingInf else {
                    throw HLSParseError(line: line.number, kind: .uriWithoutEXTINF)
                }
                pending.uri = String(text)
                pending.duration = inf.duration
                pending.title = inf.title
                segments.append(pending)
                pending = MediaSegment(uri: "", duration: .zero)
                pendingInf = nil
                pendingLine = nil
                continue
            }
            guard text.hasPrefix("#EXT") else { continue } // comment
            let tag = Self.tagName(text)
            if pendingInf != nil && tag != "EXT-X-PROGRAM-DATE-TIME" && tag != "EXT-X-BYTERANGE"
                && tag != "EXT-X-DISCONTINUITY" && tag != "EXT-X-GAP" && tag != "EXT-X-KEY" && tag != "EXT-X-MAP"
                && tag != "EXT-X-BITRATE" {
                throw HLSParseError(line: pendingInf!.line, kind: .extinfWithoutURI)
            }
            switch tag {
            case "EXT-X-VERSION":
                try setOnce(&version, (Int(try integerValue(line, tag)), line.number), line, tag)
            case "EXT-X-TARGETDURATION":
                try setOnce(&targetDuration, try integerValue(line, tag), line, tag)
            case "EXT-X-MEDIA-SEQUENCE":
                try setOnce(&mediaSequence, try integerValue(line, tag), line, tag)
            case "EXT-X-DISCONTINUITY-SEQUENCE":
                try setOnce(&discontinuitySequence, try integerValue(line, tag), line, tag)
            case "EXT-X-PLAYLIST-TYPE":
                let value = try requireValue(line, tag)
                guard let type = PlaylistType(rawValue: String(value)) else {
                    throw HLSParseError(line: line.number, kind: .invalidTagValue(tag: String(tag), value: String(value)))
                }
                try setOnce(&playlistType, type, line, tag)
            case "EXT-X-INDEPENDENT-SEGMENTS":
                try requireNoValue(line, tag)
                try setOnce(&independent, true, line, tag)
            case "EXT-X-ENDLIST":
                try requireNoValue(line, tag)
                guard !endList else { throw HLSParseError(line: line.number, kind: .duplicateTag(String(tag))) }
                endList = true
            case "EXT-X-PART-INF":
                var reader = try attributes(line, tag)
                let value = try reader.requiredDecimal("PART-TARGET")
                try reader.finish(rejectUnknown: rejectUnknown)
                try setOnce(&partTarget, value, line, tag)
            case "EXT-X-SERVER-CONTROL":
                var reader = try attributes(line, tag)
                let control = ServerControl(
                    canSkipUntil: try reader.decimal("CAN-SKIP-UNTIL"),
                    canSkipDateRanges: try reader.flag("CAN-SKIP-DATERANGES"),
                    holdBack: try reader.decimal("HOLD-BACK"),
                    partHoldBack: try reader.decimal("PART-HOLD-BACK"),
                    canBlockReload: try reader.flag("CAN-BLOCK-RELOAD"))
                try reader.finish(rejectUnknown: rejectUnknown)
                try setOnce(&serverControl, control, line, tag)
            case "EXT-X-SKIP":
                guard segments.isEmpty, pendingLine == nil else {
                    throw HLSParseError(line: line.number, kind: .invalidCombination("EXT-X-SKIP after a segment"))
                }
                var reader = try attributes(line, tag)
                let count = try reader.requiredInteger("SKIPPED-SEGMENTS")
                let removed = try reader.quoted("RECENTLY-REMOVED-DATERANGES")
                try reader.finish(rejectUnknown: rejectUnknown)
                let info = SkipInformation(
                    skippedSegments: Int(count),
                    recentlyRemovedDateRanges: removed.map { $0.split(separator: "\t").map(String.init) })
                try setOnce(&skip, info, line, tag)
            case "EXTINF":
                let value = try requireValue(line, tag)
                let comma = value.firstIndex(of: ",")
                let durationText = comma.map { value[..<$0] } ?? value
                guard let duration = MediaTime(decimalSeconds: durationText), duration.value >= 0 else {
                    throw HLSParseError(line: line.number, kind: .invalidTagValue(tag: "EXTINF", value: String(value)))
                }
                if durationText.contains(".") { decimalDurations = true }
                let title = comma.map { String(value[value.index(after: $0)...]) } ?? ""
                pendingInf = (duration, title, line.number)
                pendingLine = pendingLine ?? line.number
            case "EXT-X-BYTERANGE":
                let value = try requireValue(line, tag)
                guard let range = HLSByteRange(parsing: value), pending.byteRange == nil else {
                    throw HLSParseError(line: line.number, kind: .invalidTagValue(tag: String(tag), value: String(value)))
                }
                pending.byteRange = range
                pendingLine = pendingLine ?? line.number
            case "EXT-X-DISCONTINUITY":
                try requireNoValue(line, tag)
                pending.discontinuity = true
                pendingLine = pendingLine ?? line.number
            case "EXT-X-GAP":
                try requireNoValue(line, tag)
                pending.gap = true
                pendingLine = pendingLine ?? line.number
            case "EXT-X-BITRATE":
                pending.bitrateKilobits = Int(try integerValue(line, tag))
                pendingLine = pendingLine ?? line.number
            case "EXT-X-PROGRAM-DATE-TIME":
                let value = try requireValue(line, tag)
                guard let date = Timestamp(iso8601: value) else {
                    throw HLSParseError(line: line.number, kind: .invalidTagValue(tag: String(tag), value: String(value)))
                }
                pending.programDateTime = date
                pendingLine = pendingLine ?? line.number
            case "EXT-X-KEY":
                var reader = try attributes(line, tag)
                pending.encryption = try parseKey(&reader, allowNone: true)
                try reader.finish(rejectUnknown: rejectUnknown)
                pendingLine = pendingLine ?? line.number
            case "EXT-X-MAP":
                var reader = try attributes(line, tag)
                pending.map = MediaInitialization(uri: try reader.requiredQuoted("URI"), byteRange: try reader.byteRange("BYTERANGE"))
                try reader.finish(rejectUnknown: rejectUnknown)
                pendingLine = pendingLine ?? line.number
            case "EXT-X-PART":
                var reader = try attributes(line, tag)
                let part = PartialSegment(
                    uri: try reader.requiredQuoted("URI"),
                    duration: try reader.requiredDecimal("DURATION"),
                    independent: try reader.flag("INDEPENDENT"),
                    byteRange: try reader.byteRange("BYTERANGE"),
                    gap: try reader.flag("GAP"))
                try reader.finish(rejectUnknown: rejectUnknown)
                pending.parts.append(part)
                pendingLine = pendingLine ?? line.number
            case "EXT-X-PRELOAD-HINT":
                var reader = try attributes(line, tag)
                guard let hintType = try reader.enumerated("TYPE", as: PreloadHint.HintType.self) else {
                    throw HLSParseError(line: line.number, kind: .missingAttribute(tag: String(tag), name: "TYPE"))
                }
                let hint = PreloadHint(
                    type: hintType,
                    uri: try reader.requiredQuoted("URI"),
                    byteRangeStart: try reader.integer("BYTERANGE-START"),
                    byteRangeLength: try reader.integer("BYTERANGE-LENGTH"))
                try reader.finish(rejectUnknown: rejectUnknown)
                preloadHints.append(hint)
            case "EXT-X-RENDITION-REPORT":
                var reader = try attributes(line, tag)
                let report = RenditionReport(
                    uri: try reader.requiredQuoted("URI"),
                    lastMediaSequenceNumber: try reader.integer("LAST-MSN"),
                    lastPart: try reader.integer("LAST-PART").map { Int($0) })
                try reader.finish(rejectUnknown: rejectUnknown)
                reports.append(report)
            case "EXTM3U":
                throw HLSParseError(line: line.number, kind: .duplicateTag("EXTM3U"))
            default:
                try unknownTag(line, tag)
            }
        }
        if let inf = pendingInf { throw HLSParseError(line: inf.line, kind: .extinfWithoutURI) }
        // Parts without EXTINF are the segment in progress; any other pending tag is dangling.
        let trailingParts = pending.parts
        pending.parts = []
        if pending != MediaSegment(uri: "", duration: .zero), let lineNumber = pendingLine {
            throw HLSParseError(line: lineNumber, kind: .extinfWithoutURI)
        }
        guard let targetDuration else { throw HLSParseError(line: 0, kind: .missingTargetDuration) }
        for (index, segment) in segments.enumerated() where segment.duration.roundedSeconds > targetDuration {
            _ = index
            throw HLSParseError(line: 0, kind: .segmentExceedsTargetDuration(
                duration: segment.duration.decimalString(fractionDigits: 3), target: targetDuration))
        }
        let playlist = MediaPlaylist(
            targetDuration: targetDuration, mediaSequence: mediaSequence ?? 0,
            discontinuitySequence: discontinuitySequence ?? 0, playlistType: playlistType,
            independentSegments: independent ?? false, partTarget: partTarget, serverControl: serverControl,
            skip: skip, segments: segments, trailingParts: trailingParts, preloadHints: preloadHints,
            renditionReports: reports, endList: endList)
        let required = playlist.minimumVersion(decimalDurations: decimalDurations)
        if let (declared, lineNumber) = version, declared < required {
            throw HLSParseError(line: lineNumber, kind: .versionTooLow(declared: declared, required: required))
        }
        return playlist
    }

    private func parseKey(_ reader: inout AttributeReader, allowNone: Bool) throws(HLSParseError) -> SegmentEncryption {
        guard let methodText = try reader.enumerated("METHOD") else {
            throw HLSParseError(line: reader.line, kind: .missingAttribute(tag: reader.tag, name: "METHOD"))
        }
        if methodText == "NONE" {
            guard allowNone else {
                throw HLSParseError(line: reader.line, kind: .invalidAttributeValue(tag: reader.tag, name: "METHOD", value: "NONE"))
            }
            for name in ["URI", "IV", "KEYFORMAT", "KEYFORMATVERSIONS"] where try reader.quotedOrEnumeratedPresent(name) {
                throw HLSParseError(line: reader.line, kind: .invalidCombination("METHOD=NONE with \(name)"))
            }
            return .none
        }
        guard let method = EncryptionMethod(rawValue: String(methodText)) else {
            throw HLSParseError(line: reader.line, kind: .invalidAttributeValue(tag: reader.tag, name: "METHOD", value: String(methodText)))
        }
        let uri = try reader.requiredQuoted("URI")
        let iv = try reader.hexBytes("IV", count: 16)
        let format = try reader.quoted("KEYFORMAT")
        var versions: [Int]?
        if let text = try reader.quoted("KEYFORMATVERSIONS") {
            var list: [Int] = []
            for piece in text.split(separator: "/", omittingEmptySubsequences: false) {
                guard let number = Int(piece), number > 0 else {
                    throw HLSParseError(line: reader.line, kind: .invalidAttributeValue(tag: reader.tag, name: "KEYFORMATVERSIONS", value: text))
                }
                list.append(number)
            }
            versions = list
        }
        return .key(EncryptionKey(method: method, uri: uri, initializationVector: iv, keyFormat: format, keyFormatVersions: versions))
    }

    // MARK: - Multivariant playlists

    func parseMaster(lines: [Line]) throws(HLSParseError) -> MasterPlaylist {
        var playlist = MasterPlaylist()
        var version: (Int, Int)?
        var independent: Bool?
        var pendingVariant: (VariantStream, Int)?
        let rejectUnknown = !options.allowUnknownAttributes
        var groupReferences: [(String, Int)] = []

        for line in lines.dropFirst() {
            let text = line.text
            guard text.hasPrefix("#") else {
                guard var (variant, _) = pendingVariant else {
                    throw HLSParseError(line: line.number, kind: .uriWithoutStreamInf)
                }
                variant.uri = String(text)
                playlist.variants.append(variant)
                pendingVariant = nil
                continue
            }
            guard text.hasPrefix("#EXT") else { continue }
            let tag = Self.tagName(text)
            if let (_, variantLine) = pendingVariant {
                throw HLSParseError(line: variantLine, kind: .streamInfWithoutURI)
            }
            switch tag {
            case "EXT-X-VERSION":
                try setOnce(&version, (Int(try integerValue(line, tag)), line.number), line, tag)
            case "EXT-X-INDEPENDENT-SEGMENTS":
                try requireNoValue(line, tag)
                try setOnce(&independent, true, line, tag)
            case "EXT-X-SESSION-KEY":
                var reader = try attributes(line, tag)
                guard case .key(let key) = try parseKey(&reader, allowNone: false) else {
                    fatalError("unreachable: METHOD=NONE refused above")
                }
                try reader.finish(rejectUnknown: rejectUnknown)
                playlist.sessionKeys.append(key)
            case "EXT-X-MEDIA":
                var reader = try attributes(line, tag)
                guard let type = try reader.enumerated("TYPE", as: MediaType.self) else {
                    throw HLSParseError(line: line.number, kind: .missingAttribute(tag: String(tag), name: "TYPE"))
                }
                var channels: ChannelsAttribute?
                if let text = try reader.quoted("CHANNELS") {
                    let pieces = text.split(separator: "/", omittingEmptySubsequences: false)
                    guard let count = Int(pieces[0]), count > 0 else {
                        throw HLSParseError(line: line.number, kind: .invalidAttributeValue(tag: String(tag), name: "CHANNELS", value: text))
                    }
                    channels = ChannelsAttribute(count: count, parameters: pieces.dropFirst().map(String.init))
                }
                let rendition = AlternativeRendition(
                    type: type,
                    groupID: try reader.requiredQuoted("GROUP-ID"),
                    name: try reader.requiredQuoted("NAME"),
                    uri: try reader.quoted("URI"),
                    language: try reader.quoted("LANGUAGE"),
                    associatedLanguage: try reader.quoted("ASSOC-LANGUAGE"),
                    stableRenditionID: try reader.quoted("STABLE-RENDITION-ID"),
                    isDefault: try reader.flag("DEFAULT"),
                    autoselect: try reader.flag("AUTOSELECT"),
                    forced: try reader.flag("FORCED"),
                    instreamID: try reader.quoted("INSTREAM-ID"),
                    characteristics: try reader.quoted("CHARACTERISTICS").map { $0.split(separator: ",").map(String.init) },
                    channels: channels,
                    sampleRate: try reader.integer("SAMPLE-RATE").map { Int($0) },
                    bitDepth: try reader.integer("BIT-DEPTH").map { Int($0) })
                try reader.finish(rejectUnknown: rejectUnknown)
                if type == .closedCaptions && (rendition.uri != nil || rendition.instreamID == nil) {
                    throw HLSParseError(line: line.number, kind: .invalidCombination("CLOSED-CAPTIONS needs INSTREAM-ID and no URI"))
                }
                if type != .closedCaptions && rendition.instreamID != nil {
                    throw HLSParseError(line: line.number, kind: .invalidCombination("INSTREAM-ID outside CLOSED-CAPTIONS"))
                }
                if rendition.forced && type != .subtitles {
                    throw HLSParseError(line: line.number, kind: .invalidCombination("FORCED outside SUBTITLES"))
                }
                if rendition.isDefault && !rendition.autoselect {
                    throw HLSParseError(line: line.number, kind: .invalidCombination("DEFAULT=YES requires AUTOSELECT=YES"))
                }
                playlist.renditions.append(rendition)
            case "EXT-X-STREAM-INF":
                var reader = try attributes(line, tag)
                let variant = VariantStream(
                    uri: "",
                    bandwidth: Bitrate(bitsPerSecond: try reader.requiredInteger("BANDWIDTH")),
                    averageBandwidth: try reader.integer("AVERAGE-BANDWIDTH").map { Bitrate(bitsPerSecond: $0) },
                    codecs: try reader.quoted("CODECS").map { $0.split(separator: ",").map { String($0) } } ?? [],
                    score: try reader.decimal("SCORE"),
                    audioGroup: try reader.quoted("AUDIO"),
                    stableVariantID: try reader.quoted("STABLE-VARIANT-ID"))
                try reader.finish(rejectUnknown: rejectUnknown)
                if let group = variant.audioGroup { groupReferences.append((group, line.number)) }
                pendingVariant = (variant, line.number)
            case "EXTM3U":
                throw HLSParseError(line: line.number, kind: .duplicateTag("EXTM3U"))
            default:
                try unknownTag(line, tag)
            }
        }
        if let (_, variantLine) = pendingVariant {
            throw HLSParseError(line: variantLine, kind: .streamInfWithoutURI)
        }
        for (group, lineNumber) in groupReferences
        where !playlist.renditions.contains(where: { $0.type == .audio && $0.groupID == group }) {
            throw HLSParseError(line: lineNumber, kind: .undefinedGroup(group))
        }
        playlist.independentSegments = independent ?? false
        if let (declared, lineNumber) = version, declared < playlist.minimumVersion {
            throw HLSParseError(line: lineNumber, kind: .versionTooLow(declared: declared, required: playlist.minimumVersion))
        }
        return playlist
    }
}

extension AttributeReader {
    /// Whether an attribute is present, whatever its form (it is marked as used).
    mutating func quotedOrEnumeratedPresent(_ name: String) throws(HLSParseError) -> Bool {
        if (try? quoted(name)) ?? nil != nil { return true }
        return (try? enumerated(name)) ?? nil != nil
    }
}
