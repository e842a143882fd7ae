/// Renditions a player can switch between in the middle of playback: one codec, one sample rate,
/// one channel count, and segments that start and end at the same instants (CMAF's switching set,
/// ISO/IEC 23000-19 §7.3.4).
///
/// Players cannot change codec inside one audio stream: Chromium's native HLS player refuses a
/// second codec ("Audio codec changes not allowed"), and GStreamer's `hlsdemux2` fails caps
/// negotiation. So a multivariant playlist carries exactly one switching set, and a track with AAC,
/// Opus and FLAC renditions has one playlist per set (``MasterPlaylist/make(renditions:style:firstVariantID:mediaPlaylistURI:)``
/// refuses a mix). DASH keeps one adaptation set per switching set inside one MPD.
public struct SwitchingSet: Sendable, Hashable, Identifiable {
    /// A short name for paths and API fields: the codec family (`aac`, `opus`, `flac`, `mp3`),
    /// followed by `-{sampleRate}` and then `-{channels}ch` only when two sets of the same
    /// family would otherwise share it.
    public var id: String
    /// The members, in the order they were given.
    public var renditions: [Rendition]

    /// Creates a set; see ``partition(_:)`` to find the sets of a ladder.
    public init(id: String, renditions: [Rendition]) {
        self.id = id
        self.renditions = renditions
    }

    /// Splits renditions into switching sets, in order of first appearance: renditions join a set
    /// when they share its codec group, sample rate and channel count. Segment alignment is not
    /// checked here (see ``validate()``), so a misaligned packager shows up as an error rather
    /// than as a silently split set.
    public static func partition(_ renditions: [Rendition]) -> [SwitchingSet] {
        struct Key: Hashable { var group: String; var sampleRate: Int; var channels: Int }
        var keys: [Key] = []
        var members: [Key: [Rendition]] = [:]
        for rendition in renditions {
            let key = Key(group: rendition.codecGroup, sampleRate: rendition.sampleRate, channels: rendition.channelCount)
            if members[key] == nil { keys.append(key) }
            members[key, default: []].append(rendition)
        }
        func count(_ predicate: (Key) -> Bool) -> Int { keys.filter(predicate).count }
        return keys.map { key in
            let first = members[key]![0]
            var id = first.codec.family
            if count({ members[$0]![0].codec.family == id }) > 1 {
                id += "-\(key.sampleRate)"
                if count({ members[$0]![0].codec.family == first.codec.family && $0.sampleRate == key.sampleRate }) > 1 {
                    id += "-\(key.channels)ch"
                }
            }
            return SwitchingSet(id: id, renditions: members[key]!)
        }
    }

    /// Checks that every member can replace every other at any segment boundary: one codec group,
    /// sample rate and channel count, and the same segment timeline (boundaries compared exactly,
    /// across timescales). Throws ``ManifestBuildError/Kind/notSwitchable(_:)`` naming the first
    /// rendition that differs from the first member.
    public func validate() throws(ManifestBuildError) {
        guard let reference = renditions.first else { throw ManifestBuildError(renditionID: nil, kind: .noRenditions) }
        for rendition in renditions.dropFirst() {
            func refuse(_ why: String) -> ManifestBuildError {
                ManifestBuildError(renditionID: rendition.id, kind: .notSwitchable("\(why) differs from \(reference.id)"))
            }
            guard rendition.codecGroup == reference.codecGroup else { throw refuse("codec") }
            guard rendition.sampleRate == reference.sampleRate else { throw refuse("sample rate") }
            guard rendition.channelCount == reference.channelCount else { throw refuse("channel count") }
            guard rendition.segments.count == reference.segments.count else { throw refuse("segment count") }
            for (a, b) in zip(rendition.segments, reference.segments) {
                let sameStart = Int128(a.start) * Int128(reference.timescale) == Int128(b.start) * Int128(rendition.timescale)
                let sameDuration = Int128(a.duration) * Int128(reference.timescale) == Int128(b.duration) * Int128(rendition.timescale)
                guard sameStart, sameDuration, a.discontinuity == b.discontinuity else {
                    throw refuse("timeline at segment \(a.number)")
                }
            }
        }
    }
}

extension AudioCodec {
    /// The codec family as a short lowercase name: `aac` for every `mp4a.40.*` profile but MP3
    /// (`mp4a.40.34` and `mp4a.6B`, which are `mp3`), `opus`, `flac`; otherwise the codecs string,
    /// lowercased, with anything but letters, digits and `-` replaced by `-`.
    public var family: String {
        let lower = codecsString.lowercased()
        if lower == "mp4a.40.34" || lower == "mp4a.6b" || lower == "mp3" { return "mp3" }
        if lower.hasPrefix("mp4a.40.") || lower == "mp4a" { return "aac" }
        if lower == "opus" { return "opus" }
        if lower == "flac" { return "flac" }
        return String(lower.map { $0.isASCII && ($0.isLetter || $0.isNumber) || $0 == "-" ? $0 : "-" })
    }
}
