@testable import StreamHost
import Testing

/// The fast path's split of a request target decides which requests it answers itself and
/// which token it checks: anything unusual must be left to the router (nil).
@Suite("PlaybackFastPath.Target: what the fast path takes, and the token it checks")
struct FastPathTargetTests {
    typealias Target = PlaybackFastPath.Target

    @Test("plain playback paths split into service, id, rest and the first token")
    func plain() throws {
        let media = try #require(Target("/media/abc/v1/cmaf/aac-128/seg-3.m4s?token=AbC-_9.x&x=1"))
        #expect(media.service == .media)
        #expect(media.path == "/media/abc/v1/cmaf/aac-128/seg-3.m4s")
        #expect(media.id == "abc")
        #expect(media.rest == "v1/cmaf/aac-128/seg-3.m4s")
        #expect(media.token == "AbC-_9.x")

        let hls = try #require(Target("/hls/t1/aac-64.m3u8?a=b&token=one&token=two"))
        #expect(hls.service == .hls)
        #expect(hls.rest == "aac-64.m3u8")
        #expect(hls.token == "one")

        let dash = try #require(Target("/dash/t1/manifest.mpd"))
        #expect(dash.service == .dash)
        #expect(dash.token == nil)
        #expect(Target("/hls/t1/master.m3u8?xtoken=a&token")?.token == nil)
        #expect(Target("/hls/t1/master.m3u8?token=")?.token == "")
    }

    @Test("other prefixes, empty ids, percent-encoding, '+' and fragments go to the router")
    func leftToTheRouter() {
        for target in ["/v1/tracks/abc", "/mediax/abc/v1/x", "/media//v1/x", "/media/abc", "/hls/", "/HLS/a/master.m3u8",
                       "/media/a%62c/v1/progressive/aac-128.m4a?token=t", "/hls/abc/master.m3u8?token=a%2Db",
                       "/hls/abc/master.m3u8?token=a+b", "/hls/abc/master.m3u8#x", "media/abc/v1/x", ""] {
            #expect(Target(target) == nil, "\(target)")
        }
    }
}

extension FastPathTargetTests {
    @Test("the token parameter the fast path reads is the one the host signs")
    func tokenName() {
        #expect("\(Target.tokenPrefix)" == HostAuth.tokenParameter + "=")
    }
}
