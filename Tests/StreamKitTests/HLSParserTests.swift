import Testing
@testable import StreamKit

/// Playlists of many shapes whose durations are exact in milliseconds, so render → parse is the identity.
enum Shapes {
    static let iv: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]

    static let media: [(String, MediaPlaylist)] = [
        ("vod-template", try! MediaPlaylist.vod(Fixtures.opus96)),
        ("vod-single-file", try! MediaPlaylist.vod(Fixtures.aac("a", sizes: [10, 20, 30],
                                                                addressing: .singleFile(uri: "a.mp4", initializationByteSize: 700)))
            .roundedToMilliseconds()),
        ("byterange-without-offset", MediaPlaylist(targetDuration: 2, segments: [
            MediaSegment(uri: "all.aac", duration: .milliseconds(1_500), byteRange: HLSByteRange(length: 100, offset: 0)),
            MediaSegment(uri: "all.aac", duration: .milliseconds(1_500), byteRange: HLSByteRange(length: 120)),
        ], endList: true)),
        ("live-discontinuities", MediaPlaylist(targetDuration: 6, mediaSequence: 1_000_000, discontinuitySequence: 17, segments: [
            MediaSegment(uri: "https://cdn.example/a/1.m4s?x=1", duration: .seconds(6), map: MediaInitialization(uri: "init-a.mp4"),
                         programDateTime: Timestamp(millisecondsSince1970: 1_700_000_000_123)),
            MediaSegment(uri: "b/1.m4s", duration: .milliseconds(5_999), discontinuity: true,
                         map: MediaInitialization(uri: "init-b.mp4", byteRange: HLSByteRange(length: 600, offset: 0)),
                         programDateTime: Timestamp(millisecondsSince1970: 1_700_000_006_123), gap: true, bitrateKilobits: 131),
            MediaSegment(uri: "b/2.m4s", duration: .milliseconds(6_001), title: "Title, with comma"),
        ])),
        ("event-encrypted", MediaPlaylist(targetDuration: 10, playlistType: .event, independentSegments: true, segments: [
            MediaSegment(uri: "1.m4s", duration: .milliseconds(9_500),
                         encryption: .key(EncryptionKey(method: .aes128, uri: "https://keys/1", initializationVector: iv))),
            MediaSegment(uri: "2.m4s", duration: .milliseconds(9_500),
                         encryption: .key(EncryptionKey(method: .sampleAESCTR, uri: "data:text/plain;base64,AAAA", keyFormat: "identity", keyFormatVersions: [1]))),
            MediaSegment(uri: "3.m4s", duration: .milliseconds(9_500), encryption: SegmentEncryption.none),
        ])),
        ("ll-hls", MediaPlaylist(targetDuration: 2, mediaSequence: 10, partTarget: .milliseconds(500),
                                 serverControl: ServerControl(canSkipUntil: .seconds(12), canSkipDateRanges: true, holdBack: .seconds(6),
                                                              partHoldBack: .milliseconds(1_500), canBlockReload: true),
                                 skip: SkipInformation(skippedSegments: 3, recentlyRemovedDateRanges: ["ad-1", "ad-2"]),
                                 segments: [
                                    MediaSegment(uri: "13.m4s", duration: .seconds(2), parts: [
                                        PartialSegment(uri: "13.0.m4s", duration: .milliseconds(500), independent: true),
                                        PartialSegment(uri: "13.1.m4s", duration: .milliseconds(500), gap: true),
                                        PartialSegment(uri: "13.m4s", duration: .milliseconds(1_000), byteRange: HLSByteRange(length: 9, offset: 3)),
                                    ]),
                                 ],
                                 trailingParts: [PartialSegment(uri: "14.0.m4s", duration: .milliseconds(500), independent: true,
                                                                byteRange: HLSByteRange(length: 7))],
                                 preloadHints: [PreloadHint(type: .part, uri: "14.1.m4s", byteRangeStart: 100)],
                                 renditionReports: [RenditionReport(uri: "../b.m3u8", lastMediaSequenceNumber: 13, lastPart: 0),
                                                    RenditionReport(uri: "../c.m3u8")])),
        ("empty-live", MediaPlaylist(targetDuration: 4)),
    ]

    static let master: [(String, MasterPlaylist)] = [
        ("builder-groups", try! MasterPlaylist.make(renditions: [Fixtures.aac128, Fixtures.aac256], style: .audioGroups) { "\($0.id)/index.m3u8" }),
        ("builder-plain", try! MasterPlaylist.make(renditions: [Fixtures.opus96], style: .streamInfOnly) { $0.id + ".m3u8" }),
        ("everything", MasterPlaylist(
            independentSegments: true,
            sessionKeys: [EncryptionKey(method: .sampleAES, uri: "skd://k", initializationVector: iv, keyFormatVersions: [1])],
            renditions: [
                AlternativeRendition(type: .audio, groupID: "aud", name: "English", uri: "en.m3u8", language: "en", associatedLanguage: "en-GB",
                                     stableRenditionID: "en-1", isDefault: true, autoselect: true, characteristics: ["public.accessibility.describes-video"],
                                     channels: ChannelsAttribute(count: 16, parameters: ["JOC"]), sampleRate: 48_000, bitDepth: 24),
                AlternativeRendition(type: .subtitles, groupID: "subs", name: "Forced", uri: "subs.m3u8", autoselect: true, forced: true),
                AlternativeRendition(type: .closedCaptions, groupID: "cc", name: "CC1", instreamID: "SERVICE1"),
                AlternativeRendition(type: .video, groupID: "vid", name: "Angle"),
            ],
            variants: [
                VariantStream(uri: "hi.m3u8", bandwidth: .kilobitsPerSecond(320), averageBandwidth: .kilobitsPerSecond(300),
                              codecs: ["mp4a.40.2", "ec-3"], score: MediaTime(value: 25, timescale: 10), audioGroup: "aud", stableVariantID: "hi"),
                VariantStream(uri: "lo.m3u8?token=abc", bandwidth: .kilobitsPerSecond(64)),
            ])),
    ]
}

extension MediaPlaylist {
    /// Durations rounded to what EXTINF can carry (milliseconds).
    func roundedToMilliseconds() -> MediaPlaylist {
        var copy = self
        for index in copy.segments.indices {
            copy.segments[index].duration = copy.segments[index].duration.converted(to: 1000)
        }
        return copy
    }
}

@Suite struct HLSRoundTripTests {
    @Test(arguments: Shapes.media.map(\.0))
    func mediaRoundTrip(_ name: String) throws {
        let playlist = Shapes.media.first { $0.0 == name }!.1
        let text = playlist.render()
        let parsed = try HLSParser().parseMedia(text)
        #expect(parsed == playlist, "\(name)")
        #expect(parsed.render() == text)
        #expect(try HLSParser().parse(text) == .media(playlist))
    }

    @Test(arguments: Shapes.master.map(\.0))
    func masterRoundTrip(_ name: String) throws {
        let playlist = Shapes.master.first { $0.0 == name }!.1
        let text = playlist.render()
        let parsed = try HLSParser().parseMaster(text)
        #expect(parsed == playlist, "\(name)")
        #expect(parsed.render() == text)
        #expect(Playlist.master(playlist).render() == text)
    }

    /// Durations that are not whole milliseconds are rounded by EXTINF; rendering is then a fixed point
    /// and the parsed durations are the exact ones rounded half-up to milliseconds.
    @Test func inexactDurationsReachAFixedPoint() throws {
        let playlist = try MediaPlaylist.vod(Fixtures.long(count: 599))
        let text = playlist.render()
        let parsed = try HLSParser().parseMedia(text)
        #expect(parsed == playlist.roundedToMilliseconds())
        #expect(parsed.render() == text)
        #expect(parsed.targetDuration == 7)
        #expect(playlist.totalDuration == MediaTime(value: 598 * 288_768 + 100_352, timescale: 48_000))
    }

    @Test func parserAcceptsCommentsBlankLinesCRLFAndLaterVersions() throws {
        let text = "#EXTM3U\r\n# a comment\r\n\r\n#EXT-X-VERSION:7\r\n#EXT-X-TARGETDURATION:6\r\n#EXTINF:5.5,\r\na.m4s\r\n#EXT-X-ENDLIST\r\n"
        let playlist = try HLSParser().parseMedia(text)
        #expect(playlist.segments == [MediaSegment(uri: "a.m4s", duration: .milliseconds(5_500))])
        #expect(playlist.endList)
        // EXTINF without a comma (RFC 2.0 style) and integer durations.
        let legacy = try HLSParser().parseMedia("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6\nx.ts\n")
        #expect(legacy.segments[0].duration == .seconds(6))
        // Versions 1 and 2 with integer EXTINF are valid (decimals need version 3).
        let versionTwo = try HLSParser().parseMedia("#EXTM3U\n#EXT-X-VERSION:2\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\na.ts\n")
        #expect(versionTwo.segments.count == 1)
        #expect(versionTwo.minimumVersion == 3) // re-rendering writes decimals
    }

    @Test func lenientOptionsSkipUnknownTagsAndAttributes() throws {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-DATERANGE:ID=\"a\",START-DATE=\"2020-01-01T00:00:00Z\"\n#EXT-X-MAP:URI=\"i.mp4\",FUTURE=1\n#EXTINF:6,\na.m4s\n"
        #expect(throws: HLSParseError(line: 3, kind: .unknownTag("EXT-X-DATERANGE"))) { try HLSParser().parse(text) }
        let lenient = HLSParser(options: HLSParser.Options(allowUnknownTags: true, allowUnknownAttributes: true))
        let playlist = try lenient.parseMedia(text)
        #expect(playlist.segments[0].map == MediaInitialization(uri: "i.mp4"))
        let tagsOnly = HLSParser(options: HLSParser.Options(allowUnknownTags: true))
        #expect(throws: HLSParseError(line: 4, kind: .unknownAttribute(tag: "EXT-X-MAP", name: "FUTURE"))) { try tagsOnly.parse(text) }
    }
}

@Suite struct HLSParserErrorTests {
    static let cases: [(String, HLSParseError)] = [
        ("", HLSParseError(line: 1, kind: .missingHeader)),
        ("\n#EXTM3U\n#EXT-X-TARGETDURATION:6\n", HLSParseError(line: 1, kind: .missingHeader)),
        ("#EXT-X-TARGETDURATION:6\n", HLSParseError(line: 1, kind: .missingHeader)),
        ("#EXTM3U\n#EXTM3U\n#EXT-X-TARGETDURATION:6\n", HLSParseError(line: 2, kind: .duplicateTag("EXTM3U"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-TARGETDURATION:6\n", HLSParseError(line: 3, kind: .duplicateTag("EXT-X-TARGETDURATION"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:six\n", HLSParseError(line: 2, kind: .invalidTagValue(tag: "EXT-X-TARGETDURATION", value: "six"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION\n", HLSParseError(line: 2, kind: .invalidTagValue(tag: "EXT-X-TARGETDURATION", value: ""))),
        ("#EXTM3U\n#EXTINF:6,\na.m4s\n", HLSParseError(line: 0, kind: .missingTargetDuration)),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\n", HLSParseError(line: 3, kind: .extinfWithoutURI)),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\n#EXTINF:6,\na\n", HLSParseError(line: 3, kind: .extinfWithoutURI)),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\n#EXT-X-ENDLIST\n", HLSParseError(line: 3, kind: .extinfWithoutURI)),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-DISCONTINUITY\n", HLSParseError(line: 3, kind: .extinfWithoutURI)),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\na.m4s\n", HLSParseError(line: 3, kind: .uriWithoutEXTINF)),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:abc,\na\n", HLSParseError(line: 3, kind: .invalidTagValue(tag: "EXTINF", value: "abc,"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:-1,\na\n", HLSParseError(line: 3, kind: .invalidTagValue(tag: "EXTINF", value: "-1,"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.5,\na\n", HLSParseError(line: 0, kind: .segmentExceedsTargetDuration(duration: "6.500", target: 6))),
        ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"i\"\n#EXTINF:6,\na\n", HLSParseError(line: 2, kind: .versionTooLow(declared: 3, required: 6))),
        ("#EXTM3U\n#EXT-X-VERSION:2\n#EXT-X-TARGETDURATION:10\n#EXTINF:9.5,\na.ts\n", HLSParseError(line: 2, kind: .versionTooLow(declared: 2, required: 3))),
        ("#EXTM3U\n#EXT-X-VERSION:1\n#EXT-X-TARGETDURATION:10\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x000102030405060708090a0b0c0d0e0f\n#EXTINF:10,\na.ts\n", HLSParseError(line: 2, kind: .versionTooLow(declared: 1, required: 2))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=i\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-MAP", name: "URI", value: "i"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:BYTERANGE=\"1@0\"\n", HLSParseError(line: 3, kind: .missingAttribute(tag: "EXT-X-MAP", name: "URI"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"i\",URI=\"j\"\n", HLSParseError(line: 3, kind: .duplicateAttribute(tag: "EXT-X-MAP", name: "URI"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"i\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-MAP", reason: "unterminated quoted string for URI"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"i\",\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-MAP", reason: "trailing comma"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:uri=\"i\"\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-MAP", reason: "invalid character \"u\" in attribute name"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:=\"i\"\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-MAP", reason: "empty attribute name"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-MAP", reason: "attribute URI has no value"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"i\"x\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-MAP", reason: "unexpected text after quoted value of URI"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PART-INF:PART-TARGET=\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-PART-INF", reason: "attribute PART-TARGET has an empty value"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PART-INF:PART-TARGET=1 5\n", HLSParseError(line: 3, kind: .malformedAttributeList(tag: "EXT-X-PART-INF", reason: "invalid character in value of PART-TARGET"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PART-INF:PART-TARGET=-1\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-PART-INF", name: "PART-TARGET", value: "-1"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=MAYBE\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-SERVER-CONTROL", name: "CAN-BLOCK-RELOAD", value: "MAYBE"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-SKIP:SKIPPED-SEGMENTS=x\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-SKIP", name: "SKIPPED-SEGMENTS", value: "x"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na\n#EXT-X-SKIP:SKIPPED-SEGMENTS=1\n", HLSParseError(line: 5, kind: .invalidCombination("EXT-X-SKIP after a segment"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PRELOAD-HINT:URI=\"a\"\n", HLSParseError(line: 3, kind: .missingAttribute(tag: "EXT-X-PRELOAD-HINT", name: "TYPE"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PRELOAD-HINT:TYPE=FULL,URI=\"a\"\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-PRELOAD-HINT", name: "TYPE", value: "FULL"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:URI=\"k\"\n", HLSParseError(line: 3, kind: .missingAttribute(tag: "EXT-X-KEY", name: "METHOD"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=ROT13,URI=\"k\"\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-KEY", name: "METHOD", value: "ROT13"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=NONE,URI=\"k\"\n", HLSParseError(line: 3, kind: .invalidCombination("METHOD=NONE with URI"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0x1234\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-KEY", name: "IV", value: "0x1234"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=0xZZ0102030405060708090a0b0c0d0e0f\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-KEY", name: "IV", value: "0xZZ0102030405060708090a0b0c0d0e0f"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",IV=000102030405060708090a0b0c0d0e0f\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-KEY", name: "IV", value: "000102030405060708090a0b0c0d0e0f"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\",KEYFORMATVERSIONS=\"1/x\"\n", HLSParseError(line: 3, kind: .invalidAttributeValue(tag: "EXT-X-KEY", name: "KEYFORMATVERSIONS", value: "1/x"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-BYTERANGE:12@\n", HLSParseError(line: 3, kind: .invalidTagValue(tag: "EXT-X-BYTERANGE", value: "12@"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-BYTERANGE:1\n#EXT-X-BYTERANGE:1\n", HLSParseError(line: 4, kind: .invalidTagValue(tag: "EXT-X-BYTERANGE", value: "1"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n", HLSParseError(line: 3, kind: .invalidTagValue(tag: "EXT-X-PROGRAM-DATE-TIME", value: "yesterday"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-PLAYLIST-TYPE:LIVE\n", HLSParseError(line: 3, kind: .invalidTagValue(tag: "EXT-X-PLAYLIST-TYPE", value: "LIVE"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-ENDLIST:YES\n", HLSParseError(line: 3, kind: .invalidTagValue(tag: "EXT-X-ENDLIST", value: "#EXT-X-ENDLIST:YES"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-ENDLIST\n#EXT-X-ENDLIST\n", HLSParseError(line: 4, kind: .duplicateTag("EXT-X-ENDLIST"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-FUTURE-TAG:1\n", HLSParseError(line: 3, kind: .unknownTag("EXT-X-FUTURE-TAG"))),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXT-X-STREAM-INF:BANDWIDTH=1\na\n", HLSParseError(line: 0, kind: .mixedPlaylistKinds)),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", HLSParseError(line: 2, kind: .streamInfWithoutURI)),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-INDEPENDENT-SEGMENTS\na\n", HLSParseError(line: 2, kind: .streamInfWithoutURI)),
        ("#EXTM3U\n#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=1\na\n", HLSParseError(line: 2, kind: .missingAttribute(tag: "EXT-X-STREAM-INF", name: "BANDWIDTH"))),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"x\"\na\n", HLSParseError(line: 2, kind: .undefinedGroup("x"))),
        ("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"n\"\nv.m3u8\n", HLSParseError(line: 3, kind: .uriWithoutStreamInf)),
        ("#EXTM3U\n#EXT-X-MEDIA:GROUP-ID=\"a\",NAME=\"n\"\n", HLSParseError(line: 2, kind: .missingAttribute(tag: "EXT-X-MEDIA", name: "TYPE"))),
        ("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"n\",CHANNELS=\"x\"\n", HLSParseError(line: 2, kind: .invalidAttributeValue(tag: "EXT-X-MEDIA", name: "CHANNELS", value: "x"))),
        ("#EXTM3U\n#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID=\"a\",NAME=\"n\",URI=\"x\",INSTREAM-ID=\"CC1\"\n", HLSParseError(line: 2, kind: .invalidCombination("CLOSED-CAPTIONS needs INSTREAM-ID and no URI"))),
        ("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"n\",INSTREAM-ID=\"CC1\"\n", HLSParseError(line: 2, kind: .invalidCombination("INSTREAM-ID outside CLOSED-CAPTIONS"))),
        ("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"n\",FORCED=YES\n", HLSParseError(line: 2, kind: .invalidCombination("FORCED outside SUBTITLES"))),
        ("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"n\",DEFAULT=YES\n", HLSParseError(line: 2, kind: .invalidCombination("DEFAULT=YES requires AUTOSELECT=YES"))),
        ("#EXTM3U\n#EXT-X-SESSION-KEY:METHOD=NONE\n", HLSParseError(line: 2, kind: .invalidAttributeValue(tag: "EXT-X-SESSION-KEY", name: "METHOD", value: "NONE"))),
        ("#EXTM3U\n#EXT-X-VERSION:1\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k\",KEYFORMAT=\"identity\"\n", HLSParseError(line: 2, kind: .versionTooLow(declared: 1, required: 5))),
        ("#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=1\na\n", HLSParseError(line: 3, kind: .duplicateTag("EXT-X-INDEPENDENT-SEGMENTS"))),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na\n#EXT-X-UNKNOWN\n", HLSParseError(line: 4, kind: .unknownTag("EXT-X-UNKNOWN"))),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na\n#EXTM3U\n", HLSParseError(line: 4, kind: .duplicateTag("EXTM3U"))),
    ]

    @Test(arguments: cases.indices)
    func rejects(_ index: Int) {
        let (text, expected) = Self.cases[index]
        #expect(throws: expected, "case \(index): \(text.debugDescription)") { try HLSParser().parse(text) }
    }

    @Test func kindMismatchAndDescription() {
        #expect(throws: HLSParseError(line: 0, kind: .mixedPlaylistKinds)) {
            try HLSParser().parseMaster("#EXTM3U\n#EXT-X-TARGETDURATION:6\n")
        }
        #expect(throws: HLSParseError(line: 0, kind: .mixedPlaylistKinds)) {
            try HLSParser().parseMedia("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\na\n")
        }
        #expect(HLSParseError(line: 7, kind: .extinfWithoutURI).description == "line 7: extinfWithoutURI")
    }
}
