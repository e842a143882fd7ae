import Foundation
@testable import StreamHost
import StreamKit
import Testing
import TestSupport

@Suite("Track storage layout: every key of a track in one type")
struct TrackLayoutTests {
    @Test func keysFollowTheDocumentedLayout() {
        let track = TrackLayout(track: "t1")
        #expect(track.prefix == "tracks/t1/")
        #expect(track.source(fileExtension: "flac") == "tracks/t1/source/original.flac")
        let v2 = track.version(2)
        #expect(v2.prefix == "tracks/t1/v2/")
        #expect(v2.manifest == "tracks/t1/v2/manifest.json")
        #expect(v2.waveformJSON == "tracks/t1/v2/waveform.json")
        #expect(v2.initSegment(rendition: "aac-128") == "tracks/t1/v2/cmaf/aac-128/init.mp4")
        #expect(v2.segment(rendition: "aac-128", number: 7) == "tracks/t1/v2/cmaf/aac-128/seg-7.m4s")
        #expect(v2.object("progressive/mp3-320.mp3") == "tracks/t1/v2/progressive/mp3-320.mp3")
        #expect(v2.relative("tracks/t1/v2/progressive/mp3-320.mp3") == "progressive/mp3-320.mp3")
        #expect(v2.relative("tracks/t1/v20/progressive/mp3-320.mp3") == nil)
        #expect(v2.mediaPathPrefix + "cmaf/x/init.mp4" == "v2/cmaf/x/init.mp4")
        #expect(track.object("v2/cmaf/x/init.mp4") == v2.initSegment(rendition: "x"))
        #expect(TrackLayout.isManifest(v2.manifest) && !TrackLayout.isManifest(v2.waveformJSON))
        #expect(SegmentTemplateText.expand(TrackLayout.segmentTemplate, representationID: "opus-96", number: 3, time: nil, bandwidth: nil)
                == "cmaf/opus-96/seg-3.m4s")
    }

    /// Deleting a track or a version by its prefix never touches a neighbour whose id or version
    /// number starts the same way (`t1` and `t10`, `v1` and `v10`).
    @Test func prefixesDoNotReachNeighbours() async throws {
        let root = Fixtures.directory + "/layout-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let disk = try LocalDiskStorage(root: root)
        let keys = [TrackLayout(track: "t1").version(1).manifest, TrackLayout(track: "t1").version(10).manifest,
                    TrackLayout(track: "t10").version(1).manifest, TrackLayout(track: "t1").source(fileExtension: "wav")]
        for key in keys { try await disk.put(Array("x".utf8), key: key) }
        try await disk.delete(prefix: TrackLayout(track: "t1").version(1).prefix)
        #expect(try await disk.list(prefix: "tracks/").sorted() == keys.dropFirst().sorted())
        try await disk.delete(prefix: TrackLayout(track: "t1").prefix)
        #expect(try await disk.list(prefix: "tracks/") == [keys[2]])
    }
}

@Suite("JSON log lines")
struct JSONLogTimestampTests {
    @Test("timestamps are ISO 8601 UTC with milliseconds, as Foundation formats them")
    func timestamps() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        for seconds in [0.0, 951_782_400.5, 1_796_418_279.125, 4_102_444_799.875, 1_709_164_800.0, -86_400.25] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(JSONLogHandler.timestamp(date) == formatter.string(from: date), "\(seconds)")
        }
    }
}
