extension MediaPlaylist {
    /// The lowest EXT-X-VERSION the features of this playlist allow (RFC 8216 §7, rfc8216bis §8):
    /// 3 for decimal EXTINF (always used), 4 for EXT-X-BYTERANGE, 5 for KEYFORMAT/KEYFORMATVERSIONS,
    /// 6 for EXT-X-MAP, 9 for EXT-X-SKIP, 10 for RECENTLY-REMOVED-DATERANGES.
    public var minimumVersion: Int {
        minimumVersion(decimalDurations: true)
    }

    /// The lowest version for these features when EXTINF durations are (or are not) written as decimals;
    /// the parser uses `false` for playlists whose EXTINF values are all integers (versions 1 and 2).
    func minimumVersion(decimalDurations: Bool) -> Int {
        var version = decimalDurations ? 3 : 1
        if let skip {
            version = max(version, skip.recentlyRemovedDateRanges == nil ? 9 : 10)
        }
        for segment in segments {
            if segment.map != nil { version = max(version, 6) }
            if segment.byteRange != nil { version = max(version, 4) }
            if case .key(let key)? = segment.encryption {
                if key.initializationVector != nil { version = max(version, 2) }
                if key.keyFormat != nil || key.keyFormatVersions != nil { version = max(version, 5) }
            }
        }
        return version
    }

    /// Renders the playlist text (UTF-8, LF line endings, trailing newline).
    ///
    /// EXTINF durations are written with three decimals (round half-up), other decimal
    /// attributes with up to five. EXT-X-VERSION is ``minimumVersion``.
    public func render() -> String {
        var lines: [String] = ["#EXTM3U", "#EXT-X-VERSION:\(minimumVersion)", "#EXT-X-TARGETDURATION:\(targetDuration)"]
        lines.reserveCapacity(segments.count * 3 + 16)
        if mediaSequence != 0 || playlistType != .vod {
            lines.append("#EXT-X-MEDIA-SEQUENCE:\(mediaSequence)")
        }
        if discontinuitySequence != 0 {
            lines.append("#EXT-X-DISCONTINUITY-SEQUENCE:\(discontinuitySequence)")
        }
        if let playlistType { lines.append("#EXT-X-PLAYLIST-TYPE:\(playlistType.rawValue)") }
        if independentSegments { lines.append("#EXT-X-INDEPENDENT-SEGMENTS") }
        if let serverControl {
            var writer = AttributeWriter()
            writer.decimal("CAN-SKIP-UNTIL", serverControl.canSkipUntil)
            writer.yes("CAN-SKIP-DATERANGES", serverControl.canSkipDateRanges)
            writer.decimal("HOLD-BACK", serverControl.holdBack)
            writer.decimal("PART-HOLD-BACK", serverControl.partHoldBack)
            writer.yes("CAN-BLOCK-RELOAD", serverControl.canBlockReload)
            if !writer.parts.isEmpty { lines.append("#EXT-X-SERVER-CONTROL:" + writer.text) }
        }
        if let partTarget {
            lines.append("#EXT-X-PART-INF:PART-TARGET=\(partTarget.compactDecimalString(maximumFractionDigits: 5))")
        }
        if let skip {
            var writer = AttributeWriter()
            writer.integer("SKIPPED-SEGMENTS", skip.skippedSegments)
            writer.quoted("RECENTLY-REMOVED-DATERANGES", skip.recentlyRemovedDateRanges?.joined(separator: "\t"))
            lines.append("#EXT-X-SKIP:" + writer.text)
        }
        for segment in segments {
            if segment.discontinuity { lines.append("#EXT-X-DISCONTINUITY") }
            // EXT-X-MAP before EXT-X-KEY: a key applies to the initialization sections declared
            // after it (RFC 8216 §4.3.2.4), so a segment's own key leaves its map clear.
            if let map = segment.map {
                var writer = AttributeWriter()
                writer.quotedURI("URI", map.uri)
                writer.quoted("BYTERANGE", map.byteRange?.rendered)
                lines.append("#EXT-X-MAP:" + writer.text)
            }
            if let encryption = segment.encryption { lines.append("#EXT-X-KEY:" + Self.keyAttributes(encryption)) }
            if let date = segment.programDateTime { lines.append("#EXT-X-PROGRAM-DATE-TIME:" + date.iso8601) }
            if let kbps = segment.bitrateKilobits { lines.append("#EXT-X-BITRATE:\(kbps)") }
            for part in segment.parts { lines.append(Self.partLine(part)) }
            if segment.gap { lines.append("#EXT-X-GAP") }
            if let range = segment.byteRange { lines.append("#EXT-X-BYTERANGE:" + range.rendered) }
            lines.append("#EXTINF:\(segment.duration.decimalString(fractionDigits: 3)),\(HLSText.title(segment.title))")
            lines.append(HLSText.uri(segment.uri))
        }
        for part in trailingParts { lines.append(Self.partLine(part)) }
        for hint in preloadHints {
            var writer = AttributeWriter()
            writer.enumerated("TYPE", hint.type.rawValue)
            writer.quotedURI("URI", hint.uri)
            writer.integer("BYTERANGE-START", hint.byteRangeStart)
            writer.integer("BYTERANGE-LENGTH", hint.byteRangeLength)
            lines.append("#EXT-X-PRELOAD-HINT:" + writer.text)
        }
        for report in renditionReports {
            var writer = AttributeWriter()
            writer.quotedURI("URI", report.uri)
            writer.integer("LAST-MSN", report.lastMediaSequenceNumber)
            writer.integer("LAST-PART", report.lastPart)
            lines.append("#EXT-X-RENDITION-REPORT:" + writer.text)
        }
        if endList { lines.append("#EXT-X-ENDLIST") }
        return lines.joined(separator: "\n") + "\n"
    }

    static func partLine(_ part: PartialSegment) -> String {
        var writer = AttributeWriter()
        writer.decimal("DURATION", part.duration)
        writer.quotedURI("URI", part.uri)
        writer.yes("INDEPENDENT", part.independent)
        writer.quoted("BYTERANGE", part.byteRange?.rendered)
        writer.yes("GAP", part.gap)
        return "#EXT-X-PART:" + writer.text
    }

    static func keyAttributes(_ encryption: SegmentEncryption) -> String {
        switch encryption {
        case .none: return "METHOD=NONE"
        case .key(let key): return keyAttributes(key)
        }
    }

    static func keyAttributes(_ key: EncryptionKey) -> String {
        var writer = AttributeWriter()
        writer.enumerated("METHOD", key.method.rawValue)
        writer.quotedURI("URI", key.uri)
        writer.enumerated("IV", key.initializationVector.map { "0x" + hex($0) })
        writer.quoted("KEYFORMAT", key.keyFormat)
        writer.quoted("KEYFORMATVERSIONS", key.keyFormatVersions.map { $0.map(String.init).joined(separator: "/") })
        return writer.text
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var out = ""
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return out
    }
}

extension MasterPlaylist {
    /// The lowest EXT-X-VERSION the features of this playlist allow: 5 when an EXT-X-SESSION-KEY
    /// uses KEYFORMAT/KEYFORMATVERSIONS, 7 for `SERVICE` INSTREAM-ID values, otherwise 1
    /// (in which case no EXT-X-VERSION tag is written).
    public var minimumVersion: Int {
        var version = 1
        if sessionKeys.contains(where: { $0.keyFormat != nil || $0.keyFormatVersions != nil }) { version = 5 }
        if renditions.contains(where: { $0.instreamID?.hasPrefix("SERVICE") == true }) { version = 7 }
        return version
    }

    /// Renders the playlist text (UTF-8, LF line endings, trailing newline).
    public func render() -> String {
        var lines = ["#EXTM3U"]
        if minimumVersion > 1 { lines.append("#EXT-X-VERSION:\(minimumVersion)") }
        if independentSegments { lines.append("#EXT-X-INDEPENDENT-SEGMENTS") }
        for key in sessionKeys {
            lines.append("#EXT-X-SESSION-KEY:" + MediaPlaylist.keyAttributes(key))
        }
        for rendition in renditions {
            var writer = AttributeWriter()
            writer.enumerated("TYPE", rendition.type.rawValue)
            writer.quoted("GROUP-ID", rendition.groupID)
            writer.quoted("NAME", rendition.name)
            writer.quoted("LANGUAGE", rendition.language)
            writer.quoted("ASSOC-LANGUAGE", rendition.associatedLanguage)
            writer.quoted("STABLE-RENDITION-ID", rendition.stableRenditionID)
            writer.yesNo("DEFAULT", rendition.isDefault)
            writer.yesNo("AUTOSELECT", rendition.autoselect)
            writer.yes("FORCED", rendition.forced)
            writer.quoted("INSTREAM-ID", rendition.instreamID)
            writer.quoted("CHARACTERISTICS", rendition.characteristics?.joined(separator: ","))
            writer.quoted("CHANNELS", rendition.channels?.rendered)
            writer.integer("SAMPLE-RATE", rendition.sampleRate)
            writer.integer("BIT-DEPTH", rendition.bitDepth)
            writer.quotedURI("URI", rendition.uri)
            lines.append("#EXT-X-MEDIA:" + writer.text)
        }
        for variant in variants {
            var writer = AttributeWriter()
            writer.integer("BANDWIDTH", variant.bandwidth.bitsPerSecond)
            writer.integer("AVERAGE-BANDWIDTH", variant.averageBandwidth?.bitsPerSecond)
            writer.decimal("SCORE", variant.score)
            if !variant.codecs.isEmpty { writer.quoted("CODECS", variant.codecs.joined(separator: ",")) }
            writer.quoted("AUDIO", variant.audioGroup)
            writer.quoted("STABLE-VARIANT-ID", variant.stableVariantID)
            lines.append("#EXT-X-STREAM-INF:" + writer.text)
            lines.append(HLSText.uri(variant.uri))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
