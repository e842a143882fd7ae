import PropertyBased
import Testing
@testable import StreamKit

@Suite struct MediaTimeTests {
    @Test func decimalRenderingRoundsHalfUp() {
        #expect(MediaTime(value: 288_768, timescale: 48_000).decimalString(fractionDigits: 3) == "6.016")
        #expect(MediaTime(value: 100_352, timescale: 48_000).decimalString(fractionDigits: 3) == "2.091")
        #expect(MediaTime(value: 1, timescale: 2_000).decimalString(fractionDigits: 3) == "0.001") // 0.0005 → up
        #expect(MediaTime(value: 1, timescale: 3).decimalString(fractionDigits: 3) == "0.333")
        #expect(MediaTime(value: 2, timescale: 3).decimalString(fractionDigits: 0) == "1")
        #expect(MediaTime(value: -3, timescale: 2).decimalString(fractionDigits: 1) == "-1.5")
        #expect(MediaTime(value: 5, timescale: 1).compactDecimalString() == "5")
        #expect(MediaTime(value: 15, timescale: 10).compactDecimalString() == "1.5")
        #expect(MediaTime(value: -1, timescale: 10_000).compactDecimalString() == "0")
        #expect(MediaTime(value: 6, timescale: 1).description == "6/1")
    }

    @Test func ceilingAndRounding() {
        #expect(MediaTime(value: 288_768, timescale: 48_000).ceilingSeconds == 7)
        #expect(MediaTime(value: 288_000, timescale: 48_000).ceilingSeconds == 6)
        #expect(MediaTime(value: 288_001, timescale: 48_000).ceilingSeconds == 7)
        #expect(MediaTime(value: -1, timescale: 2).ceilingSeconds == 0)
        #expect(MediaTime(value: 3, timescale: 2).roundedSeconds == 2)
        #expect(MediaTime(value: -3, timescale: 2).roundedSeconds == -1)
        #expect(MediaTime(value: 1_024, timescale: 48_000).converted(to: 1000) == MediaTime(value: 21, timescale: 1000))
        #expect(MediaTime(value: Int64.max / 2, timescale: 1).rounded(toUnitsPerSecond: 1) == Int64.max / 2)
    }

    @Test func parsingDecimals() {
        #expect(MediaTime(decimalSeconds: "6") == .seconds(6))
        #expect(MediaTime(decimalSeconds: "6.016") == MediaTime(value: 6_016, timescale: 1_000))
        #expect(MediaTime(decimalSeconds: "-0.5") == MediaTime(value: -1, timescale: 2))
        #expect(MediaTime(decimalSeconds: "0.1234567891") == MediaTime(value: 123_456_789, timescale: 1_000_000_000))
        #expect(MediaTime(decimalSeconds: "0.1234567895") == MediaTime(value: 123_456_790, timescale: 1_000_000_000))
        for bad in ["", ".5", "5.", "1e3", "a", "--1", "1.2.3", "9999999999999", " 1"] {
            #expect(MediaTime(decimalSeconds: bad) == nil, "\(bad)")
        }
    }

    @Test func equalityAndHashingAreByValue() {
        let a = MediaTime(value: 6_000, timescale: 1_000)
        let b = MediaTime(value: 288_000, timescale: 48_000)
        #expect(a == b)
        #expect(Set([a, b]).count == 1)
        #expect(a.hashValue == b.hashValue)
        #expect(MediaTime(value: 1, timescale: 3) < MediaTime(value: 34, timescale: 100))
        #expect(MediaTime.zero.hashValue == MediaTime(value: 0, timescale: 48_000).hashValue)
    }

    @Test func exactArithmetic() async {
        #expect(MediaTime(value: 1, timescale: 3) + MediaTime(value: 1, timescale: 6) == MediaTime(value: 1, timescale: 2))
        #expect((MediaTime(value: 1_024, timescale: 48_000) + MediaTime(value: 960, timescale: 48_000)).timescale == 48_000)
        #expect(MediaTime.seconds(1) - MediaTime.milliseconds(1) == MediaTime(value: 999, timescale: 1_000))
        await propertyCheck(input: Gen.int64(in: -1_000_000...1_000_000), Gen.int32(in: 1...96_000), Gen.int64(in: -1_000_000...1_000_000)) { value, timescale, other in
            let x = MediaTime(value: value, timescale: timescale)
            let y = MediaTime(value: other, timescale: 1_000)
            #expect((x + y) - y == x)
            #expect(x.converted(to: timescale) == x)
            #expect(MediaTime(decimalSeconds: x.decimalString(fractionDigits: 6)) == x.converted(to: 1_000_000))
            #expect(Double(x.ceilingSeconds) >= x.seconds && Double(x.ceilingSeconds) < x.seconds + 1)
        }
    }
}

@Suite struct TimestampTests {
    @Test func iso8601() {
        #expect(Timestamp(secondsSince1970: 0).iso8601 == "1970-01-01T00:00:00Z")
        #expect(Timestamp(millisecondsSince1970: 1_764_072_000_250).description == "2025-11-25T12:00:00.250Z")
        #expect(Timestamp(millisecondsSince1970: -1).iso8601 == "1969-12-31T23:59:59.999Z")
        #expect(Timestamp(secondsSince1970: 951_782_400).iso8601 == "2000-02-29T00:00:00Z")
        #expect(Timestamp(millisecondsSince1970: -1).secondsSince1970 == -1)
        #expect(Timestamp(iso8601: "2025-11-25T12:00:00Z") == Timestamp(secondsSince1970: 1_764_072_000))
        #expect(Timestamp(iso8601: "2025-11-25T12:00:00.25Z") == Timestamp(millisecondsSince1970: 1_764_072_000_250))
        #expect(Timestamp(iso8601: "2025-11-25T12:00:00.123456z") == Timestamp(millisecondsSince1970: 1_764_072_000_123))
        #expect(Timestamp(iso8601: "2025-11-25T14:30:00+02:30") == Timestamp(secondsSince1970: 1_764_072_000))
        #expect(Timestamp(iso8601: "2025-11-25T09:00:00-03:00") == Timestamp(secondsSince1970: 1_764_072_000))
        for bad in ["2025-11-25", "2025-11-25T12:00:00", "2025-13-25T12:00:00Z", "2025-02-29T12:00:00Z", "2025-11-25T24:00:00Z",
                    "2025-11-25T12:00:00.Z", "2025-11-25T12:00:00+2:00", "2025-11-25T12:00:00+02:60", "2025-11-25T12:00:00ZZ",
                    "2025-11-25 12:00:00Z", "2025-11-25T12:00:00X", "2025-11-25T12:00:00+02:00x", "2025/11/25T12:00:00Z"] {
            #expect(Timestamp(iso8601: bad[...]) == nil, "\(bad)")
        }
        #expect(Timestamp(secondsSince1970: 10).adding(MediaTime(value: 1, timescale: 3)) == Timestamp(millisecondsSince1970: 10_333))
    }

    @Test func roundTripsThroughISO8601() async {
        await propertyCheck(input: Gen.int64(in: -2_000_000_000_000...8_000_000_000_000)) { millis in
            let instant = Timestamp(millisecondsSince1970: millis)
            #expect(Timestamp(iso8601: instant.iso8601[...]) == instant)
            #expect(HTTPDate.parse(HTTPDate.render(instant)) == Timestamp(secondsSince1970: instant.secondsSince1970))
        }
    }

    @Test func bitrates() {
        #expect(Bitrate(byteCount: 1_000, duration: .seconds(1)) == Bitrate(bitsPerSecond: 8_000))
        #expect(Bitrate(byteCount: 1, duration: .seconds(3)) == Bitrate(bitsPerSecond: 3)) // 2.67 rounds up
        #expect(Bitrate(byteCount: 1, duration: .zero) == nil)
        #expect(Bitrate.kilobitsPerSecond(128).description == "128000 b/s")
        #expect(AudioCodec.opus.description == "opus")
        #expect([AudioCodec.aacLC, .heAAC, .heAACv2, .opus, .flac, .mp3].map(\.codecsString) == ["mp4a.40.2", "mp4a.40.5", "mp4a.40.29", "opus", "fLaC", "mp4a.40.34"])
    }
}

@Suite struct RenditionModelTests {
    @Test func templateExpansion() {
        func expand(_ template: String) -> String {
            SegmentTemplateText.expand(template, representationID: "aac-128", number: 7, time: 288_768, bandwidth: .kilobitsPerSecond(128))
        }
        #expect(expand("$RepresentationID$/seg-$Number$.m4s") == "aac-128/seg-7.m4s")
        #expect(expand("seg-$Number%05d$.m4s") == "seg-00007.m4s")
        #expect(expand("t-$Time$-$Bandwidth$.m4s") == "t-288768-128000.m4s")
        #expect(expand("$Time%03d$") == "288768")
        #expect(expand("cost$$.m4s") == "cost$.m4s")
        #expect(expand("$Unknown$-$Number$") == "$Unknown$-7")
        #expect(expand("$Number%5d$") == "7")
        #expect(expand("open$Number") == "open$Number")
        #expect(expand("no-identifiers.m4s") == "no-identifiers.m4s")
        #expect(SegmentTemplateText.expand("$Number$/$Time$/$Bandwidth$", representationID: "x", number: nil, time: nil, bandwidth: nil) == "$Number$/$Time$/$Bandwidth$")
    }

    @Test func addressing() {
        let single = Fixtures.aac("a", sizes: [10, 20, 30], addressing: .singleFile(uri: "a.mp4", initializationByteSize: 5))
        #expect(single.initializationURI == "a.mp4")
        #expect(single.uri(of: single.segments[2]) == "a.mp4")
        let bandwidth = Fixtures.aac("b", sizes: [10, 20, 30], addressing: .template(initialization: "$Bandwidth$/i.mp4", media: "$Bandwidth$/$Number$.m4s"))
        #expect(bandwidth.initializationURI == "\(bandwidth.peakSegmentBitrate.bitsPerSecond)/i.mp4")
        #expect(bandwidth.uri(of: bandwidth.segments[0]) == "\(bandwidth.peakSegmentBitrate.bitsPerSecond)/1.m4s")
        // A rendition shorter than half a target duration falls back to the average for BANDWIDTH.
        let tiny = Rendition(id: "t", codec: .opus, sampleRate: 48_000, channelCount: 1, timescale: 48_000,
                             addressing: .template(initialization: "i", media: "m"),
                             segments: [SegmentInfo(number: 0, start: 0, duration: 4_800, byteSize: 100)])
        #expect(tiny.hlsPeakBitrate == tiny.averageBitrate)
        #expect(tiny.averageBitrate == Bitrate(bitsPerSecond: 8_000))
        var empty = tiny
        empty.segments = []
        #expect(empty.averageBitrate == Bitrate(bitsPerSecond: 0))
        #expect(empty.peakSegmentBitrate == Bitrate(bitsPerSecond: 0))
    }

    static let invalid: [(String, Rendition, ManifestBuildError.Kind)] = {
        var noSegments = Fixtures.aac128
        noSegments.segments = []
        var zeroDuration = Fixtures.aac128
        zeroDuration.segments[1].duration = 0
        var negativeSize = Fixtures.aac128
        negativeSize.segments[2].byteSize = -1
        var gap = Fixtures.aac128
        gap.segments[2].start += 1
        var renumbered = Fixtures.aac128
        renumbered.segments[2].number = 2
        var emptyInit = Fixtures.aac128
        emptyInit.addressing = .singleFile(uri: "x.mp4", initializationByteSize: 0)
        var emptyRange = Fixtures.aac128
        emptyRange.addressing = .singleFile(uri: "x.mp4", initializationByteSize: 10)
        emptyRange.segments[0].byteSize = 0
        return [
            ("noSegments", noSegments, .noSegments),
            ("zeroDuration", zeroDuration, .invalidSegment(number: 2)),
            ("negativeSize", negativeSize, .invalidSegment(number: 3)),
            ("gap", gap, .timelineGap(number: 3)),
            ("renumbered", renumbered, .nonConsecutiveNumbers(after: 2)),
            ("emptyInit", emptyInit, .invalidParameter("initializationByteSize")),
            ("emptyRange", emptyRange, .invalidSegment(number: 1)),
        ]
    }()

    @Test(arguments: invalid.map(\.0))
    func buildersRejectInvalidModels(_ name: String) {
        let (_, rendition, kind) = Self.invalid.first { $0.0 == name }!
        let expected = ManifestBuildError(renditionID: rendition.id, kind: kind)
        #expect(throws: expected) { try MediaPlaylist.vod(rendition) }
        #expect(throws: expected) { try MasterPlaylist.make(renditions: [rendition]) { $0.id } }
        #expect(throws: expected) { try MPD.vod(renditions: [rendition]) }
        #expect(throws: expected) { try MediaPlaylist.live(rendition, windowSegmentCount: 3, targetDuration: 6) }
    }

    @Test func otherBuilderErrors() {
        #expect(throws: ManifestBuildError(renditionID: "aac-128", kind: .invalidParameter("windowSegmentCount"))) {
            try MediaPlaylist.live(Fixtures.aac128, windowSegmentCount: 0, targetDuration: 6)
        }
        #expect(throws: ManifestBuildError(renditionID: nil, kind: .noRenditions)) { try MasterPlaylist.make(renditions: []) { $0.id } }
        #expect(throws: ManifestBuildError(renditionID: nil, kind: .duplicateRenditionID)) {
            try MasterPlaylist.make(renditions: [Fixtures.aac128, Fixtures.aac128]) { $0.id }
        }
        #expect(ManifestBuildError(renditionID: nil, kind: .noRenditions).description == "rendition -: noRenditions")
        // A discontinuity allows a jump in the timeline.
        var jump = Fixtures.aac128
        jump.segments[2].start += 1_000
        jump.segments[2].discontinuity = true
        #expect(throws: Never.self) { try jump.validate() }
    }
}
