import Foundation
import StreamHost
import StreamKit

/// The seeds that need the harnesses' own keys: signed-URL tokens and JWTs, valid until 2035
/// (`VEZA_FUZZ_WRITE_SEEDS=DIR`, run by Fuzz/make-seeds.sh; the other seeds are files the
/// script writes itself).
enum Seeds {
    static func write(to directory: String) {
        func save(_ harness: Harness, _ name: String, _ text: String) {
            let folder = directory + "/" + harness.rawValue
            try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try! Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        let expires = Timestamp(secondsSince1970: 2_051_222_400)
        let signer = Harness.signer
        save(.signedURL, "prefix", "/hls/abc123/aac-128/seg-1.m4s\n" + (try! signer.sign(pathPrefix: "/hls/abc123/", expires: expires)) + "\n")
        save(.signedURL, "prefixes-k2", "/media/abc123/v1/progressive/mp3-320.mp3\n"
             + (try! signer.sign(pathPrefixes: ["/hls/abc123/", "/media/abc123"], expires: expires, keyID: "k2")) + "\n")
        save(.signedURL, "client-bound", "/live/radio/index.m3u8\n"
             + (try! signer.sign(pathPrefix: "/live/radio/", expires: expires, clientBinding: "192.0.2.7")) + "\n192.0.2.7")

        let auth = Harness.auth
        let issued = Date(timeIntervalSince1970: 1_764_000_000)
        let claims: [(String, AccessClaims)] = [
            ("stream", AccessClaims(subject: "fuzz", audience: auth.audience, scopes: [.stream], issuedAt: issued,
                                    expires: Date(timeIntervalSince1970: 2_051_222_400))),
            ("admin-upload", AccessClaims(subject: "ops", audience: auth.audience, scopes: [.admin, .upload], issuedAt: issued,
                                          expires: Date(timeIntervalSince1970: 2_051_222_400), notBefore: issued)),
            ("track", AccessClaims(subject: "listener", audience: auth.audience, scopes: [.stream], issuedAt: issued,
                                   expires: Date(timeIntervalSince1970: 2_051_222_400), track: "abc123")),
            ("live", AccessClaims(subject: "dj", audience: auth.audience, scopes: [.live], issuedAt: issued,
                                  expires: Date(timeIntervalSince1970: 2_051_222_400))),
        ]
        for (name, claim) in claims {
            save(.jwt, name, blocking { try! await auth.mint(claim) })
        }
    }
}
