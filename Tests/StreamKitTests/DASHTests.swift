import Foundation
import Testing
@testable import StreamKit

@Suite struct DASHTests {
    static let dynamicTiming = MPD.DynamicTiming(
        availabilityStartTime: Timestamp(secondsSince1970: 1_764_072_000),
        publishTime: Timestamp(millisecondsSince1970: 1_764_072_120_500),
        minimumUpdatePeriod: .seconds(6), timeShiftBufferDepth: .seconds(30),
        suggestedPresentationDelay: .milliseconds(12_500))

    @Test func staticMPDGolden() throws {
        let mpd = try MPD.vod(renditions: [Fixtures.aac256, Fixtures.aac128, Fixtures.opus96])
        #expect(mpd.render() == #"""
        <?xml version="1.0" encoding="UTF-8"?>
        <MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="static" mediaPresentationDuration="PT14.123S" minBufferTime="PT7S">
          <Period id="0">
            <AdaptationSet id="0" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">
              <Representation id="aac-128" bandwidth="128990" codecs="mp4a.40.2" audioSamplingRate="48000">
                <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
                <SegmentTemplate timescale="48000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number$.m4s" startNumber="1">
                  <SegmentTimeline>
                    <S t="0" d="288768" r="1"/>
                    <S d="100352"/>
                  </SegmentTimeline>
                </SegmentTemplate>
              </Representation>
              <Representation id="aac-256" bandwidth="256649" codecs="mp4a.40.2" audioSamplingRate="48000">
                <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
                <SegmentTemplate timescale="48000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number$.m4s" startNumber="1">
                  <SegmentTimeline>
                    <S t="0" d="288768" r="1"/>
                    <S d="100352"/>
                  </SegmentTimeline>
                </SegmentTemplate>
              </Representation>
            </AdaptationSet>
            <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="en" segmentAlignment="true" startWithSAP="1">
              <Representation id="opus-96" bandwidth="96667" codecs="opus" audioSamplingRate="48000">
                <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
                <SegmentTemplate timescale="48000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number$.m4s" startNumber="1">
                  <SegmentTimeline>
                    <S t="0" d="288000" r="1"/>
                    <S d="96000"/>
                  </SegmentTimeline>
                </SegmentTemplate>
              </Representation>
            </AdaptationSet>
          </Period>
        </MPD>

        """#)
    }

    @Test("low-latency live MPD: chunked availability on every SegmentTemplate, ServiceDescription before the Period, a direct UTCTiming")
    func lowLatencyLiveMPD() throws {
        let rendition = Fixtures.long(count: 12)
        let now = Timestamp(millisecondsSince1970: 1_764_072_120_500)
        let mpd = try MPD.live(renditions: [rendition, Fixtures.opus96], timing: Self.dynamicTiming, utcTiming: .directTiming(now),
                               lowLatency: (availabilityTimeOffset: .milliseconds(5_040), targetLatency: .milliseconds(2_880)))
        let text = mpd.render()
        #expect(mpd.targetLatency == .milliseconds(2_880))
        #expect(text.components(separatedBy: #"availabilityTimeOffset="5.04" availabilityTimeComplete="false""#).count == 3, "\(text)")
        let service = try #require(text.range(of: #"<ServiceDescription id="0">"#))
        let latency = try #require(text.range(of: #"<Latency target="2880"/>"#))
        let period = try #require(text.range(of: "<Period "))
        #expect(service.lowerBound < latency.lowerBound && latency.upperBound < period.lowerBound)
        #expect(text.contains(#"<UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="2025-11-25T12:02:00.500Z"/>"#), "\(text)")
        // Without low latency nothing of it appears.
        let plain = try MPD.live(renditions: [rendition], timing: Self.dynamicTiming).render()
        #expect(!plain.contains("availabilityTime") && !plain.contains("ServiceDescription"))
    }

    /// `InbandEventStream` (ID3 timed metadata in `emsg`) sits where 23009-1's schema puts it:
    /// after `ContentProtection`, before `Role` and the representations.
    @Test func inbandEventStreamOrder() throws {
        var mpd = try MPD.live(renditions: [Fixtures.long(count: 6)], timing: Self.dynamicTiming,
                               contentProtections: [.mp4Protection(scheme: "cenc", defaultKID: "10000000-1000-1000-1000-100000000001")])
        mpd.periods[0].adaptationSets[0].inbandEventStreams = [.id3TimedMetadata]
        mpd.periods[0].adaptationSets[0].roles = [Descriptor(schemeIdURI: "urn:mpeg:dash:role:2011", value: "main")]
        let text = mpd.render()
        let protection = try #require(text.range(of: "<ContentProtection "))
        let events = try #require(text.range(of: #"<InbandEventStream schemeIdUri="https://aomedia.org/emsg/ID3"/>"#), "\(text)")
        let role = try #require(text.range(of: "<Role "))
        let representation = try #require(text.range(of: "<Representation "))
        #expect(protection.upperBound < events.lowerBound && events.upperBound < role.lowerBound && role.upperBound < representation.lowerBound)
        #expect(!(try MPD.live(renditions: [Fixtures.long(count: 6)], timing: Self.dynamicTiming).render().contains("InbandEventStream")))
    }

    @Test func dynamicMPDGolden() throws {
        var rendition = Fixtures.long(count: 20)
        rendition.segments[19].duration = 288_768
        let mpd = try MPD.live(
            renditions: [rendition], timing: Self.dynamicTiming,
            contentProtections: [.mp4Protection(scheme: "cbcs", defaultKID: "10000000-1000-1000-1000-100000000001"),
                                 ContentProtection(schemeIdURI: "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed", psshBase64: "AAAAQHBzc2g=")],
            utcTiming: .httpISOTiming(url: "https://time.example/now?iso&fmt=1"))
        #expect(mpd.render() == #"""
        <?xml version="1.0" encoding="UTF-8"?>
        <MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013" profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019" type="dynamic" availabilityStartTime="2025-11-25T12:00:00Z" publishTime="2025-11-25T12:02:00.500Z" minimumUpdatePeriod="PT6S" timeShiftBufferDepth="PT30S" suggestedPresentationDelay="PT12.5S" minBufferTime="PT7S">
          <Period id="0" start="PT0S">
            <AdaptationSet id="0" contentType="audio" mimeType="audio/mp4" segmentAlignment="true" startWithSAP="1">
              <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cbcs" cenc:default_KID="10000000-1000-1000-1000-100000000001"/>
              <ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed">
                <cenc:pssh>AAAAQHBzc2g=</cenc:pssh>
              </ContentProtection>
              <Representation id="aac-128" bandwidth="128458" codecs="mp4a.40.2" audioSamplingRate="48000">
                <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
                <SegmentTemplate timescale="48000" initialization="init.mp4" media="seg-$Number$.m4s" startNumber="15">
                  <SegmentTimeline>
                    <S t="4331520" d="288768" r="4"/>
                  </SegmentTimeline>
                </SegmentTemplate>
              </Representation>
            </AdaptationSet>
          </Period>
          <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://time.example/now?iso&amp;fmt=1"/>
        </MPD>

        """#)
    }

    @Test func singleFileUsesSegmentListAndMainProfile() throws {
        let rendition = Fixtures.aac("a", sizes: [10, 20, 30], addressing: .singleFile(uri: "a&b.mp4", initializationByteSize: 700))
        let text = try MPD.vod(renditions: [rendition]).render()
        #expect(text.contains(#"profiles="urn:mpeg:dash:profile:isoff-main:2011""#))
        #expect(text.contains("<BaseURL>a&amp;b.mp4</BaseURL>"))
        #expect(text.contains(#"<Initialization range="0-699"/>"#))
        #expect(text.contains(#"<SegmentURL mediaRange="700-709"/>"#))
        #expect(text.contains(#"<SegmentURL mediaRange="730-759"/>"#))
    }

    @Test func namedFilesUseSegmentListWithSegmentURLs() throws {
        let media = ["v/seg-1-aa.m4s?t=1&x", "v/seg-2-bb.m4s?t=1&x", "v/seg-3-cc.m4s?t=1&x"]
        let rendition = Fixtures.aac("a", sizes: [10, 20, 30], addressing: .files(initialization: "v/init.mp4?t=1", media: media))
        let text = try MPD.vod(renditions: [rendition]).render()
        #expect(text.contains(#"profiles="urn:mpeg:dash:profile:isoff-main:2011""#))
        #expect(!text.contains("<BaseURL>"))
        #expect(!text.contains("startNumber"), "1 is the default (and FFmpeg 5.1 skips a segment when it is written)")
        #expect(text.contains(#"<Initialization sourceURL="v/init.mp4?t=1"/>"#))
        #expect(text.contains(#"<SegmentURL media="v/seg-1-aa.m4s?t=1&amp;x"/>"#))
        #expect(text.contains(#"<SegmentURL media="v/seg-3-cc.m4s?t=1&amp;x"/>"#))
        #expect(text.components(separatedBy: "<SegmentURL").count == 4)
        // HLS lists the same files.
        let playlist = try MediaPlaylist.vod(rendition).render()
        #expect(playlist.contains("v/seg-2-bb.m4s?t=1&x\n") && playlist.contains(#"#EXT-X-MAP:URI="v/init.mp4?t=1""#), "\(playlist)")
        // A list that does not name every segment is refused.
        let short = Fixtures.aac("a", sizes: [10, 20, 30], addressing: .files(initialization: "i.mp4", media: ["1.m4s"]))
        #expect(throws: ManifestBuildError.self) { try MPD.vod(renditions: [short]) }
        #expect(throws: ManifestBuildError.self) { try MediaPlaylist.vod(short) }
    }

    @Test func timelineRunLengthEncoding() {
        let segments = [
            SegmentInfo(number: 1, start: 10, duration: 5, byteSize: 1),
            SegmentInfo(number: 2, start: 15, duration: 5, byteSize: 1),
            SegmentInfo(number: 3, start: 20, duration: 4, byteSize: 1),
            SegmentInfo(number: 4, start: 30, duration: 4, byteSize: 1, discontinuity: true),
            SegmentInfo(number: 5, start: 34, duration: 4, byteSize: 1),
        ]
        #expect(TimelineEntry.timeline(for: segments) == [
            TimelineEntry(time: 10, duration: 5, repeatCount: 1),
            TimelineEntry(time: nil, duration: 4),
            TimelineEntry(time: 30, duration: 4, repeatCount: 1),
        ])
    }

    @Test func xsDurations() {
        #expect(MediaTime.zero.xsDuration == "PT0S")
        #expect(MediaTime.seconds(3_600).xsDuration == "PT1H0M0S")
        #expect(MediaTime(value: 3_723_500, timescale: 1000).xsDuration == "PT1H2M3.5S")
        #expect(MediaTime.seconds(61).xsDuration == "PT1M1S")
        #expect(MediaTime(value: -1500, timescale: 1000).xsDuration == "-PT1.5S")
        #expect(MediaTime(value: 1, timescale: 48_000).xsDuration == "PT0S")
    }

    @Test func attributeEscaping() {
        #expect(XMLText.attribute("a&b<c>\"d'e\tf\ng\rh\u{1}i") == "a&amp;b&lt;c&gt;&quot;d&apos;e&#9;f&#10;g&#13;hi")
        #expect(XMLText.attribute("plain") == "plain")
        #expect(XMLText.text("x<&>\u{2}\ty") == "x&lt;&amp;&gt;\ty")
        var mpd = MPD(type: .static(mediaPresentationDuration: .seconds(1)), minBufferTime: .seconds(1), baseURL: "https://cdn/?a=1&b=2",
                      periods: [Period(id: "p\"1", adaptationSets: [AdaptationSet(id: 0, roles: [Descriptor(schemeIdURI: "urn:mpeg:dash:role:2011", value: "main")], representations: [])])])
        mpd.profiles = ["urn:mpeg:dash:profile:isoff-live:2011"]
        let text = mpd.render()
        #expect(text.contains("<BaseURL>https://cdn/?a=1&amp;b=2</BaseURL>"))
        #expect(text.contains(#"<Period id="p&quot;1">"#))
        #expect(text.contains(#"<Role schemeIdUri="urn:mpeg:dash:role:2011" value="main"/>"#))
    }

    @Test func builderErrors() {
        #expect(throws: ManifestBuildError(renditionID: nil, kind: .noRenditions)) { try MPD.vod(renditions: []) }
        #expect(throws: ManifestBuildError(renditionID: nil, kind: .duplicateRenditionID)) { try MPD.vod(renditions: [Fixtures.aac128, Fixtures.aac128]) }
        var broken = Fixtures.aac128
        broken.segments[1].number = 5
        #expect(throws: ManifestBuildError(renditionID: "aac-128", kind: .nonConsecutiveNumbers(after: 1))) {
            try MPD.live(renditions: [broken], timing: Self.dynamicTiming)
        }
    }

    /// Every MPD the tests render is well-formed XML (xmllint) and, when `STREAMKIT_MPD_XSD` points to
    /// ISO/IEC 23009-1's DASH-MPD.xsd, valid against it. The schema is not shipped with the package.
    @Test func renderedMPDsAreWellFormedAndSchemaValid() throws {
        guard let xmllint = Tool.find("xmllint") else {
            Issue.record("xmllint is required (apt-get install libxml2-utils)")
            return
        }
        var rendition = Fixtures.long(count: 30)
        rendition.segments[20].discontinuity = true
        let mpds: [MPD] = [
            try MPD.vod(renditions: [Fixtures.aac256, Fixtures.aac128, Fixtures.opus96]),
            try MPD.vod(renditions: [Fixtures.aac("a", sizes: [10, 20, 30], addressing: .singleFile(uri: "a.mp4", initializationByteSize: 700))]),
            try MPD.vod(renditions: [Fixtures.aac("a", sizes: [10, 20], addressing: .files(initialization: "i.mp4?t=1", media: ["1.m4s?t=1&u", "2.m4s"]))]),
            try MPD.live(renditions: [rendition], timing: Self.dynamicTiming,
                         contentProtections: [.mp4Protection(scheme: "cenc", defaultKID: "10000000-1000-1000-1000-100000000001"),
                                              ContentProtection(schemeIdURI: "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95", value: "PlayReady", psshBase64: "AAAA")],
                         utcTiming: .httpISOTiming(url: "https://time.example/?a&b")),
            try MPD.vod(renditions: [Fixtures.long(count: 599)]),
            try MPD.live(renditions: [Fixtures.long(count: 12)], timing: Self.dynamicTiming,
                         utcTiming: .directTiming(Timestamp(millisecondsSince1970: 1_764_072_120_500)),
                         lowLatency: (availabilityTimeOffset: .milliseconds(5_040), targetLatency: .milliseconds(2_880))),
        ]
        let directory = try Tool.temporaryDirectory("mpd")
        defer { try? FileManager.default.removeItem(at: directory) }
        let schema = ProcessInfo.processInfo.environment["STREAMKIT_MPD_XSD"]
        for (index, mpd) in mpds.enumerated() {
            let file = directory.appendingPathComponent("\(index).mpd")
            try mpd.render().write(to: file, atomically: true, encoding: .utf8)
            let wellFormed = try Tool.run(xmllint, ["--noout", file.path])
            #expect(wellFormed.status == 0, "MPD \(index): \(wellFormed.stderr)")
            if let schema {
                let valid = try Tool.run(xmllint, ["--noout", "--schema", schema, file.path])
                #expect(valid.status == 0, "MPD \(index) against \(schema): \(valid.stderr)")
            }
        }
    }
}
