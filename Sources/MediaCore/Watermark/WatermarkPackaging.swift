import Foundation
internal import Crypto

/// Forensic A/B watermarking of a packaging run (``LadderConfiguration/watermark``).
///
/// Every lossy CMAF rendition is encoded twice, from the same normalised and resampled PCM
/// watermarked once as ``WatermarkVariant/a`` and once as ``WatermarkVariant/b``
/// (``WatermarkEmbedder``), and both variants of each segment are stored side by side. The
/// variants share one init segment and their segments have the same numbers and durations, so a
/// playlist can take each segment from either: the sequence of choices is what a leaked copy
/// carries (StreamKit's `WatermarkSessionCode` derives it per playback session).
///
/// A variant's segment is stored as `cmaf/{rendition}/seg-{n}-{tag}.m4s`, its tag a keyed hash
/// of the rendition, the number and the variant (``segmentPath(rendition:number:variant:)``):
/// nobody without the key can tell which variant a URI holds, or guess the other variant's URI.
/// A CDN caches two copies of each segment, as it would any two objects.
///
/// Lossless and progressive outputs would be unwatermarked copies of the whole track: a
/// watermarked ladder may not have them (the packager refuses it).
public struct WatermarkPackaging: Sendable, Hashable {
    /// The track's watermark key (its chips, and the tags of the variants' paths).
    public var key: WatermarkKey
    /// Layout and strength of the embedding; the detector is given the same.
    public var parameters: WatermarkParameters
    /// The target segment duration of a watermarked run, seconds, in place of the
    /// configuration's: each segment carries one bit.
    ///
    /// The default, 1.92 s, is 90 AAC frames and 96 Opus packets of 20 ms at 48 kHz: the
    /// segments of every codec end at the same instants, so the bits of a session's code fall
    /// on the same audio whichever rendition a player switches to.
    public var segmentDuration: Double

    /// Watermarking with `key`.
    public init(key: WatermarkKey, parameters: WatermarkParameters = .default, segmentDuration: Double = 1.92) {
        self.key = key
        self.parameters = parameters
        self.segmentDuration = segmentDuration
    }

    /// The tag in the path of `variant` of segment `number` of `rendition`: the first 8 bytes
    /// of HMAC-SHA256(key, "veza-watermark-path\0{rendition}\0{number}\0{variant}"), in hex.
    public func tag(rendition: String, number: Int, variant: WatermarkVariant) -> String {
        let message = Array("veza-watermark-path\u{0}\(rendition)\u{0}\(number)\u{0}\(variant.rawValue)".utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key.bytes))
        return mac.prefix(8).map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
        }.joined()
    }

    /// The path of `variant` of segment `number` of `rendition`, relative to the version folder.
    public func segmentPath(rendition: String, number: Int, variant: WatermarkVariant) -> String {
        "cmaf/\(rendition)/seg-\(number)-\(tag(rendition: rendition, number: number, variant: variant)).m4s"
    }
}
