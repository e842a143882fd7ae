/// Why a manifest could not be built from the packager's model.
public struct ManifestBuildError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong.
    public enum Kind: Sendable, Hashable {
        /// A rendition has no segments.
        case noSegments
        /// A segment has a non-positive duration or a negative size.
        case invalidSegment(number: Int64)
        /// Segment numbers are not consecutive.
        case nonConsecutiveNumbers(after: Int64)
        /// A segment does not start where the previous one ended and no discontinuity is declared.
        case timelineGap(number: Int64)
        /// Two renditions share an id.
        case duplicateRenditionID
        /// Nothing to put in the manifest.
        case noRenditions
        /// A parameter is out of range.
        case invalidParameter(String)
        /// Renditions put in one multivariant playlist (or switching set) cannot replace each
        /// other mid-play: another codec, sample rate, channel count or segment timeline.
        case notSwitchable(String)
    }

    /// The rendition concerned, if any.
    public var renditionID: String?
    /// What is wrong.
    public var kind: Kind

    /// Creates an error.
    public init(renditionID: String?, kind: Kind) {
        self.renditionID = renditionID
        self.kind = kind
    }

    /// For example `rendition aac-128: timelineGap(number: 4)`.
    public var description: String { "rendition \(renditionID ?? "-"): \(kind)" }
}

extension Rendition {
    /// Checks the invariants the builders rely on: at least one segment, positive durations,
    /// non-negative sizes, consecutive numbers, and a gap-free timeline except at discontinuities.
    public func validate() throws(ManifestBuildError) {
        guard timescale > 0 else { throw ManifestBuildError(renditionID: id, kind: .invalidParameter("timescale")) }
        guard let first = segments.first else { throw ManifestBuildError(renditionID: id, kind: .noSegments) }
        var minimumSize: Int64 = 0
        if case .singleFile(_, let initSize) = addressing {
            guard initSize > 0 else {
                throw ManifestBuildError(renditionID: id, kind: .invalidParameter("initializationByteSize"))
            }
            minimumSize = 1 // byte ranges cannot be empty
        }
        if case .files(_, let media) = addressing, media.count != segments.count {
            throw ManifestBuildError(renditionID: id, kind: .invalidParameter("media URIs (\(media.count) for \(segments.count) segments)"))
        }
        var previous: SegmentInfo?
        for segment in segments {
            guard segment.duration > 0, segment.byteSize >= minimumSize else {
                throw ManifestBuildError(renditionID: id, kind: .invalidSegment(number: segment.number))
            }
            if let previous {
                guard segment.number == previous.number + 1 else {
                    throw ManifestBuildError(renditionID: id, kind: .nonConsecutiveNumbers(after: previous.number))
                }
                guard segment.discontinuity || segment.start == previous.start + previous.duration else {
                    throw ManifestBuildError(renditionID: id, kind: .timelineGap(number: segment.number))
                }
            }
            previous = segment
        }
        _ = first
    }

    /// The HLS segments for `segments[range]`, with byte ranges for single-file addressing.
    func hlsSegments(_ range: Range<Int>) -> [MediaSegment] {
        var result: [MediaSegment] = []
        result.reserveCapacity(range.count)
        var offset: Int64 = 0
        if case .singleFile(_, let initSize) = addressing {
            offset = initSize + segments[..<range.lowerBound].reduce(0) { $0 + $1.byteSize }
        }
        for index in range {
            let info = segments[index]
            var segment = MediaSegment(uri: uri(of: info), duration: MediaTime(value: info.duration, timescale: timescale),
                                       discontinuity: info.discontinuity)
            if case .singleFile = addressing {
                segment.byteRange = HLSByteRange(length: info.byteSize, offset: offset)
                offset += info.byteSize
            }
            result.append(segment)
        }
        return result
    }

    /// EXT-X-MAP for this rendition.
    var hlsMap: MediaInitialization {
        switch addressing {
        case .template, .files:
            return MediaInitialization(uri: initializationURI)
        case .singleFile(let uri, let initSize):
            return MediaInitialization(uri: uri, byteRange: HLSByteRange(length: initSize, offset: 0))
        }
    }
}

extension MediaPlaylist {
    /// A VOD media playlist for CMAF: EXT-X-TARGETDURATION = ceiling of the longest segment,
    /// EXT-X-PLAYLIST-TYPE:VOD, EXT-X-INDEPENDENT-SEGMENTS, EXT-X-MAP, EXT-X-ENDLIST, and
    /// EXT-X-BYTERANGE for single-file addressing. EXT-X-MEDIA-SEQUENCE is the first segment's number.
    public static func vod(_ rendition: Rendition) throws(ManifestBuildError) -> MediaPlaylist {
        try rendition.validate()
        var segments = rendition.hlsSegments(0..<rendition.segments.count)
        segments[0].map = rendition.hlsMap
        return MediaPlaylist(
            targetDuration: rendition.targetDuration, mediaSequence: rendition.segments[0].number,
            playlistType: .vod, independentSegments: true, segments: segments, endList: true)
    }

    /// A live (sliding-window) media playlist over the segments produced so far.
    ///
    /// - Parameters:
    ///   - rendition: every segment produced so far (the window is taken from its end).
    ///   - windowSegmentCount: the number of segments to list; extended when needed so the
    ///     playlist lasts at least three target durations (RFC 8216 §6.2.2).
    ///   - targetDuration: value of EXT-X-TARGETDURATION; it must not change during a live
    ///     session, so the host passes the configured value (it is raised to fit any longer segment).
    ///   - discontinuitySequence: the EXT-X-DISCONTINUITY-SEQUENCE of `rendition.segments[0]`;
    ///     every EXT-X-DISCONTINUITY that leaves the window increments it.
    ///   - programDateTimeOfZero: the wall-clock time of media time 0; when given,
    ///     EXT-X-PROGRAM-DATE-TIME is written on the first segment and after each discontinuity.
    ///   - serverControl: EXT-X-SERVER-CONTROL, if any.
    ///   - ended: append EXT-X-ENDLIST (the event is over).
    public static func live(_ rendition: Rendition, windowSegmentCount: Int, targetDuration: Int64,
                            discontinuitySequence: Int64 = 0, programDateTimeOfZero: Timestamp? = nil,
                            serverControl: ServerControl? = nil, ended: Bool = false) throws(ManifestBuildError) -> MediaPlaylist {
        try rendition.validate()
        guard windowSegmentCount > 0 else {
            throw ManifestBuildError(renditionID: rendition.id, kind: .invalidParameter("windowSegmentCount"))
        }
        let target = max(targetDuration, rendition.targetDuration)
        var first = max(0, rendition.segments.count - windowSegmentCount)
        var listed = rendition.segments[first...].reduce(0) { $0 + Int128($1.duration) }
        let minimum = Int128(3 * target) * Int128(rendition.timescale)
        while first > 0 && listed < minimum {
            first -= 1
            listed += Int128(rendition.segments[first].duration)
        }
        let removedDiscontinuities = rendition.segments[..<first].filter(\.discontinuity).count
        var segments = rendition.hlsSegments(first..<rendition.segments.count)
        segments[0].map = rendition.hlsMap
        if let zero = programDateTimeOfZero {
            for index in segments.indices where index == 0 || segments[index].discontinuity {
                let info = rendition.segments[first + index]
                segments[index].programDateTime = zero.adding(MediaTime(value: info.start, timescale: rendition.timescale))
            }
        }
        return MediaPlaylist(
            targetDuration: target, mediaSequence: rendition.segments[first].number,
            discontinuitySequence: discontinuitySequence + Int64(removedDiscontinuities),
            playlistType: nil, independentSegments: true, serverControl: serverControl,
            segments: segments, endList: ended)
    }

    /// A Playlist Delta Update (rfc8216bis §6.2.5.1): segments that start more than
    /// `serverControl.canSkipUntil` before the end of the playlist are replaced by EXT-X-SKIP.
    /// Returns `self` unchanged when the playlist does not advertise CAN-SKIP-UNTIL or nothing can be skipped.
    public func deltaUpdate() -> MediaPlaylist {
        guard let skipUntil = serverControl?.canSkipUntil, skip == nil else { return self }
        let total = totalDuration
        var start = MediaTime.zero
        var skipped = 0
        for segment in segments {
            guard total - start > skipUntil else { break }
            start = start + segment.duration
            skipped += 1
        }
        guard skipped > 0 else { return self }
        var delta = self
        delta.segments.removeFirst(skipped)
        delta.skip = SkipInformation(skippedSegments: skipped)
        return delta
    }
}

/// How the multivariant playlist describes audio-only renditions.
public enum AudioVariantStyle: Sendable, Hashable {
    /// Only EXT-X-STREAM-INF lines (BANDWIDTH, AVERAGE-BANDWIDTH, CODECS).
    case streamInfOnly
    /// Also one EXT-X-MEDIA TYPE=AUDIO for the switching set's codec group, without URI (so the
    /// audio is the variant itself), carrying NAME, LANGUAGE and CHANNELS; each variant names the
    /// group in AUDIO.
    case audioGroups
}

extension MasterPlaylist {
    /// A multivariant playlist over one switching set: renditions of one codec, sample rate and
    /// channel count with aligned segments, so that a player's ABR can move between any two of them
    /// (see ``SwitchingSet``; a track with several codecs gets one playlist per set). Throws
    /// ``ManifestBuildError/Kind/notSwitchable(_:)`` for a mix.
    ///
    /// BANDWIDTH is ``Rendition/hlsPeakBitrate`` and AVERAGE-BANDWIDTH ``Rendition/averageBitrate``,
    /// both from the real segment sizes and durations. Variants are listed highest bandwidth first,
    /// except that `firstVariantID` (for example from ``startingRendition(ladder:hints:policy:)``) is
    /// moved to the top: players start with the first variant.
    ///
    /// `style` ``AudioVariantStyle/streamInfOnly`` (the default) writes only EXT-X-STREAM-INF lines:
    /// the audio is the variant itself, so an EXT-X-MEDIA group would only repeat it.
    /// ``AudioVariantStyle/audioGroups`` adds one EXT-X-MEDIA TYPE=AUDIO without URI carrying NAME,
    /// LANGUAGE and CHANNELS, for clients that want those attributes.
    public static func make(renditions: [Rendition], style: AudioVariantStyle = .streamInfOnly,
                            firstVariantID: String? = nil,
                            mediaPlaylistURI: (Rendition) -> String) throws(ManifestBuildError) -> MasterPlaylist {
        guard let representative = renditions.first else { throw ManifestBuildError(renditionID: nil, kind: .noRenditions) }
        guard Set(renditions.map(\.id)).count == renditions.count else {
            throw ManifestBuildError(renditionID: nil, kind: .duplicateRenditionID)
        }
        for rendition in renditions { try rendition.validate() }
        try SwitchingSet(id: representative.codec.family, renditions: renditions).validate()
        var playlist = MasterPlaylist(independentSegments: true)
        let group = representative.codecGroup
        if style == .audioGroups {
            playlist.renditions.append(AlternativeRendition(
                type: .audio, groupID: group, name: group, language: representative.language,
                isDefault: true, autoselect: true,
                channels: ChannelsAttribute(count: representative.channelCount)))
        }
        var variants = renditions.map { rendition in
            (VariantStream(uri: mediaPlaylistURI(rendition), bandwidth: rendition.hlsPeakBitrate,
                           averageBandwidth: rendition.averageBitrate, codecs: [rendition.codec.codecsString],
                           audioGroup: style == .audioGroups ? group : nil), rendition.id)
        }.sorted { $0.0.bandwidth > $1.0.bandwidth }
        if let firstVariantID, let index = variants.firstIndex(where: { $0.1 == firstVariantID }) {
            variants.insert(variants.remove(at: index), at: 0)
        }
        playlist.variants = variants.map(\.0)
        return playlist
    }
}
