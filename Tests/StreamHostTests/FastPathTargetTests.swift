import HTTPTypes
import NIOHTTP1
import NIOHTTPTypesHTTP1
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

/// The checks every served object goes through, on the fast path and in the router.
@Suite("Published object keys: kinds, plain paths and content types")
struct PublishedKeyTests {
    @Test("published object kinds and the stream-start flag")
    func kinds() {
        let segment = DeliveryRoutes.publishedObjectKind("v12/cmaf/aac-128/seg-1.m4s")
        #expect(segment?.metricsKind == "segment" && segment?.isStreamStart == true)
        #expect(DeliveryRoutes.publishedObjectKind("v1/cmaf/aac-128/seg-2.m4s")?.isStreamStart == false)
        #expect(DeliveryRoutes.publishedObjectKind("v1/cmaf/opus-96/init.mp4")?.metricsKind == "init")
        #expect(DeliveryRoutes.publishedObjectKind("v1/progressive/aac-128.m4a")?.metricsKind == "progressive")
        #expect(DeliveryRoutes.publishedObjectKind("v3/waveform.json")?.metricsKind == "waveform")
        #expect(DeliveryRoutes.publishedObjectKind("v3/waveform.dat")?.metricsKind == "waveform")
        for refused in ["", "v1", "v/cmaf/a/seg-1.m4s", "x1/cmaf/a/seg-1.m4s", "v+1/cmaf/a/seg-1.m4s", "v1a/cmaf/a/seg-1.m4s",
                        "v1/cmaf/a/seg-1.mp4", "v1/cmaf/a/b/seg-1.m4s", "v1/cmaf/seg-1.m4s", "v1/cmaf/../seg-1.m4s",
                        "v1/cmaf//seg-1.m4s", "v1/progressive/a/b.m4a", "v1/progressive", "v1/waveform.json/x",
                        "v1/master.m3u8", "v1/cmaf/a/seg-1.m4s/", "/v1/cmaf/a/seg-1.m4s", "v99999999999999999999/waveform.json"] {
            #expect(DeliveryRoutes.publishedObjectKind(refused) == nil, "\(refused)")
        }
    }

    @Test("plain relative paths: no empty, '.' or '..' segment")
    func plainPaths() {
        for plain in ["a", "a/b", "...", "a/.../b", ".a/b.", "tracks/x/v1/cmaf/aac-64/seg-10.m4s"] {
            #expect(isPlainRelativePath(plain), "\(plain)")
        }
        for bad in ["", "/", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a/.."] {
            #expect(!isPlainRelativePath(bad), "\(bad)")
        }
    }

    @Test("content types by extension, case-insensitively")
    func contentTypes() {
        #expect(MediaContentType.forKey("tracks/a/v1/cmaf/x/seg-1.m4s") == "audio/mp4")
        #expect(MediaContentType.forKey("a/b.MP3") == "audio/mpeg")
        #expect(MediaContentType.forKey("a/b.opus") == "audio/ogg")
        #expect(MediaContentType.forKey("a/b.flac") == "audio/flac")
        #expect(MediaContentType.forKey("a/master.m3u8") == MediaContentType.hlsPlaylist)
        #expect(MediaContentType.forKey("a/manifest.mpd") == MediaContentType.dashManifest)
        #expect(MediaContentType.forKey("a/waveform.dat") == "application/octet-stream")
        #expect(MediaContentType.forKey("noextension") == "application/octet-stream")
    }
}

/// What the fast path trusts about a track being ready, and when it renews that trust.
@Suite("ManifestCache: ready tracks expire, and one caller refreshes them ahead")
struct ReadyTrackTests {
    @Test("fresh entries are served; past half their life one caller refreshes; expired or not-ready entries are not served")
    func refreshAhead() throws {
        let manifest = try Packaged.get().manifest
        let cache = ManifestCache()
        let t0 = ContinuousClock.now
        let life = ManifestCache.readyTimeToLive
        cache.rememberReady(id: "a", version: 1, manifest: manifest, now: t0)
        #expect(cache.readyTrack("b", now: t0) == nil)
        #expect(cache.readyTrack("a", now: t0 + life / 10)?.refresh == false)
        // Past half: the first caller refreshes, the others are served without.
        #expect(cache.readyTrack("a", now: t0 + life * 0.6)?.refresh == true)
        #expect(cache.readyTrack("a", now: t0 + life * 0.7)?.refresh == false)
        // A failed refresh lets a caller try again, a second later (not on every request).
        cache.refreshFailed("a", now: t0 + life * 0.7)
        #expect(cache.readyTrack("a", now: t0 + life * 0.7 + ManifestCache.refreshRetry / 2)?.refresh == false)
        #expect(cache.readyTrack("a", now: t0 + life * 0.7 + ManifestCache.refreshRetry)?.refresh == true)
        #expect(t0 + life * 0.7 + ManifestCache.refreshRetry < t0 + life, "the retry falls within the entry's life")
        // Not renewed: gone at the end of its life.
        #expect(cache.readyTrack("a", now: t0 + life) == nil)
        // Renewed (a refresh that found it ready, at version 2).
        cache.rememberReady(id: "a", version: 2, manifest: manifest, now: t0 + life * 0.9)
        let renewed = try #require(cache.readyTrack("a", now: t0 + life))
        #expect(renewed.version == 2 && !renewed.refresh)
        cache.notReady("a")
        #expect(cache.readyTrack("a", now: t0 + life) == nil)
    }
}

/// The host's HTTP types codec must make of every request head what the library's codec makes.
@Suite("OriginFormHTTPServerCodec: the library's conversion, without a URL parse")
struct OriginFormCodecTests {
    @Test("origin-form and other targets convert as HTTP1ToHTTPServerCodec converts them")
    func sameAsTheLibrary() throws {
        let targets = ["/", "/media/abc/v1/cmaf/aac-128/seg-3.m4s?token=AbC-_9.x&x=1", "//evil/x", "/a b", "/%zz?%", "/caf\u{E9}",
                       "/x#frag", "http://example.com/hls/a/master.m3u8?token=t", "http://example.com", "*", "example.com:443", ""]
        for target in targets {
            for method in [HTTPMethod.GET, .HEAD, .OPTIONS, .RAW(value: "PURGE")] {
                var head = HTTPRequestHead(version: .http1_1, method: method, uri: target)
                head.headers.add(name: "Host", value: "127.0.0.1:8080")
                head.headers.add(name: "Cookie", value: "a=1; b=2")
                head.headers.add(name: "Range", value: "bytes=0-1")
                let expected = try HTTPRequest(head, secure: false, splitCookie: false)
                let converted = try OriginFormHTTPServerCodec.request(head)
                #expect(converted == expected, "\(method) \(target)")
                #expect(converted.path == expected.path)
            }
        }
    }

    @Test("the request fields the fast path reads are found in any case, and only those")
    func requestFields() {
        typealias Fields = PlaybackFastPath.RequestFields
        let mixed = Fields(HTTPHeaders([("RANGE", "bytes=0-9"), ("If-None-Match", "\"e\""), ("x-request-ID", "abc"),
                                        ("X-Request-Id", "second"), ("ORIGIN", "https://player.example"), ("Host", "x")]))
        #expect(mixed.conditional == [.range: "bytes=0-9", .ifNoneMatch: "\"e\""])
        #expect(mixed.requestID == "abc", "the first of several")
        #expect(mixed.origin && !mixed.authorization)
        #expect(Fields(HTTPHeaders([("authorization", "Bearer x")])).authorization)

        // Names that only look alike are not taken.
        let alike = Fields(HTTPHeaders([("x-range", "bytes=0-1"), ("rangE-", "1"), ("if-rangx", "2"), ("originx", "3"),
                                        ("if-modified-sincE", "Sat, 01 Jan 2000 00:00:00 GMT")]))
        #expect(alike.conditional == [.ifModifiedSince: "Sat, 01 Jan 2000 00:00:00 GMT"])
        #expect(!alike.origin && alike.requestID == nil)

        // Unconditional exactly when the router's conversion would find no range or validator.
        let sets: [[(String, String)]] = [[], [("Accept", "*/*"), ("User-Agent", "x")], [("If-Range", "x")], [("range", "bytes=1-")],
                                          [("If-Modified-Since", "x"), ("Accept", "*/*")], [("IF-NONE-MATCH", "*")]]
        for headers in sets {
            let nio = HTTPHeaders(headers)
            #expect(Fields(nio).conditional.isEmpty == ObjectResponder.isUnconditional(HTTPFields(nio, splitCookie: false)), "\(headers)")
        }
        #expect("Content-Length".equalsASCIICaseInsensitive("content-length"))
        #expect(!"Content-Lengt".equalsASCIICaseInsensitive("content-length"))
        #expect(!"Content_Length".equalsASCIICaseInsensitive("content-length"))
        #expect(!"".equalsASCIICaseInsensitive("range") && "".equalsASCIICaseInsensitive(""))
    }
}
