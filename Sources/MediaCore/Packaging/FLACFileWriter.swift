/// Writes a native `.flac` file: `fLaC`, STREAMINFO, SEEKTABLE (a point every 10 s),
/// VORBIS_COMMENT (tags and ReplayGain), PICTURE (cover) and the frames.
public enum FLACFileWriter {
    /// - Parameters:
    ///   - streamInfo: the encoder's final 34-byte STREAMINFO (``EncodedFormat/codecConfiguration``).
    ///   - sampleRate: the stream's rate in Hz (the seek table's unit).
    ///   - packets: FLAC frames in order.
    ///   - metadata: tags, ReplayGain and cover.
    public static func file(streamInfo: [UInt8], sampleRate: Int, packets: [EncodedPacket], metadata: ProgressiveMetadata) -> [UInt8] {
        var out: [UInt8] = []
        write(streamInfo: streamInfo, sampleRate: sampleRate, packets: PacketsInMemory(packets), metadata: metadata, to: &out)
        return out
    }

    static func write(streamInfo: [UInt8], sampleRate: Int, packets: some PacketPayloads, metadata: ProgressiveMetadata,
                      to output: inout some ByteOutput) {
        var blocks: [(type: UInt8, body: [UInt8])] = [(0, streamInfo)]
        // Seek points: first sample of the frame at or after every 10 s; offsets from the first frame.
        var seek: [UInt8] = []
        var sample: Int64 = 0, offset: Int64 = 0, nextPoint: Int64 = 0
        for packet in packets.shapes {
            if sample >= nextPoint {
                seek.appendBE(UInt64(sample), bytes: 8)
                seek.appendBE(UInt64(offset), bytes: 8)
                seek.appendBE(UInt64(packet.duration), bytes: 2)
                nextPoint = sample + Int64(sampleRate) * 10
            }
            sample += Int64(packet.duration)
            offset += Int64(packet.size)
        }
        if !seek.isEmpty { blocks.append((3, seek)) }
        blocks.append((4, vorbisCommentBody(vendor: metadata.encoder, fields: metadata.vorbisComments(includeReplayGain: true, includeR128: false))))
        if let cover = metadata.cover { blocks.append((6, flacPictureBody(data: cover.data, mimeType: cover.mimeType))) }
        var out: [UInt8] = Array("fLaC".utf8)
        for (i, block) in blocks.enumerated() {
            out.append(block.type | (i == blocks.count - 1 ? 0x80 : 0))
            out.appendBE(UInt64(block.body.count), bytes: 3)
            out += block.body
        }
        output.write(out)
        packets.copy(0..<packets.shapes.count, to: &output)
    }
}
