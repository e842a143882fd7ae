public import Configuration
import Foundation

/// Content protection (`protection.…`): which tracks are encrypted, what happens to their
/// progressive files, where the key-encryption key comes from, and how often a playback session
/// may fetch a key.
///
/// Content keys are generated per track and kept in the catalog wrapped by the key-encryption
/// key (KEK), which never enters the catalog: it comes from `protection.kek` (best from the
/// environment, `VEZA_PROTECTION_KEK`), or from the file `protection.kekFile`, or (the embedded
/// default, when neither is set) from `{data.directory}/kek.b64`, created once with mode 0600.
/// Hosts sharing a catalog must share the KEK.
public struct ProtectionConfiguration: Sendable, Hashable {
    /// How a track's segments are protected.
    public enum Method: String, Sendable, Hashable, Codable, CaseIterable {
        /// In the clear.
        case none
        /// HLS `METHOD=AES-128`: whole segments in AES-128-CBC (ffmpeg, hls.js, Safari,
        /// ExoPlayer). DASH has no such scheme: the MPD of these tracks is refused.
        case aes128 = "aes-128"
        /// Common Encryption, scheme `cenc` (AES-128-CTR samples in the CMAF boxes): DASH with
        /// `ContentProtection` (browsers through EME, W3C ClearKey from `POST /dash/{id}/clearkey`;
        /// ffmpeg with `-decryption_key`). HLS has no `cenc` method: its playlists are refused.
        case cenc
        /// Common Encryption, scheme `cbcs` (AES-128-CBC over each sample's whole blocks from a
        /// constant IV: Apple's scheme, and what recent EME implementations share): DASH with
        /// `ContentProtection` and ClearKey licences, as `cenc`.
        case cbcs
    }

    /// The method of uploads that do not ask for one (`protection.default`: `none` or
    /// `aes-128`; an upload picks its own with `?protection=`). Default `none`.
    public var defaultMethod = Method.none
    /// Whether protected tracks still get their progressive files, in the clear
    /// (`protection.progressive`: `omit`, the default, makes none; `clear` keeps them, for
    /// platforms that protect streaming but sell downloads).
    public var clearProgressive = false
    /// The current key-encryption key, base64 of 32 bytes (`protection.kek`).
    public var kek: String?
    /// A file holding the current KEK in base64 (`protection.kekFile`).
    public var kekFile: String?
    /// Earlier KEKs (`protection.previousKeks`, base64, comma-separated in the environment):
    /// content keys wrapped by one of them are re-wrapped under the current KEK when the host
    /// starts, without re-packaging anything. Remove an old KEK once a start has logged
    /// that no key is left under it.
    public var previousKeks: [String] = []
    /// Key fetches per playback session (`protection.keyRate`, per second, and
    /// `protection.keyBurst`). A player fetches a rendition's key once; ABR switching fetches a
    /// few more. Default 1/s, burst 30.
    public var keyRequests = RateLimit(rate: 1, burst: 30)
    /// Whether uploads get forensic A/B watermarks unless they ask otherwise
    /// (`protection.watermark`: `off`, the default, or `on`; `POST /v1/tracks?watermark=on|off`).
    public var watermarkByDefault = false
    /// The watermark secret (`protection.watermarkSecret`, base64 of 32 bytes), from which each
    /// track's watermark key and its sessions' codes are derived. Every host of a deployment
    /// needs the same one, and it must stay the same for as long as leaked copies of its
    /// tracks should be traced: a track's segments carry the pattern of the secret they were
    /// packaged with.
    public var watermarkSecret: String?
    /// A file holding it instead (`protection.watermarkSecretFile`); without either, the
    /// embedded default `{dataDirectory}/watermark.b64`, created on first use (mode 0600).
    public var watermarkSecretFile: String?
    /// What was wrong in the keys read (the host refuses to start with any).
    public var problems: [String] = []

    public init() {}

    /// Reads the `protection.` keys.
    public init(reader: ConfigReader) {
        let method = reader.string(forKey: "protection.default", default: defaultMethod.rawValue)
        if let parsed = Method(rawValue: method) {
            defaultMethod = parsed
        } else {
            problems.append("protection.default: '\(method)' is not one of \(Method.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        switch reader.string(forKey: "protection.progressive", default: "omit") {
        case "omit": clearProgressive = false
        case "clear": clearProgressive = true
        case let other: problems.append("protection.progressive: '\(other)' is not omit or clear")
        }
        switch reader.string(forKey: "protection.watermark", default: "off") {
        case "off": watermarkByDefault = false
        case "on": watermarkByDefault = true
        case let other: problems.append("protection.watermark: '\(other)' is not off or on")
        }
        watermarkSecret = reader.string(forKey: "protection.watermarkSecret")
        watermarkSecretFile = reader.string(forKey: "protection.watermarkSecretFile")
        kek = reader.string(forKey: "protection.kek")
        kekFile = reader.string(forKey: "protection.kekFile")
        previousKeks = reader.stringArray(forKey: "protection.previousKeks", default: [])
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        keyRequests = RateLimit(rate: max(0, reader.double(forKey: "protection.keyRate", default: keyRequests.rate)),
                                burst: reader.double(forKey: "protection.keyBurst", default: keyRequests.burst))
        // Checked here so that a bad KEK stops the start, not the first protected upload.
        for (name, value) in [("protection.kek", kek), ("protection.watermarkSecret", watermarkSecret)] + previousKeks.map({ ("protection.previousKeks", Optional($0)) }) {
            if let value, KeyEncryptionKey(base64: value) == nil {
                problems.append("\(name): not the base64 of 32 bytes")
            }
        }
    }
}
