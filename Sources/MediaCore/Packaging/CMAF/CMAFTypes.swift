/// The audio coding of a track, with the decoder configuration its sample entry carries.
public enum CMAFCodec: Sendable, Hashable {
    /// MPEG-4 AAC: sample entry `mp4a` with an `esds` box (objectTypeIndication 0x40)
    /// carrying the AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1) as DecoderSpecificInfo.
    case aac(audioSpecificConfig: [UInt8])
    /// Opus: sample entry `Opus` with a `dOps` box (Encapsulation of Opus in ISOBMFF §4.3.2).
    /// `preSkip` is in 48 kHz samples; `inputSampleRate` is informative (0 when unknown).
    case opus(preSkip: Int, inputSampleRate: Int)
    /// FLAC: sample entry `fLaC` with a `dfLa` box (Encapsulation of FLAC in ISOBMFF §3.3.2).
    /// `streamInfo` is the 34-byte METADATA_BLOCK_STREAMINFO body (without its block header).
    case flac(streamInfo: [UInt8])

    /// RFC 6381 codec string for HLS `CODECS` and DASH `@codecs`: `"mp4a.40.2"` (the object
    /// type is read from the AudioSpecificConfig, so HE-AAC signalled explicitly gives
    /// `"mp4a.40.5"`), `"opus"` or `"fLaC"`.
    public var codecString: String {
        switch self {
        case .aac(let config): "mp4a.40.\(CMAFCodec.audioObjectType(config) ?? 2)"
        case .opus: "opus"
        case .flac: "fLaC"
        }
    }

    /// The audioObjectType of an AudioSpecificConfig (5 bits, with the escape value 31
    /// followed by 6 more bits, ISO/IEC 14496-3 §1.6.2.1), or nil if the config is empty.
    static func audioObjectType(_ config: [UInt8]) -> Int? {
        guard let first = config.first else { return nil }
        let type = Int(first >> 3)
        guard type == 31 else { return type }
        guard config.count >= 2 else { return nil }
        return 32 + ((Int(first & 0x07) << 3) | Int(config[1] >> 5))
    }
}

/// Describes one audio track: codec, format and timing.
public struct CMAFTrack: Sendable, Hashable {
    /// Coding and decoder configuration.
    public var codec: CMAFCodec
    /// Sample rate in Hz, written in the sample entry's `samplerate` field (rates above
    /// 65535 Hz are written as their largest integer division that fits; the decoder
    /// configuration carries the real rate).
    public var sampleRate: Int
    /// Number of output channels (`channelcount` of the sample entry).
    public var channelCount: Int
    /// Media timescale in ticks per second: the sample rate for AAC and FLAC, 48000 for Opus.
    public var timescale: Int
    /// Encoder delay in timescale units, trimmed by the edit list (`elst` media_time):
    /// 1024 for libavcodec's AAC encoder, 0 for FLAC, normally 0 for Opus, whose pre-skip
    /// travels in `dOps`. For Opus the edit starts at `max(priming, preSkip)`: Opus-in-ISOBMFF
    /// §4.4 makes the edit list, not `PreSkip`, do the trimming, and FFmpeg reads an edit
    /// that starts at 0 as "present the pre-skip samples" and then drops 312 samples of
    /// real audio (see NOTES.md).
    public var priming: Int
    /// Bits per sample for the sample entry's `samplesize`: 16 for lossy codecs, the real
    /// depth for FLAC.
    public var bitsPerSample: Int
    /// Average bitrate in bits per second for `esds` and `btrt`, when known.
    public var averageBitrate: Int?
    /// ISO 639-2/T language code for `mdhd` (three lowercase letters), `"und"` by default.
    public var language: String
    /// Common Encryption of the samples (nil: clear).
    public var encryption: CMAFEncryption?

    /// Creates a track description. `timescale` defaults to 48000 for Opus and to
    /// `sampleRate` otherwise.
    public init(
        codec: CMAFCodec,
        sampleRate: Int,
        channelCount: Int,
        timescale: Int? = nil,
        priming: Int = 0,
        bitsPerSample: Int = 16,
        averageBitrate: Int? = nil,
        language: String = "und",
        encryption: CMAFEncryption? = nil
    ) {
        self.codec = codec
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        if let timescale {
            self.timescale = timescale
        } else if case .opus = codec {
            self.timescale = 48000
        } else {
            self.timescale = sampleRate
        }
        self.priming = priming
        self.bitsPerSample = bitsPerSample
        self.averageBitrate = averageBitrate
        self.language = language
        self.encryption = encryption
    }

    /// `media_time` of the edit: the priming, and for Opus at least the `dOps` pre-skip.
    var editMediaTime: Int {
        if case .opus(let preSkip, _) = codec { max(priming, preSkip) } else { priming }
    }
}

/// Common Encryption (ISO/IEC 23001-7) of a CMAF track: scheme `cenc` (AES-128-CTR over every
/// whole audio sample, an 8-byte IV per sample), the key and its id.
///
/// The init segment declares it (`enca` with `sinf`: `frma`, `schm`, `tenc` with the default KID,
/// and a `pssh` of the W3C common system for ClearKey and other EME key systems); each media
/// segment carries its samples' IVs (`senc`, with `saiz` and `saio` pointing at them) and the
/// samples encrypted in `mdat`. IVs are random per segment and count up per sample, so renditions
/// sharing a key never share a counter.
public struct CMAFEncryption: Sendable, Hashable {
    /// The protection scheme (`schm`).
    public enum Scheme: String, Sendable, Hashable {
        /// AES-128-CTR over each whole sample, an 8-byte IV per sample in `senc`.
        case cenc
        /// AES-128-CBC over each sample's whole 16-byte blocks (the trailing partial block
        /// clear), restarted at every sample from one constant IV in `tenc` (version 1, no
        /// pattern: ISO/IEC 23001-7 §10.4 for audio); no `senc`. What Apple's players and HLS
        /// `SAMPLE-AES` over fMP4 use.
        case cbcs
    }

    /// The scheme.
    public var scheme: Scheme
    /// The 16-byte key id (`tenc` default_KID, DASH `cenc:default_KID`).
    public var keyID: [UInt8]
    /// The content key.
    public var key: ContentKey
    /// `cbcs`'s constant IV (16 bytes, in `tenc`).
    public var constantIV: [UInt8]

    /// - Precondition: `keyID` and `constantIV` have 16 bytes.
    public init(scheme: Scheme = .cenc, keyID: [UInt8], key: ContentKey, constantIV: [UInt8] = [UInt8](repeating: 0, count: 16)) {
        precondition(keyID.count == 16 && constantIV.count == 16, "a KID and an IV have 16 bytes")
        self.scheme = scheme
        self.keyID = keyID
        self.key = key
        self.constantIV = constantIV
    }

    /// The W3C "common" system id (`1077efec-c0b2-4d02-ace3-3c1e52e2fb4b`) of the `pssh` box.
    public static let commonSystemID: [UInt8] = [0x10, 0x77, 0xef, 0xec, 0xc0, 0xb2, 0x4d, 0x02,
                                                 0xac, 0xe3, 0x3c, 0x1e, 0x52, 0xe2, 0xfb, 0x4b]
}
