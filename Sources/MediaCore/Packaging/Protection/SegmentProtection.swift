import Crypto
import CryptoExtras
import Foundation

/// A 128-bit content key: the key a protected track's segments are encrypted with.
///
/// Its bytes never appear in a description, a debug print or an error message (they read
/// `ContentKey(16 bytes)`), so that logging a configuration or a value that holds one does not
/// leak it. ``bytes`` is for the key service that wraps it and the player that needs it.
public struct ContentKey: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The 16 key bytes.
    public let bytes: [UInt8]

    /// A key from 16 bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A fresh key from the system's cryptographically secure generator.
    public static func random() -> ContentKey {
        var generator = SystemRandomNumberGenerator()
        return ContentKey(bytes: (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) })!
    }

    public var description: String { "ContentKey(16 bytes)" }
    public var debugDescription: String { description }
}

/// How a packaging run protects the CMAF segments it writes (``LadderConfiguration/protection``).
public enum SegmentProtection: Sendable, Hashable {
    /// HLS `METHOD=AES-128` (RFC 8216 §4.3.2.4): every media segment encrypted whole with
    /// AES-128-CBC and PKCS#7 padding under `key`, its IV ``AES128Segments/iv(segmentNumber:)``.
    /// Init segments stay clear: they hold codec parameters, no audio, and the playlist declares
    /// them before the key (``AES128Segments``).
    case aes128(ContentKey)
    /// Common Encryption, scheme `cenc` (``CMAFEncryption``): the samples in AES-128-CTR, the
    /// boxes that DASH players (through EME, ClearKey included) and ffmpeg
    /// (`-decryption_key`) decrypt. `keyID` is the 16-byte KID.
    case cenc(ContentKey, keyID: [UInt8])
    /// Common Encryption, scheme `cbcs` (``CMAFEncryption/Scheme/cbcs``): each sample's whole
    /// blocks in AES-128-CBC from `constantIV`. `keyID` and `constantIV` have 16 bytes.
    case cbcs(ContentKey, keyID: [UInt8], constantIV: [UInt8])

    /// The CMAF track encryption of a `cenc` or `cbcs` protection (nil for AES-128 segments).
    public var commonEncryption: CMAFEncryption? {
        switch self {
        case .aes128: nil
        case .cenc(let key, let keyID): CMAFEncryption(scheme: .cenc, keyID: keyID, key: key)
        case .cbcs(let key, let keyID, let iv): CMAFEncryption(scheme: .cbcs, keyID: keyID, key: key, constantIV: iv)
        }
    }
}

/// The sample encryption of scheme `cenc`.
enum CommonEncryption {
    /// `sample` in AES-128-CTR under `key`, its counter block `iv` (8 bytes, big-endian) followed
    /// by a 64-bit block counter from 0 (ISO/IEC 23001-7 §9.1).
    static func encryptSample(_ sample: [UInt8], key: ContentKey, iv: UInt64) -> [UInt8] {
        let counter = (0..<8).map { UInt8(truncatingIfNeeded: iv >> (56 - 8 * UInt64($0))) } + [UInt8](repeating: 0, count: 8)
        do {
            return Array(try AES._CTR.encrypt(sample, using: SymmetricKey(data: key.bytes), nonce: AES._CTR.Nonce(nonceBytes: counter)))
        } catch {
            // Only a key or counter of the wrong size fails, and both are 16 bytes by construction.
            preconditionFailure("AES-128-CTR with a 16-byte key and counter failed: \(error)")
        }
    }

    /// `sample` with its whole 16-byte blocks in AES-128-CBC from `iv` and its trailing partial
    /// block clear (`cbcs` full-sample encryption, ISO/IEC 23001-7 §10.4.2).
    static func encryptBlocks(_ sample: [UInt8], key: ContentKey, iv: [UInt8]) -> [UInt8] {
        let whole = sample.count / 16 * 16
        guard whole > 0 else { return sample }
        do {
            let blocks = try AES._CBC.encrypt(sample[..<whole], using: SymmetricKey(data: key.bytes), iv: AES._CBC.IV(ivBytes: iv), noPadding: true)
            return Array(blocks) + sample[whole...]
        } catch {
            // Only a key or IV of the wrong size, or a length that is not whole blocks, fails: none can here.
            preconditionFailure("AES-128-CBC of whole blocks with a 16-byte key and IV failed: \(error)")
        }
    }
}

/// Whole-segment AES-128-CBC, as HLS `METHOD=AES-128` decrypts it.
///
/// Each media segment gets its own IV: its segment number as a 128-bit big-endian integer (the
/// value RFC 8216 would derive from a media sequence number, written explicitly in each
/// `EXT-X-KEY` so that it does not depend on how a playlist numbers its segments). The init
/// segment is not encrypted.
public enum AES128Segments {
    /// The IV of segment `number`: the number as 16 big-endian bytes.
    public static func iv(segmentNumber number: Int) -> [UInt8] {
        let value = UInt64(truncatingIfNeeded: number)
        return [UInt8](repeating: 0, count: 8) + (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    /// `plaintext` encrypted with `key` and segment `number`'s IV, PKCS#7-padded (1 to 16 bytes
    /// longer than the plaintext).
    public static func encrypt(_ plaintext: [UInt8], key: ContentKey, segmentNumber number: Int) throws(MediaError) -> [UInt8] {
        do {
            let iv = try AES._CBC.IV(ivBytes: iv(segmentNumber: number))
            return Array(try AES._CBC.encrypt(plaintext, using: SymmetricKey(data: key.bytes), iv: iv))
        } catch {
            throw MediaError(.internalFailure, "AES-128-CBC encryption of segment \(number) failed")
        }
    }

    /// The plaintext of segment `number` encrypted by ``encrypt(_:key:segmentNumber:)``; an
    /// error when the padding does not check (a wrong key or damaged bytes).
    public static func decrypt(_ ciphertext: [UInt8], key: ContentKey, segmentNumber number: Int) throws(MediaError) -> [UInt8] {
        guard !ciphertext.isEmpty, ciphertext.count % 16 == 0 else {
            throw MediaError(.invalidData, "an AES-128 segment is a whole number of 16-byte blocks")
        }
        do {
            let iv = try AES._CBC.IV(ivBytes: iv(segmentNumber: number))
            return Array(try AES._CBC.decrypt(ciphertext, using: SymmetricKey(data: key.bytes), iv: iv))
        } catch {
            throw MediaError(.invalidData, "segment \(number) does not decrypt with this key")
        }
    }

    /// Size of the encrypted form of `plaintextSize` bytes.
    public static func encryptedSize(_ plaintextSize: Int) -> Int {
        (plaintextSize / 16 + 1) * 16
    }
}
