import Testing
import StreamKit

@Suite("LiveObjectName: the names of a live rung's objects")
struct LiveObjectNameTests {
    @Test("Names round-trip through fileName")
    func roundTrip() {
        let names: [LiveObjectName] = [.playlist, .initialization, .segment(sequence: 0), .segment(sequence: 999_999_999),
                                       .part(sequence: 0, index: 0), .part(sequence: 12, index: 11), .part(sequence: 999_999_999, index: 99)]
        for name in names {
            #expect(LiveObjectName(name.fileName) == name, "\(name.fileName)")
        }
        #expect(LiveObjectName.part(sequence: 3, index: 7).fileName == "part-3.7.m4s")
        #expect(LiveObjectName.segment(sequence: 42).fileName == "seg-42.m4s")
        #expect(LiveObjectName.part(absolute: 12 * 5 + 7, partsPerSegment: 12) == .part(sequence: 5, index: 7))
        #expect(LiveObjectName(Substring("xindex.m3u8").dropFirst()) == .playlist)
    }

    @Test("Anything else is no name", arguments: [
        "", "index.m3u", "Index.m3u8", "init.mp4 ", "seg-.m4s", "seg-1", "seg-1.m4", "seg-+1.m4s", "seg--1.m4s", "seg-1 .m4s",
        "seg-1234567890.m4s", "seg-1.2.m4s", "seg-x.m4s", "part-1.m4s", "part-1..m4s", "part-.1.m4s", "part-1.100.m4s",
        "part-1.2.3.m4s", "part-1.-2.m4s", "part-1.2.m4s/", "../seg-1.m4s", "seg-١.m4s", "part-1.2.mp4", ".m4s", "seg-1.m4s.m4s",
    ])
    func refused(_ text: String) {
        #expect(LiveObjectName(text) == nil, "\(text)")
    }
}

@Suite("PlaylistDirectives: the query of a blocking or delta playlist request")
struct PlaylistDirectivesTests {
    @Test("Numbers in range, the two skip kinds, absent parameters")
    func accepted() throws {
        #expect(try PlaylistDirectives(msn: nil, part: nil, skip: nil) == PlaylistDirectives())
        #expect(try PlaylistDirectives(msn: "0", part: nil, skip: nil) == PlaylistDirectives(mediaSequence: 0))
        #expect(try PlaylistDirectives(msn: "999999999", part: "99", skip: "YES")
                == PlaylistDirectives(mediaSequence: 999_999_999, part: 99, skip: .segments))
        #expect(try PlaylistDirectives(msn: "007", part: "3", skip: "v2") == PlaylistDirectives(mediaSequence: 7, part: 3, skip: .segmentsAndDateRanges))
    }

    @Test("Signs, overflowing or long numbers, junk, a part without a sequence and unknown skips are refused, naming the parameter",
          arguments: [
              ("-1", nil, nil, "_HLS_msn"), ("-9223372036854775808", "9223372036854775807", nil, "_HLS_msn"), ("1000000000", nil, nil, "_HLS_msn"),
              ("+1", nil, nil, "_HLS_msn"), ("", nil, nil, "_HLS_msn"), (" 1", nil, nil, "_HLS_msn"), ("1", "100", nil, "_HLS_part"),
              ("1", "-1", nil, "_HLS_part"), (nil, "1", nil, "_HLS_part"), ("1", "x", nil, "_HLS_part"), (nil, nil, "yes", "_HLS_skip"),
              ("١", nil, nil, "_HLS_msn"),
          ] as [(String?, String?, String?, String)])
    func refused(_ msn: String?, _ part: String?, _ skip: String?, _ parameter: String) {
        #expect(throws: PlaylistDirectiveError.self) { try PlaylistDirectives(msn: msn, part: part, skip: skip) }
        do {
            _ = try PlaylistDirectives(msn: msn, part: part, skip: skip)
        } catch {
            #expect(error.parameter == parameter, "\(error)")
        }
    }
}
