/// Writes a progressive `.mp3`: an ID3v2.4 tag (text frames, TXXX ReplayGain, APIC cover),
/// the LAME/Info frame with encoder delay and padding (so decoders play it gaplessly), then the
/// audio frames.
public enum MP3FileWriter {
    /// - Parameters:
    ///   - packets: the encoder's packets, the first being its Info-frame placeholder.
    ///   - lameTag: the encoder's final LAME tag frame (``EncodedFormat/codecConfiguration`` after finish).
    ///   - metadata: tags, ReplayGain and cover (the ID3v2.4 tag).
    public static func file(packets: [EncodedPacket], lameTag: [UInt8], metadata: ProgressiveMetadata) -> [UInt8] {
        var out: [UInt8] = []
        write(packets: PacketsInMemory(packets), lameTag: lameTag, metadata: metadata, to: &out)
        return out
    }

    static func write(packets: some PacketPayloads, lameTag: [UInt8], metadata: ProgressiveMetadata, to out: inout some ByteOutput) {
        out.write(id3v2(metadata))
        var rest = 0..<packets.shapes.count
        if let first = packets.shapes.first, first.duration == 0 {
            out.write(lameTag.count == first.size ? lameTag : packets.data(0))
            rest = 1..<rest.upperBound
        }
        packets.copy(rest, to: &out)
    }

    /// An ID3v2.4 tag (UTF-8 text frames, syncsafe sizes, no unsynchronisation).
    static func id3v2(_ metadata: ProgressiveMetadata) -> [UInt8] {
        var frames: [UInt8] = []
        func frame(_ id: String, _ body: [UInt8]) {
            frames += Array(id.utf8)
            frames += syncsafe(body.count)
            frames += [0, 0]
            frames += body
        }
        func text(_ id: String, _ value: String?) {
            guard let value else { return }
            frame(id, [3] + Array(value.utf8))
        }
        let tags = metadata.tags
        text("TIT2", tags.title)
        text("TPE1", tags.artist)
        text("TALB", tags.album)
        text("TPE2", tags.albumArtist)
        text("TRCK", tags.trackNumber.map { n in tags.trackTotal.map { "\(n)/\($0)" } ?? "\(n)" })
        text("TPOS", tags.discNumber.map { n in tags.discTotal.map { "\(n)/\($0)" } ?? "\(n)" })
        text("TDRC", tags.date)
        text("TCON", tags.genre)
        text("TSRC", tags.isrc)
        text("TSSE", metadata.encoder)
        if let comment = tags.comment { frame("COMM", [3] + Array("eng".utf8) + [0] + Array(comment.utf8)) }
        if let gain = metadata.replayGain { frame("TXXX", [3] + Array("REPLAYGAIN_TRACK_GAIN".utf8) + [0] + Array(gain.utf8)) }
        if let peak = metadata.truePeak {
            frame("TXXX", [3] + Array("REPLAYGAIN_TRACK_PEAK".utf8) + [0] + Array(formatDecimal(peak, places: 6).utf8))
        }
        if let cover = metadata.cover {
            frame("APIC", [0] + Array(cover.mimeType.utf8) + [0, 3, 0] + cover.data)
        }
        return Array("ID3".utf8) + [4, 0, 0] + syncsafe(frames.count) + frames
    }

    static func syncsafe(_ n: Int) -> [UInt8] {
        [UInt8((n >> 21) & 0x7F), UInt8((n >> 14) & 0x7F), UInt8((n >> 7) & 0x7F), UInt8(n & 0x7F)]
    }
}
