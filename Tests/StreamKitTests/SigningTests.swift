import Testing
@testable import StreamKit

@Suite struct SigningTests {
    static let oldSecret = Array("old-secret-0123456789abcdef".utf8)
    static let newSecret = Array("new-secret-fedcba9876543210".utf8)
    static let now = Timestamp(secondsSince1970: 1_764_072_000)
    static let expiry = Timestamp(secondsSince1970: 1_764_075_600)

    static func signer(active: String = "k2", keys: [String: [UInt8]] = ["k1": oldSecret, "k2": newSecret]) throws -> URLSigner {
        try URLSigner(keys: keys, activeKeyID: active)
    }

    @Test func tokenFormatIsStableAndURLSafe() throws {
        let token = try Self.signer().sign(pathPrefix: "/hls/track-1/", expires: Self.expiry)
        // v1.<kid>.<expires>.<b64url("/hls/track-1/")>.-.<43 chars of MAC>
        #expect(token.hasPrefix("v1.k2.1764075600.L2hscy90cmFjay0xLw.-."))
        #expect(token.split(separator: ".").last?.count == 43)
        #expect(token.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
        // Deterministic: HMAC, no randomness.
        #expect(try Self.signer().sign(pathPrefix: "/hls/track-1/", expires: Self.expiry) == token)
    }

    @Test func validTokensCoverTheirPrefixOnly() throws {
        let signer = try Self.signer()
        let token = try signer.sign(pathPrefixes: ["/hls/track-1/", "/media/track-1"], expires: Self.expiry)
        let accepted = ["/hls/track-1/master.m3u8", "/hls/track-1/aac-128.m3u8?token=x", "/hls/track-1/",
                        "/media/track-1", "/media/track-1/cmaf/aac-128/seg-1.m4s", "/hls/track-1/a%20b.m3u8"]
        for path in accepted {
            #expect(signer.verify(path: path, token: token, now: Self.now) == .valid(keyID: "k2", expires: Self.expiry), "\(path)")
        }
        let refused = ["/hls/track-2/master.m3u8", "/hls/track-10/x", "/hls/track-1", "/media/track-10/x", "/media/track-1x",
                       "/hls/track-1/../track-2/master.m3u8", "/hls/track-1/%2e%2e/track-2/x", "/hls/track-1/%2E%2E/track-2/x",
                       "/hls/track-1/./x", "/hls/track-1/..", "/hls/track-1//x", "/hls/track-1/a%2Fb", "/hls/track-1/a%5cb",
                       "/hls/track-1/a\\b", "/hls/track-1/%252e%252e/x", "/hls/track-1/%zz", "/hls/track-1/%4", "/hls/track-1/\u{1}",
                       "/hls/track-1/%00", "/hls/track-1/%ff", "hls/track-1/x", "", "/HLS/track-1/x", "/hls/track-1%2F..%2Ftrack-2/x"]
        for path in refused {
            #expect(signer.verify(path: path, token: token, now: Self.now) == .pathOutsidePrefix, "\(path)")
        }
    }

    @Test func aGrantAnswersAsVerifyDoesWithoutTheMAC() throws {
        let signer = try Self.signer()
        let token = try signer.sign(pathPrefixes: ["/hls/track-1/", "/media/track-1"], expires: Self.expiry)
        let grant = try signer.grant(for: token).get()
        #expect(grant.keyID == "k2" && grant.expires == Self.expiry && grant.prefixes == ["/hls/track-1/", "/media/track-1"])
        #expect(!grant.isClientBound)
        let paths = ["/hls/track-1/master.m3u8", "/media/track-1/cmaf/aac-128/seg-1.m4s", "/hls/track-2/master.m3u8",
                     "/hls/track-1/../track-2/x", "/hls/track-1/%2e%2e/track-2/x", "/media/track-10/x", "/hls/track-1//x", ""]
        for path in paths {
            for now in [Self.now, Self.expiry, Timestamp(millisecondsSince1970: Self.expiry.millisecondsSince1970 - 1)] {
                #expect(grant.verify(path: path, now: now) == signer.verify(path: path, token: token, now: now), "\(path) at \(now)")
            }
        }
        // No grant without an authentic token.
        var tampered = Array(token.utf8)
        tampered[tampered.count - 5] = tampered[tampered.count - 5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(signer.grant(for: String(decoding: tampered, as: UTF8.self)) == .failure(TokenRefusal(.badSignature)))
        #expect(signer.grant(for: "v1.k2.nope") == .failure(TokenRefusal(.malformed)))
        let foreign = try Self.signer(active: "k3", keys: ["k3": Self.newSecret]).sign(pathPrefix: "/hls/track-1/", expires: Self.expiry)
        #expect(signer.grant(for: foreign) == .failure(TokenRefusal(.unknownKey)))
        // A client-bound token says so: its binding is checked by verify only.
        let bound = try signer.sign(pathPrefix: "/hls/track-1/", expires: Self.expiry, clientBinding: "session-1")
        #expect(try signer.grant(for: bound).get().isClientBound)
    }

    @Test func unicodeIsComparedByBytes() throws {
        let signer = try Self.signer()
        let composed = "/hls/caf\u{E9}/" // é as one scalar
        let token = try signer.sign(pathPrefix: composed, expires: Self.expiry)
        #expect(signer.verify(path: composed + "x", token: token, now: Self.now).isValid)
        #expect(signer.verify(path: "/hls/caf%C3%A9/x", token: token, now: Self.now).isValid)
        // Decomposed (e + combining acute) is canonically equivalent in Swift but a different path.
        #expect(signer.verify(path: "/hls/cafe\u{301}/x", token: token, now: Self.now) == .pathOutsidePrefix)
    }

    @Test func expiryBoundaries() throws {
        let signer = try Self.signer()
        let token = try signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry)
        let justBefore = Timestamp(millisecondsSince1970: Self.expiry.millisecondsSince1970 - 1)
        #expect(signer.verify(path: "/hls/t/x", token: token, now: justBefore).isValid)
        #expect(signer.verify(path: "/hls/t/x", token: token, now: Self.expiry) == .expired)
        #expect(signer.verify(path: "/hls/t/x", token: token, now: Timestamp(secondsSince1970: Self.expiry.secondsSince1970 + 1)) == .expired)
        // Sub-second expiries are truncated to whole seconds when signed.
        let fractional = try signer.sign(pathPrefix: "/hls/t/", expires: Timestamp(millisecondsSince1970: 1_764_075_600_900))
        #expect(signer.verify(path: "/hls/t/x", token: fractional, now: Timestamp(millisecondsSince1970: 1_764_075_600_000)) == .expired)
    }

    @Test func keyRotation() throws {
        let both = try Self.signer()
        let oldToken = try both.sign(pathPrefix: "/hls/t/", expires: Self.expiry, keyID: "k1")
        let newToken = try both.sign(pathPrefix: "/hls/t/", expires: Self.expiry)
        #expect(both.verify(path: "/hls/t/a", token: oldToken, now: Self.now) == .valid(keyID: "k1", expires: Self.expiry))
        #expect(both.verify(path: "/hls/t/a", token: newToken, now: Self.now) == .valid(keyID: "k2", expires: Self.expiry))
        #expect(both.keyIDs == ["k1", "k2"])
        // After the old key is retired, its tokens name an unknown key.
        let retired = try Self.signer(keys: ["k2": Self.newSecret])
        #expect(retired.verify(path: "/hls/t/a", token: oldToken, now: Self.now) == .unknownKey)
        #expect(retired.verify(path: "/hls/t/a", token: newToken, now: Self.now).isValid)
        // A key id reused with another secret does not validate old tokens.
        let reused = try Self.signer(active: "k1", keys: ["k1": Self.newSecret])
        #expect(reused.verify(path: "/hls/t/a", token: oldToken, now: Self.now) == .badSignature)
    }

    @Test func clientBinding() throws {
        let signer = try Self.signer()
        let token = try signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry, clientBinding: "session-42")
        #expect(!token.contains("session-42"))
        #expect(signer.verify(path: "/hls/t/a", token: token, now: Self.now, client: "session-42").isValid)
        #expect(signer.verify(path: "/hls/t/a", token: token, now: Self.now, client: "session-43") == .clientMismatch)
        #expect(signer.verify(path: "/hls/t/a", token: token, now: Self.now) == .clientMismatch)
        // An unbound token ignores the client.
        let unbound = try signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry)
        #expect(signer.verify(path: "/hls/t/a", token: unbound, now: Self.now, client: "anyone").isValid)
    }

    @Test func sessionTokensAreVersionTwo() throws {
        let signer = try Self.signer()
        let token = try signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry, session: "s_0123456789abcdef-X")
        #expect(token.hasPrefix("v2.k2.1764075600.L2hscy90Lw.-.s_0123456789abcdef-X."))
        #expect(token.split(separator: ".").count == 7)
        #expect(signer.verify(path: "/hls/t/a", token: token, now: Self.now) == .valid(keyID: "k2", expires: Self.expiry))
        let grant = try signer.grant(for: token).get()
        #expect(grant.session == "s_0123456789abcdef-X")
        #expect(try signer.grant(for: signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry)).get().session == nil)
        // With a client binding too; the session is authenticated like every other field.
        let bound = try signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry, clientBinding: "c", session: "abc")
        #expect(signer.verify(path: "/hls/t/a", token: bound, now: Self.now, client: "c").isValid)
        var fields = bound.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        fields[5] = "abd"
        #expect(signer.verify(path: "/hls/t/a", token: fields.joined(separator: "."), now: Self.now, client: "c") == .badSignature)
        // A v2 token relabelled v1 (or a v1 token given a session field) is malformed.
        #expect(signer.verify(path: "/hls/t/a", token: "v1" + token.dropFirst(2), now: Self.now) == .malformed)
        for session in ["", "a.b", "a b", String(repeating: "s", count: 65), "é"] {
            #expect(throws: URLSigningError(.invalidSession(session))) {
                try signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry, session: session)
            }
        }
    }

    @Test func tamperingWithAnyByteIsDetected() throws {
        let signer = try Self.signer()
        let token = try signer.sign(pathPrefixes: ["/hls/t/", "/media/t/"], expires: Self.expiry, clientBinding: "c")
        let bytes = Array(token.utf8)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".utf8)
        var checked = 0
        for index in bytes.indices {
            for replacement in [alphabet[((alphabet.firstIndex(of: bytes[index]) ?? 0) + 1) % alphabet.count], UInt8(ascii: "A"), UInt8(ascii: "_")]
            where replacement != bytes[index] {
                var tampered = bytes
                tampered[index] = replacement
                let result = signer.verify(path: "/hls/t/a", token: String(decoding: tampered, as: UTF8.self), now: Self.now, client: "c")
                #expect(!result.isValid, "byte \(index) → \(UnicodeScalar(replacement))")
                #expect([.badSignature, .malformed, .unknownKey].contains(result), "byte \(index): \(result)")
                checked += 1
            }
        }
        #expect(checked >= 2 * bytes.count)
        // Truncation, extension and swapping the MAC of another token.
        #expect(signer.verify(path: "/hls/t/a", token: String(token.dropLast()), now: Self.now, client: "c") != .valid(keyID: "k2", expires: Self.expiry))
        #expect(signer.verify(path: "/hls/t/a", token: token + "A", now: Self.now, client: "c") == .malformed)
        let other = try signer.sign(pathPrefix: "/hls/", expires: Self.expiry)
        let forged = token.split(separator: ".").dropLast().joined(separator: ".") + "." + other.split(separator: ".").last!
        #expect(signer.verify(path: "/hls/t/a", token: forged, now: Self.now, client: "c") == .badSignature)
    }

    @Test func malformedTokens() throws {
        let signer = try Self.signer()
        let valid = try signer.sign(pathPrefix: "/hls/t/", expires: Self.expiry)
        let parts = valid.split(separator: ".").map(String.init)
        func with(_ index: Int, _ value: String) -> String {
            var copy = parts
            copy[index] = value
            return copy.joined(separator: ".")
        }
        let malformed = ["", "v1", "v1.k2", valid + ".x", with(0, "v2"), with(1, "k 2"), with(1, ""), with(2, "-5"), with(2, "1e9"),
                         with(2, ""), with(2, "9999999999999999999"), with(3, "!!"), with(3, ""), with(3, "_w"), with(4, "abc"),
                         with(5, "short"), with(5, String(parts[5].dropLast()) + "B"), with(4, "AAAAAAAAAAAAAAAAAAAAAA-")]
        for token in malformed {
            #expect(signer.verify(path: "/hls/t/a", token: token, now: Self.now) == .malformed, "\(token)")
        }
        #expect(signer.verify(path: "/hls/t/a", token: with(1, "k9"), now: Self.now) == .unknownKey)
        #expect(signer.verify(path: "/hls/t/a", token: String(repeating: "a", count: 9000), now: Self.now) == .malformed)
    }

    @Test func signingErrors() throws {
        #expect(throws: URLSigningError(.secretTooShort(keyID: "k"))) { try URLSigner(keys: ["k": [1, 2, 3]], activeKeyID: "k") }
        #expect(throws: URLSigningError(.invalidKeyID("bad id"))) { try URLSigner(keys: ["bad id": Self.newSecret], activeKeyID: "bad id") }
        #expect(throws: URLSigningError(.unknownKey("x"))) { try URLSigner(keys: ["k": Self.newSecret], activeKeyID: "x") }
        let signer = try Self.signer()
        #expect(throws: URLSigningError(.unknownKey("k7"))) { try signer.sign(pathPrefix: "/a/", expires: Self.expiry, keyID: "k7") }
        #expect(throws: URLSigningError(.noPathPrefix)) { try signer.sign(pathPrefixes: [], expires: Self.expiry) }
        #expect(throws: URLSigningError(.invalidExpiry)) { try signer.sign(pathPrefix: "/a/", expires: Timestamp(secondsSince1970: -1)) }
        for prefix in ["a/", "/a/../b/", "/a/%2F/", "/a//b/", ""] {
            #expect(throws: URLSigningError(.invalidPathPrefix(prefix))) { try signer.sign(pathPrefix: prefix, expires: Self.expiry) }
        }
        #expect(URLSigningError(.noPathPrefix).description == "noPathPrefix")
        #expect(signer.activeKeyID == "k2")
    }

    @Test func base64URLIsStrict() {
        for length in 0..<40 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(Base64URL.decode(text[...]) == bytes)
        }
        #expect(Base64URL.encode(Array("/hls/".utf8)) == "L2hscy8")
        #expect(Base64URL.decode("L2hscy9") == nil) // non-zero trailing bits
        #expect(Base64URL.decode("A") == nil)
        #expect(Base64URL.decode("AB=") == nil)
    }
}

@Suite struct PathNormalizerTests {
    /// The one-pass check for plain paths must agree with the decoding path on every input:
    /// every path of up to 5 characters over an alphabet of the characters that matter
    /// (separators, dots, escapes, query and fragment marks, a space, a backslash, a non-ASCII
    /// letter), each with a `/` in front and without.
    @Test func plainPathsAgreeWithTheDecodingPath() {
        let alphabet: [String] = ["/", ".", "a", "%", "2", "F", "?", "#", " ", "\\", "\u{E9}", "~"]
        var paths: [String] = [""]
        var level: [String] = [""]
        for _ in 0..<5 {
            level = level.flatMap { prefix in alphabet.map { prefix + $0 } }
            paths += level
        }
        var plain = 0
        for body in paths {
            for path in [body, "/" + body] {
                let expected = PathNormalizer.normalizeDecoding(path)
                #expect(PathNormalizer.normalize(path) == expected, "\(path.debugDescription)")
                if path.utf8.withContiguousStorageIfAvailable(PathNormalizer.plainLength) ?? nil != nil { plain += 1 }
            }
        }
        // The fast path is taken, and not only for trivial paths.
        #expect(plain > 10_000)
    }

    @Test func typicalPaths() {
        #expect(PathNormalizer.normalize("/media/abc/v1/cmaf/aac-128/seg-3.m4s?token=x.y") == "/media/abc/v1/cmaf/aac-128/seg-3.m4s")
        #expect(PathNormalizer.normalize("/hls/abc/") == "/hls/abc/")
        #expect(PathNormalizer.normalize("/") == "/")
        #expect(PathNormalizer.normalize("/hls/abc/../x") == nil)
        #expect(PathNormalizer.normalize("/hls//x") == nil)
        #expect(PathNormalizer.normalize("/hls/a%2Fb") == nil)
        #expect(PathNormalizer.normalize("/hls/caf%C3%A9") == "/hls/caf\u{E9}")
        #expect(PathNormalizer.normalize("hls/x") == nil)
    }
}

@Suite struct PlaylistSigningTests {
    @Test func queryRewriting() {
        #expect(QueryRewriter.adding(name: "token", value: "abc", to: "seg-1.m4s") == "seg-1.m4s?token=abc")
        #expect(QueryRewriter.adding(name: "token", value: "abc", to: "seg-1.m4s?a=1") == "seg-1.m4s?a=1&token=abc")
        #expect(QueryRewriter.adding(name: "token", value: "abc", to: "seg-1.m4s?token=old&a=1") == "seg-1.m4s?a=1&token=abc")
        #expect(QueryRewriter.adding(name: "token", value: "abc", to: "seg.m4s?tokenX=1&token") == "seg.m4s?tokenX=1&token=abc")
        #expect(QueryRewriter.adding(name: "token", value: "abc", to: "seg.m4s#t=5") == "seg.m4s?token=abc#t=5")
        #expect(QueryRewriter.adding(name: "token", value: "abc", to: "seg.m4s?") == "seg.m4s?token=abc")
        #expect(QueryRewriter.adding(name: "t k", value: "a/b+c=d&é", to: "x") == "x?t%20k=a%2Fb%2Bc%3Dd%26%C3%A9")
        #expect(QueryRewriter.inScope("../a/b.m4s", .relativeOnly))
        #expect(QueryRewriter.inScope("/a:b/c", .relativeOnly))
        #expect(QueryRewriter.inScope("a/b:c", .relativeOnly))
        #expect(QueryRewriter.inScope("1a:b", .relativeOnly))
        #expect(QueryRewriter.inScope(":x", .relativeOnly))
        #expect(!QueryRewriter.inScope("https://cdn/x", .relativeOnly))
        #expect(QueryRewriter.inScope("HTTPS://cdn/x", .relativeAndHTTP))
        #expect(!QueryRewriter.inScope("skd://key", .relativeAndHTTP))
        #expect(!QueryRewriter.inScope("data:text/plain,x", .relativeAndHTTP))
        #expect(QueryRewriter.inScope("file.m4s", .relativeAndHTTP))
    }

    /// A signed master playlist carries its token to every media playlist, and each media playlist to
    /// every segment, init segment, part, preload hint and rendition report; keys and foreign URLs are untouched.
    @Test func signedSessionCarriesTheTokenEverywhere() throws {
        let signer = try URLSigner(keys: ["k": Array("0123456789abcdef0123".utf8)], activeKeyID: "k")
        let now = Timestamp(secondsSince1970: 1_000)
        let token = try signer.sign(pathPrefix: "/hls/t1/", expires: Timestamp(secondsSince1970: 4_600))
        let master = try MasterPlaylist.make(renditions: [Fixtures.aac128, Fixtures.aac256], style: .audioGroups) { "\($0.id).m3u8" }
        var withMedia = master
        withMedia.renditions.append(AlternativeRendition(type: .audio, groupID: "alt", name: "Commentary", uri: "commentary.m3u8?lang=en"))
        withMedia.renditions.append(AlternativeRendition(type: .audio, groupID: "alt", name: "Remote", uri: "https://other.example/x.m3u8"))
        let signedMaster = withMedia.addingQueryItem(name: "token", value: token)
        let masterText = signedMaster.render()
        let reparsed = try HLSParser().parseMaster(masterText)
        var referenced = reparsed.variants.map(\.uri) + reparsed.renditions.compactMap(\.uri)
        #expect(referenced.contains("https://other.example/x.m3u8"))
        referenced.removeAll { $0.hasPrefix("https://") }
        #expect(referenced.count == 3)
        for uri in referenced {
            #expect(uri.hasSuffix("token=\(token)"), "\(uri)")
            let path = "/hls/t1/" + uri.split(separator: "?")[0]
            #expect(signer.verify(path: path, token: token, now: now).isValid)
        }
        #expect(reparsed.renditions.first { $0.groupID == "alt" && $0.name == "Commentary" }?.uri == "commentary.m3u8?lang=en&token=\(token)")

        var media = try MediaPlaylist.vod(Fixtures.aac128)
        media.segments[1].encryption = .key(EncryptionKey(method: .aes128, uri: "keys/1"))
        media.segments[2].parts = [PartialSegment(uri: "p.0.m4s", duration: .seconds(1))]
        media.trailingParts = [PartialSegment(uri: "p.1.m4s", duration: .seconds(1))]
        media.preloadHints = [PreloadHint(type: .part, uri: "p.2.m4s")]
        media.renditionReports = [RenditionReport(uri: "opus-96.m3u8", lastMediaSequenceNumber: 3)]
        let signedMedia = Playlist.media(media).addingQueryItem(name: "token", value: token)
        guard case .media(let signed) = try HLSParser().parse(signedMedia.render()) else {
            Issue.record("expected a media playlist")
            return
        }
        var uris = signed.segments.map(\.uri) + signed.segments.compactMap(\.map?.uri)
        uris += signed.segments.flatMap(\.parts).map(\.uri) + signed.trailingParts.map(\.uri)
        uris += signed.preloadHints.map(\.uri) + signed.renditionReports.map(\.uri)
        #expect(uris.count == 8)
        for uri in uris { #expect(uri.hasSuffix("?token=\(token)"), "\(uri)") }
        guard case .key(let key)? = signed.segments[1].encryption else {
            Issue.record("key lost")
            return
        }
        #expect(key.uri == "keys/1")
        // The master variant is unchanged in its other attributes.
        #expect(Playlist.master(master).addingQueryItem(name: "token", value: token) == .master(master.addingQueryItem(name: "token", value: token)))
        #expect(signedMaster.variants.map(\.bandwidth) == withMedia.variants.map(\.bandwidth))
    }
}
