import Crypto
import Foundation
import MediaCore

/// One key-encryption key: 32 bytes for AES-256-GCM, and the short id the catalog records
/// beside each key it wrapped.
struct KeyEncryptionKey: Sendable, CustomStringConvertible {
    let key: SymmetricKey
    /// The first 4 bytes of SHA-256("veza-kek-id-v1\n" + key), hex: names the KEK without
    /// revealing it.
    let id: String

    init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        key = SymmetricKey(data: bytes)
        id = Hex.encode(SHA256.hash(data: Array("veza-kek-id-v1\n".utf8) + bytes).prefix(4))
    }

    init?(base64: String) {
        guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        self.init(bytes: Array(data))
    }

    var description: String { "KeyEncryptionKey(\(id))" }
}

/// The KEKs a host holds: the current one, which wraps every new content key, and earlier ones,
/// which only unwrap (until ``KeyService/rewrapAll()`` has moved their keys to the current one).
///
/// Wrapping is AES-256-GCM over the 16 key bytes with a fresh 96-bit nonce, authenticating the
/// track id, the key id and the method, so a wrapped key copied onto another track's row does
/// not unwrap. The stored form is base64 of nonce, ciphertext and tag (44 bytes).
struct KeyEncryptionKeys: Sendable {
    let current: KeyEncryptionKey
    let previous: [KeyEncryptionKey]

    func wrap(_ key: ContentKey, track: String, keyID: String, method: String) throws(ProtectionError) -> String {
        do {
            let box = try AES.GCM.seal(key.bytes, using: current.key, authenticating: Self.context(track, keyID, method))
            guard let combined = box.combined else { throw ProtectionError(.keyService, "cannot wrap a content key") }
            return combined.base64EncodedString()
        } catch let error as ProtectionError {
            throw error
        } catch {
            throw ProtectionError(.keyService, "cannot wrap a content key")
        }
    }

    /// The content key of `record`; an error when no KEK held here wrapped it, or it does not
    /// authenticate (the row was altered or moved).
    func unwrap(_ record: ContentKeyRecord) throws(ProtectionError) -> ContentKey {
        guard let kek = ([current] + previous).first(where: { $0.id == record.kekID }) else {
            throw ProtectionError(.keyService, "the content key of track \(record.trackID) is wrapped by KEK \(record.kekID), which this host does not hold")
        }
        guard let data = Data(base64Encoded: record.wrappedKey),
              let box = try? AES.GCM.SealedBox(combined: data),
              let opened = try? AES.GCM.open(box, using: kek.key, authenticating: Self.context(record.trackID, record.keyID, record.method)),
              let key = ContentKey(bytes: Array(opened)) else {
            throw ProtectionError(.keyService, "the content key of track \(record.trackID) does not unwrap with KEK \(record.kekID)")
        }
        return key
    }

    static func context(_ track: String, _ keyID: String, _ method: String) -> [UInt8] {
        Array("veza-content-key-v1\n\(track)\n\(keyID)\n\(method)".utf8)
    }

    /// The KEKs `configuration` names: `protection.kek`, else `protection.kekFile`, else
    /// `{dataDirectory}/kek.b64` (created with a fresh random KEK, mode 0600, when missing).
    static func load(_ configuration: ProtectionConfiguration, dataDirectory: String) throws(ProtectionError) -> KeyEncryptionKeys {
        let previous = configuration.previousKeks.compactMap(KeyEncryptionKey.init(base64:))
        let bytes = try loadSecretKey(configured: configuration.kek, file: configuration.kekFile, defaultPath: dataDirectory + "/kek.b64",
                                      names: ("protection.kek", "the KEK file"))
        return KeyEncryptionKeys(current: KeyEncryptionKey(bytes: bytes)!, previous: previous)
    }
}

/// 32 secret bytes: the base64 in `configured` when set, else the base64 in the file `file`, else
/// in `defaultPath`, which is created with fresh random bytes (mode 0600) when missing (of
/// processes starting together, one file wins). `names` (the setting, the file) word the errors.
/// The host's KEK and watermark secret are read this way, and `streamhost package`'s watermark key.
public func loadSecretKey(configured: String?, file: String?, defaultPath: String, names: (setting: String, file: String)) throws(ProtectionError) -> [UInt8] {
    func decode(_ text: String) -> [UInt8]? {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else { return nil }
        return Array(data)
    }
    if let configured {
        guard let bytes = decode(configured) else { throw ProtectionError(.keyService, "\(names.setting) is not the base64 of 32 bytes") }
        return bytes
    }
    let path = file ?? defaultPath
    if file == nil && !FileManager.default.fileExists(atPath: path) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        guard createSecretFileOnce(path, contents: Data((Data(bytes).base64EncodedString() + "\n").utf8)) else {
            throw ProtectionError(.keyService, "cannot write \(names.file) \(path)")
        }
    }
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ProtectionError(.keyService, "cannot read \(names.file) \(path)")
    }
    guard let bytes = decode(text) else { throw ProtectionError(.keyService, "\(names.file) \(path) does not hold the base64 of 32 bytes") }
    return bytes
}

/// A failure of content protection: the key service cannot serve (no KEK, a key that does not
/// unwrap), or a request for protection that cannot be honoured. Messages never hold key bytes.
public struct ProtectionError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// The key service cannot work (503).
        case keyService
        /// The request asks for a protection this host does not offer (400).
        case unsupported
    }
    public var kind: Kind
    public var message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}
