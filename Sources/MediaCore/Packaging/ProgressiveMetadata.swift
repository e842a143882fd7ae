/// What progressive files carry besides audio: the sanitised tags, an optional cover image and
/// the loudness figures that let players apply normalisation themselves (ReplayGain 2.0 and
/// Opus R128 tags), since lossless and progressive renditions carry the gain as tags rather than
/// applying it.
public struct ProgressiveMetadata: Sendable, Hashable {
    public var tags: Tags
    /// Cover image bytes and MIME type (`image/jpeg` or `image/png`).
    public var cover: (data: [UInt8], mimeType: String)?
    /// Integrated loudness of the track, LUFS (from ``LoudnessMeter``).
    public var integratedLoudness: Double?
    /// True peak of the track, linear (for REPLAYGAIN_TRACK_PEAK).
    public var truePeak: Double?
    /// Encoder name written into the files.
    public var encoder: String = "Veza Stream"

    public init(tags: Tags = Tags(), cover: (data: [UInt8], mimeType: String)? = nil, integratedLoudness: Double? = nil, truePeak: Double? = nil) {
        self.tags = tags
        self.cover = cover
        self.integratedLoudness = integratedLoudness
        self.truePeak = truePeak
    }

    public static func == (a: ProgressiveMetadata, b: ProgressiveMetadata) -> Bool {
        a.tags == b.tags && a.cover?.data == b.cover?.data && a.cover?.mimeType == b.cover?.mimeType
            && a.integratedLoudness == b.integratedLoudness && a.truePeak == b.truePeak && a.encoder == b.encoder
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(tags)
        hasher.combine(cover?.data)
        hasher.combine(integratedLoudness)
    }

    /// ReplayGain 2.0 track gain (reference −18 LUFS), e.g. `"-3.20 dB"`.
    var replayGain: String? {
        integratedLoudness.flatMap { $0.isFinite ? formatDecimal(-18 - $0, places: 2) + " dB" : nil }
    }

    /// Opus R128_TRACK_GAIN: Q7.8 fixed point relative to −23 LUFS, as decimal text.
    var r128TrackGain: String? {
        integratedLoudness.flatMap { loudness in
            guard loudness.isFinite else { return nil }
            let q78 = Int(((-23 - loudness) * 256).rounded())
            return String(max(-32768, min(32767, q78)))
        }
    }

    /// Vorbis-comment fields (FLAC and Ogg Opus): `KEY=value`.
    func vorbisComments(includeReplayGain: Bool, includeR128: Bool) -> [String] {
        var fields: [String] = []
        func add(_ key: String, _ value: String?) { if let value { fields.append("\(key)=\(value)") } }
        add("TITLE", tags.title)
        add("ARTIST", tags.artist)
        add("ALBUM", tags.album)
        add("ALBUMARTIST", tags.albumArtist)
        add("TRACKNUMBER", tags.trackNumber.map(String.init))
        add("TRACKTOTAL", tags.trackTotal.map(String.init))
        add("DISCNUMBER", tags.discNumber.map(String.init))
        add("DISCTOTAL", tags.discTotal.map(String.init))
        add("DATE", tags.date)
        add("GENRE", tags.genre)
        add("ISRC", tags.isrc)
        add("COMMENT", tags.comment)
        if includeReplayGain {
            add("REPLAYGAIN_TRACK_GAIN", replayGain)
            add("REPLAYGAIN_TRACK_PEAK", truePeak.map { formatDecimal($0, places: 6) })
        }
        if includeR128 { add("R128_TRACK_GAIN", r128TrackGain) }
        return fields
    }
}

/// Fixed-point decimal text without Foundation (`places` digits after the point).
func formatDecimal(_ value: Double, places: Int) -> String {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let integer = Int(scaled / scale)
    let fraction = Int(scaled) - integer * Int(scale)
    var digits = String(fraction)
    while digits.count < places { digits = "0" + digits }
    return (value < 0 && scaled != 0 ? "-" : "") + String(integer) + (places > 0 ? "." + digits : "")
}

/// Big- and little-endian byte appending.
extension Array where Element == UInt8 {
    mutating func appendBE(_ value: UInt64, bytes: Int) {
        for i in (0..<bytes).reversed() { append(UInt8((value >> (8 * UInt64(i))) & 0xFF)) }
    }
    mutating func appendLE(_ value: UInt64, bytes: Int) {
        for i in 0..<bytes { append(UInt8((value >> (8 * UInt64(i))) & 0xFF)) }
    }
}

/// The body of a Vorbis comment block: vendor string and `KEY=value` fields (little-endian lengths).
func vorbisCommentBody(vendor: String, fields: [String]) -> [UInt8] {
    var b: [UInt8] = []
    b.appendLE(UInt64(vendor.utf8.count), bytes: 4)
    b += Array(vendor.utf8)
    b.appendLE(UInt64(fields.count), bytes: 4)
    for field in fields {
        b.appendLE(UInt64(field.utf8.count), bytes: 4)
        b += Array(field.utf8)
    }
    return b
}

/// A FLAC METADATA_BLOCK_PICTURE body (also used base64-encoded in Ogg).
func flacPictureBody(data: [UInt8], mimeType: String) -> [UInt8] {
    var b: [UInt8] = []
    b.appendBE(3, bytes: 4)  // front cover
    b.appendBE(UInt64(mimeType.utf8.count), bytes: 4)
    b += Array(mimeType.utf8)
    b.appendBE(0, bytes: 4)  // description
    b.appendBE(0, bytes: 4 * 4)  // width, height, depth, colours: unknown
    b.appendBE(UInt64(data.count), bytes: 4)
    b += data
    return b
}
