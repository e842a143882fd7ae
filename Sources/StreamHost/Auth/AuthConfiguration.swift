public import Configuration
import Foundation
import MediaCore
import SystemPackage

/// How the host authenticates (`auth.*` keys).
///
/// The HS256 and URL-signing keys default to random secrets kept in `{data}/secrets.json`
/// (see ``HostSecrets``); ES256 and RS256 are enabled by configuring PEM key files (a public
/// key verifies; a private key also lets `streamhost token` mint).
public struct AuthConfiguration: Sendable {
    /// Public mode (`auth.public`): no token needed anywhere, playback URLs unsigned. Demos only.
    public var isPublic = false
    /// The audience every access token must name (`auth.audience`). Default `veza-stream`.
    public var audience = "veza-stream"
    /// HS256 secret (`auth.hs256Secret`, at least 32 bytes); default from `secrets.json`.
    public var hs256Secret: String?
    /// PEM files (`auth.es256PublicKeyFile`, `auth.es256PrivateKeyFile`, `auth.rs256PublicKeyFile`,
    /// `auth.rs256PrivateKeyFile`).
    public var es256PublicKeyFile: String?
    public var es256PrivateKeyFile: String?
    public var rs256PublicKeyFile: String?
    public var rs256PrivateKeyFile: String?
    /// Key of signed playback URLs (`auth.urlSigningSecret`, at least 32 bytes); default from `secrets.json`.
    public var urlSigningSecret: String?
    /// Lifetime in seconds of the playback URLs the API hands out (`auth.playbackTTL`). Default 6 h.
    public var playbackTTL: Double = 6 * 3600

    public init() {}

    /// Reads the `auth.*` keys, keeping defaults for those missing.
    public init(reader: ConfigReader) {
        isPublic = reader.bool(forKey: "auth.public", default: isPublic)
        audience = reader.string(forKey: "auth.audience", default: audience)
        hs256Secret = reader.string(forKey: "auth.hs256Secret", isSecret: true)
        es256PublicKeyFile = reader.string(forKey: "auth.es256PublicKeyFile")
        es256PrivateKeyFile = reader.string(forKey: "auth.es256PrivateKeyFile")
        rs256PublicKeyFile = reader.string(forKey: "auth.rs256PublicKeyFile")
        rs256PrivateKeyFile = reader.string(forKey: "auth.rs256PrivateKeyFile")
        urlSigningSecret = reader.string(forKey: "auth.urlSigningSecret", isSecret: true)
        playbackTTL = max(1, reader.double(forKey: "auth.playbackTTL", default: playbackTTL))
    }
}
