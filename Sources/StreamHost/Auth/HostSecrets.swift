import Foundation
import Hummingbird
import Crypto
import JWTKit
import StreamKit
import Synchronization

/// Secrets the embedded default generates once and keeps in `{data}/secrets.json` (mode 0600),
/// so that tokens and signed URLs survive restarts and `streamhost token` mints with the same
/// key as the host. Configured secrets (`auth.hs256Secret`, `auth.urlSigningSecret`) win.
public struct HostSecrets: Codable, Sendable {
    /// HS256 key for access tokens (base64).
    public var jwtHS256: String
    /// HMAC-SHA256 key for signed playback URLs (base64).
    public var urlSigning: String

    /// Reads `{dataDirectory}/secrets.json`, creating it with fresh random keys if missing.
    public static func loadOrCreate(dataDirectory: String) throws -> HostSecrets {
        let path = dataDirectory + "/secrets.json"
        if let data = FileManager.default.contents(atPath: path) {
            return try JSONDecoder().decode(HostSecrets.self, from: data)
        }
        func random() -> String {
            var generator = SystemRandomNumberGenerator()
            return Data((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }).base64EncodedString()
        }
        let secrets = HostSecrets(jwtHS256: random(), urlSigning: random())
        guard createSecretFileOnce(path, contents: try JSONEncoder().encode(secrets)) else {
            throw StorageError(key: path, "cannot write the secrets file")
        }
        return try loadOrCreate(dataDirectory: dataDirectory)
    }
}

/// Creates `path` (and its directory) holding `contents` with mode 0600, unless it exists.
/// link(2) fails when the file exists: of processes starting together, exactly one file wins and
/// every process reads that one. False when it could not be written.
func createSecretFileOnce(_ path: String, contents: Data) -> Bool {
    try? FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let temporary = path + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: contents, attributes: [.posixPermissions: 0o600]) else { return false }
    let linked = link(temporary, path) == 0 || errno == EEXIST
    unlink(temporary)
    return linked
}

/// A failure to set up authentication (a bad key file, a secret too short).
public struct AuthSetupError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
