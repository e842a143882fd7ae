import Testing
@testable import StreamKit

@Suite struct HLSGoldenTests {
    @Test func vodMediaPlaylistForCMAF() throws {
        let playlist = try MediaPlaylist.vod(Fixtures.aac128)
        #expect(try HLSParser().parseMedia(playlist.render()) == playlist.roundedToMilliseconds())
        #expect(playlist.render() == #"""
        #EXTM3U
        #EXT-X-VERSION:6
        #EXT-X-TARGETDURATION:7
        #EXT-X-MEDIA-SEQUENCE:1
        #EXT-X-PLAYLIST-TYPE:VOD
        #EXT-X-INDEPENDENT-SEGMENTS
        #EXT-X-MAP:URI="aac-128/init.mp4"
        #EXTINF:6.016,
        aac-128/seg-1.m4s
        #EXTINF:6.016,
        aac-128/seg-2.m4s
        #EXTINF:2.091,
        aac-128/seg-3.m4s
        #EXT-X-ENDLIST

        """#)
    }

    @Test func vodMediaPlaylistWithByteRanges() throws {
        let rendition = Fixtures.aac("aac-128", sizes: [96_000, 97_000, 33_000],
                                     addressing: .singleFile(uri: "aac-128.mp4", initializationByteSize: 812), firstNumber: 0)
        #expect(try HLSParser().parseMedia(MediaPlaylist.vod(rendition).render()).segments.count == 3)
        #expect(try MediaPlaylist.vod(rendition).render() == #"""
        #EXTM3U
        #EXT-X-VERSION:6
        #EXT-X-TARGETDURATION:7
        #EXT-X-PLAYLIST-TYPE:VOD
        #EXT-X-INDEPENDENT-SEGMENTS
        #EXT-X-MAP:URI="aac-128.mp4",BYTERANGE="812@0"
        #EXT-X-BYTERANGE:96000@812
        #EXTINF:6.016,
        aac-128.mp4
        #EXT-X-BYTERANGE:97000@96812
        #EXTINF:6.016,
        aac-128.mp4
        #EXT-X-BYTERANGE:33000@193812
        #EXTINF:2.091,
        aac-128.mp4
        #EXT-X-ENDLIST

        """#)
    }

    @Test func masterPlaylistWithAudioGroup() throws {
        let master = try MasterPlaylist.make(renditions: [Fixtures.aac128, Fixtures.aac256], style: .audioGroups) { "\($0.id).m3u8" }
        #expect(try HLSParser().parseMaster(master.render()) == master)
        #expect(master.render() == #"""
        #EXTM3U
        #EXT-X-INDEPENDENT-SEGMENTS
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="mp4a.40.2",NAME="mp4a.40.2",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2"
        #EXT-X-STREAM-INF:BANDWIDTH=256649,AVERAGE-BANDWIDTH=255476,CODECS="mp4a.40.2",AUDIO="mp4a.40.2"
        aac-256.m3u8
        #EXT-X-STREAM-INF:BANDWIDTH=128990,AVERAGE-BANDWIDTH=128022,CODECS="mp4a.40.2",AUDIO="mp4a.40.2"
        aac-128.m3u8

        """#)
    }

    /// Players cannot change codec mid-stream (Chromium: "Audio codec changes not allowed";
    /// GStreamer: not-negotiated), so one multivariant playlist never mixes switching sets.
    @Test func masterPlaylistRefusesRenditionsAPlayerCannotSwitchBetween() throws {
        func refusal(_ renditions: [Rendition]) -> ManifestBuildError.Kind? {
            do {
                _ = try MasterPlaylist.make(renditions: renditions) { "\($0.id).m3u8" }
                return nil
            } catch {
                return error.kind
            }
        }
        #expect(refusal([Fixtures.aac128, Fixtures.opus96]) == .notSwitchable("codec differs from aac-128"))
        var resampled = Fixtures.aac256
        resampled.sampleRate = 44_100
        #expect(refusal([Fixtures.aac128, resampled]) == .notSwitchable("sample rate differs from aac-128"))
        var mono = Fixtures.aac256
        mono.channelCount = 1
        #expect(refusal([Fixtures.aac128, mono]) == .notSwitchable("channel count differs from aac-128"))
        var shifted = Fixtures.aac256
        shifted.segments[1].duration += 1
        shifted.segments[2].start += 1
        #expect(refusal([Fixtures.aac128, shifted]) == .notSwitchable("timeline at segment 2 differs from aac-128"))
        #expect(refusal([Fixtures.aac128, Fixtures.aac256]) == nil)
        // The same instants in another timescale are aligned.
        var rescaled = Fixtures.aac256
        rescaled.timescale *= 2
        for index in rescaled.segments.indices {
            rescaled.segments[index].start *= 2
            rescaled.segments[index].duration *= 2
        }
        #expect(refusal([Fixtures.aac128, rescaled]) == nil)
    }

    @Test func switchingSetsOfALadder() {
        var opus48k = Fixtures.opus96
        opus48k.id = "opus-48"
        var flac = Fixtures.aac("flac", sizes: [400_000, 400_000, 130_000])
        flac.codec = .flac
        flac.codecGroup = AudioCodec.flac.codecsString
        flac.sampleRate = 44_100
        var aacMono = Fixtures.aac("aac-mono", sizes: [50_000, 50_000, 20_000])
        aacMono.channelCount = 1
        aacMono.sampleRate = 44_100
        let sets = SwitchingSet.partition([Fixtures.aac256, Fixtures.opus96, Fixtures.aac128, flac, opus48k, aacMono])
        #expect(sets.map(\.id) == ["aac-48000", "opus", "flac", "aac-44100"])
        #expect(sets.map { $0.renditions.map(\.id) } == [["aac-256", "aac-128"], ["opus-96", "opus-48"], ["flac"], ["aac-mono"]])
        #expect(AudioCodec.aacLC.family == "aac" && AudioCodec.heAAC.family == "aac" && AudioCodec.mp3.family == "mp3")
        #expect(AudioCodec(codecsString: "ac-3").family == "ac-3" && AudioCodec(codecsString: "ec+3/x").family == "ec-3-x")
    }

    @Test func masterPlaylistStreamInfOnlyWithChosenFirstVariant() throws {
        let master = try MasterPlaylist.make(renditions: [Fixtures.aac128, Fixtures.aac256], style: .streamInfOnly,
                                             firstVariantID: "aac-128") { "\($0.id).m3u8" }
        #expect(try HLSParser().parseMaster(master.render()) == master)
        #expect(master.render() == #"""
        #EXTM3U
        #EXT-X-INDEPENDENT-SEGMENTS
        #EXT-X-STREAM-INF:BANDWIDTH=128990,AVERAGE-BANDWIDTH=128022,CODECS="mp4a.40.2"
        aac-128.m3u8
        #EXT-X-STREAM-INF:BANDWIDTH=256649,AVERAGE-BANDWIDTH=255476,CODECS="mp4a.40.2"
        aac-256.m3u8

        """#)
    }

    @Test func bandwidthFiguresComeFromRealSizes() {
        // Peak per RFC 8216 §4.3.4.2: windows of 3.5–10.5 s for a 7 s target. Segment 2 alone
        // (97 000 B / 6.016 s) is the peak; segment 3 alone (2.09 s) is too short to count.
        #expect(Fixtures.aac128.hlsPeakBitrate == Bitrate(bitsPerSecond: 128_990))
        #expect(Fixtures.aac128.peakSegmentBitrate == Bitrate(bitsPerSecond: 128_990))
        #expect(Fixtures.aac128.averageBitrate == Bitrate(bitsPerSecond: 128_022))
        // A short, dense last segment raises the single-segment peak but not the HLS peak.
        let dense = Fixtures.aac("x", sizes: [96_000, 96_000, 60_000])
        #expect(dense.peakSegmentBitrate == Bitrate(bitsPerSecond: 229_592))
        #expect(dense.hlsPeakBitrate == Bitrate(bitsPerSecond: 153_948))
    }

    @Test func liveSlidingWindow() throws {
        var rendition = Fixtures.long(count: 10)
        rendition.segments[3].discontinuity = true
        rendition.segments[3].start += 5 // a gap is fine at a discontinuity
        for index in 4..<10 { rendition.segments[index].start += 5 }
        rendition.segments[9].duration = 288_768
        let playlist = try MediaPlaylist.live(rendition, windowSegmentCount: 4, targetDuration: 6, discontinuitySequence: 2,
                                              programDateTimeOfZero: Timestamp(secondsSince1970: 1_764_072_000))
        #expect(try HLSParser().parseMedia(playlist.render()) == playlist)
        #expect(playlist.render() == #"""
        #EXTM3U
        #EXT-X-VERSION:6
        #EXT-X-TARGETDURATION:7
        #EXT-X-MEDIA-SEQUENCE:6
        #EXT-X-DISCONTINUITY-SEQUENCE:3
        #EXT-X-INDEPENDENT-SEGMENTS
        #EXT-X-MAP:URI="init.mp4"
        #EXT-X-PROGRAM-DATE-TIME:2025-11-25T12:00:36.096Z
        #EXTINF:6.016,
        seg-6.m4s
        #EXTINF:6.016,
        seg-7.m4s
        #EXTINF:6.016,
        seg-8.m4s
        #EXTINF:6.016,
        seg-9.m4s

        """#)
    }

    @Test func liveWindowIsExtendedToThreeTargetDurations() throws {
        let playlist = try MediaPlaylist.live(Fixtures.long(count: 10), windowSegmentCount: 1, targetDuration: 7, ended: true)
        // 3 × 7 s = 21 s needs five segments: 3 × 6.016 + 2.091 = 20.14 s is not enough.
        #expect(playlist.segments.count == 5)
        #expect(playlist.mediaSequence == 5)
        #expect(playlist.endList)
        #expect(playlist.playlistType == nil)
    }

    @Test func lowLatencyPlaylist() throws {
        let part = MediaTime.milliseconds(1_002)
        let playlist = MediaPlaylist(
            targetDuration: 4, mediaSequence: 266, independentSegments: true, partTarget: part,
            serverControl: ServerControl(canSkipUntil: .seconds(24), holdBack: .seconds(12), partHoldBack: .milliseconds(3_006), canBlockReload: true),
            segments: [
                MediaSegment(uri: "fileSequence266.m4s", duration: .milliseconds(4_000),
                             map: MediaInitialization(uri: "init.mp4"),
                             programDateTime: Timestamp(millisecondsSince1970: 1_764_072_001_250)),
                MediaSegment(uri: "fileSequence267.m4s", duration: .milliseconds(4_000), parts: [
                    PartialSegment(uri: "filePart267.0.m4s", duration: part, independent: true),
                    PartialSegment(uri: "filePart267.1.m4s", duration: part, independent: true),
                    PartialSegment(uri: "filePart267.2.m4s", duration: part, independent: true),
                    PartialSegment(uri: "filePart267.3.m4s", duration: .milliseconds(994), independent: true),
                ]),
            ],
            trailingParts: [
                PartialSegment(uri: "filePart268.0.m4s", duration: part, independent: true),
                PartialSegment(uri: "fileSequence268.m4s", duration: part, independent: true,
                               byteRange: HLSByteRange(length: 20_000, offset: 20_000)),
            ],
            preloadHints: [PreloadHint(type: .part, uri: "filePart268.2.m4s"),
                           PreloadHint(type: .map, uri: "init2.mp4", byteRangeStart: 0, byteRangeLength: 800)],
            renditionReports: [RenditionReport(uri: "../aac-64/live.m3u8", lastMediaSequenceNumber: 267, lastPart: 1)])
        #expect(playlist.render() == #"""
        #EXTM3U
        #EXT-X-VERSION:6
        #EXT-X-TARGETDURATION:4
        #EXT-X-MEDIA-SEQUENCE:266
        #EXT-X-INDEPENDENT-SEGMENTS
        #EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=24,HOLD-BACK=12,PART-HOLD-BACK=3.006,CAN-BLOCK-RELOAD=YES
        #EXT-X-PART-INF:PART-TARGET=1.002
        #EXT-X-MAP:URI="init.mp4"
        #EXT-X-PROGRAM-DATE-TIME:2025-11-25T12:00:01.250Z
        #EXTINF:4.000,
        fileSequence266.m4s
        #EXT-X-PART:DURATION=1.002,URI="filePart267.0.m4s",INDEPENDENT=YES
        #EXT-X-PART:DURATION=1.002,URI="filePart267.1.m4s",INDEPENDENT=YES
        #EXT-X-PART:DURATION=1.002,URI="filePart267.2.m4s",INDEPENDENT=YES
        #EXT-X-PART:DURATION=0.994,URI="filePart267.3.m4s",INDEPENDENT=YES
        #EXTINF:4.000,
        fileSequence267.m4s
        #EXT-X-PART:DURATION=1.002,URI="filePart268.0.m4s",INDEPENDENT=YES
        #EXT-X-PART:DURATION=1.002,URI="fileSequence268.m4s",INDEPENDENT=YES,BYTERANGE="20000@20000"
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI="filePart268.2.m4s"
        #EXT-X-PRELOAD-HINT:TYPE=MAP,URI="init2.mp4",BYTERANGE-START=0,BYTERANGE-LENGTH=800
        #EXT-X-RENDITION-REPORT:URI="../aac-64/live.m3u8",LAST-MSN=267,LAST-PART=1

        """#)
        #expect(try HLSParser().parseMedia(playlist.render()) == playlist)
    }

    @Test func deltaUpdateSkipsOldSegments() throws {
        var playlist = try MediaPlaylist.live(Fixtures.long(count: 20), windowSegmentCount: 12, targetDuration: 7)
        playlist.serverControl = ServerControl(canSkipUntil: .seconds(42))
        let delta = playlist.deltaUpdate()
        // The window lasts 11 × 6.016 + 2.091 = 68.27 s; segments starting more than 42 s before the
        // end are skipped: the first 5 of 12.
        #expect(delta.skip == SkipInformation(skippedSegments: 5))
        #expect(delta.segments.count == 7)
        #expect(delta.segments.first?.uri == "seg-13.m4s")
        #expect(delta.mediaSequence == playlist.mediaSequence)
        #expect(delta.minimumVersion == 9)
        let text = delta.render()
        #expect(text.contains("#EXT-X-VERSION:9\n"))
        #expect(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n"))
        #expect(try HLSParser().parseMedia(text) == delta.roundedToMilliseconds())
        // Idempotent, and a playlist without CAN-SKIP-UNTIL is returned unchanged.
        #expect(delta.deltaUpdate() == delta)
        playlist.serverControl = nil
        #expect(playlist.deltaUpdate() == playlist)
    }

    @Test func encryptionTagsAndVersions() throws {
        let iv: [UInt8] = Array(0..<16)
        var playlist = MediaPlaylist(targetDuration: 6, playlistType: .event, segments: [
            MediaSegment(uri: "a.m4s", duration: .seconds(6), encryption: .key(EncryptionKey(method: .sampleAES, uri: "skd://key-1",
                         initializationVector: iv, keyFormat: "com.apple.streamingkeydelivery", keyFormatVersions: [1, 2]))),
            MediaSegment(uri: "b.m4s", duration: .seconds(6), encryption: SegmentEncryption.none),
        ])
        #expect(playlist.minimumVersion == 5)
        let text = playlist.render()
        #expect(text.contains(#"#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://key-1",IV=0x000102030405060708090a0b0c0d0e0f,KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1/2""#))
        #expect(text.contains("#EXT-X-KEY:METHOD=NONE\n"))
        #expect(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"))
        #expect(try HLSParser().parseMedia(text) == playlist)
        playlist.segments[0].encryption = .key(EncryptionKey(method: .aes128, uri: "k"))
        #expect(playlist.minimumVersion == 3)

        let master = MasterPlaylist(sessionKeys: [EncryptionKey(method: .sampleAES, uri: "skd://key-1", keyFormat: "com.apple.streamingkeydelivery")],
                                    variants: [VariantStream(uri: "a.m3u8", bandwidth: .kilobitsPerSecond(128))])
        #expect(try HLSParser().parseMaster(master.render()) == master)
        #expect(master.render() == #"""
        #EXTM3U
        #EXT-X-VERSION:5
        #EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://key-1",KEYFORMAT="com.apple.streamingkeydelivery"
        #EXT-X-STREAM-INF:BANDWIDTH=128000
        a.m3u8

        """#)
    }

    @Test func renderingEscapesWhatCannotBeWritten() throws {
        let playlist = MediaPlaylist(targetDuration: 6, segments: [
            MediaSegment(uri: "#weird\"name.m4s", duration: .seconds(1), title: "two\nlines",
                         map: MediaInitialization(uri: "in\"it.mp4")),
        ])
        let text = playlist.render()
        #expect(text.contains("\n%23weird%22name.m4s\n"))
        #expect(text.contains(#"#EXT-X-MAP:URI="in%22it.mp4""#))
        #expect(text.contains("#EXTINF:1.000,two lines\n"))
        let reparsed = try HLSParser().parseMedia(text)
        #expect(reparsed.segments[0].uri == "%23weird%22name.m4s")
        let master = MasterPlaylist(renditions: [AlternativeRendition(type: .audio, groupID: "a\"b", name: "x\r\ny")],
                                    variants: [VariantStream(uri: "v.m3u8", bandwidth: .kilobitsPerSecond(1), audioGroup: "a\"b")])
        let masterText = master.render()
        #expect(masterText.contains(#"GROUP-ID="a'b",NAME="x y""#))
        #expect(try HLSParser().parseMaster(masterText).variants[0].audioGroup == "a'b")
    }
}
