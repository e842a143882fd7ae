/// Writes an Ogg Opus file (RFC 7845): OpusHead (pre-skip, input rate), OpusTags (tags,
/// R128_TRACK_GAIN, cover as METADATA_BLOCK_PICTURE), then audio pages whose granule positions
/// make a decoder output exactly the source's samples (the last page's granule is
/// pre-skip + source length, trimming the padding of the last packet).
public enum OggOpusWriter {
    public static func file(packets: [EncodedPacket], channelCount: Int, preSkip: Int, inputSampleRate: Int,
                            sourceFrameCount: Int64, metadata: ProgressiveMetadata, serial: UInt32 = 0x5645_5A41) -> [UInt8] {
        var out: [UInt8] = []
        write(packets: PacketsInMemory(packets), channelCount: channelCount, preSkip: preSkip, inputSampleRate: inputSampleRate,
              sourceFrameCount: sourceFrameCount, metadata: metadata, serial: serial, to: &out)
        return out
    }

    static func write(packets: some PacketPayloads, channelCount: Int, preSkip: Int, inputSampleRate: Int, sourceFrameCount: Int64,
                      metadata: ProgressiveMetadata, serial: UInt32 = 0x5645_5A41, to out: inout some ByteOutput) {
        var writer = OggPageWriter(serial: serial)
        var head: [UInt8] = Array("OpusHead".utf8)
        head.append(1)
        head.append(UInt8(channelCount))
        head.appendLE(UInt64(preSkip), bytes: 2)
        head.appendLE(UInt64(inputSampleRate), bytes: 4)
        head.appendLE(0, bytes: 2)  // output gain: normalisation is carried by R128_TRACK_GAIN
        head.append(0)  // mapping family 0 (mono/stereo)
        writer.pages([(head, 0)], beginning: true)
        var fields = metadata.vorbisComments(includeReplayGain: false, includeR128: true)
        if let cover = metadata.cover {
            fields.append("METADATA_BLOCK_PICTURE=" + base64(flacPictureBody(data: cover.data, mimeType: cover.mimeType)))
        }
        writer.pages([(Array("OpusTags".utf8) + vorbisCommentBody(vendor: metadata.encoder, fields: fields), 0)])
        // Audio: one page per second or so; the last granule trims the padding (RFC 7845 §4.4).
        var granule: Int64 = 0
        let end = Int64(preSkip) + sourceFrameCount
        var batch: [(data: [UInt8], granule: Int64)] = []
        let shapes = packets.shapes
        for (i, packet) in shapes.enumerated() {
            granule += Int64(packet.duration)
            let last = i == shapes.count - 1
            batch.append((packets.data(i), last ? min(granule, end) : granule))
            if last || batch.count >= 50 {
                writer.pages(batch, end: last)
                batch = []
                out.write(writer.bytes)
                writer.bytes.removeAll(keepingCapacity: true)
            }
        }
        out.write(writer.bytes)
    }
}

/// Ogg page framing (RFC 3533) with the Ogg CRC-32 (polynomial 0x04C11DB7, no reflection).
struct OggPageWriter {
    let serial: UInt32
    var sequence: UInt32 = 0
    var bytes: [UInt8] = []

    init(serial: UInt32) { self.serial = serial }

    /// Writes `packets` (each with the granule position at its end) on as many pages as their
    /// lacing needs (255 lacing values a page). A page's granule is that of the last packet
    /// completed on it, or −1 when none is; a page that starts inside a packet is marked continued.
    mutating func pages(_ packets: [(data: [UInt8], granule: Int64)], beginning: Bool = false, end: Bool = false) {
        var lacing: [UInt8] = []
        var body: [UInt8] = []
        var granule: Int64 = -1
        var continued = false
        var first = true
        func flush(last: Bool) {
            emit(lacing: lacing, body: body, granule: granule, beginning: beginning && first,
                 end: end && last, continued: continued)
            first = false
            lacing = []
            body = []
            granule = -1
        }
        for packet in packets {
            var offset = 0
            while true {
                if lacing.count == 255 {
                    flush(last: false)
                    continued = offset > 0 || false
                }
                let length = min(255, packet.data.count - offset)
                lacing.append(UInt8(length))
                body += packet.data[offset..<offset + length]
                offset += length
                if length < 255 {
                    granule = packet.granule
                    continued = false
                    break
                }
            }
        }
        flush(last: true)
    }

    private mutating func emit(lacing: [UInt8], body: [UInt8], granule: Int64, beginning: Bool, end: Bool, continued: Bool) {
        var page: [UInt8] = Array("OggS".utf8)
        page.append(0)
        page.append((continued ? 1 : 0) | (beginning ? 2 : 0) | (end ? 4 : 0))
        page.appendLE(UInt64(bitPattern: granule), bytes: 8)
        page.appendLE(UInt64(serial), bytes: 4)
        page.appendLE(UInt64(sequence), bytes: 4)
        let crcOffset = page.count
        page.appendLE(0, bytes: 4)
        page.append(UInt8(lacing.count))
        page += lacing
        page += body
        let crc = OggPageWriter.crc(page)
        for i in 0..<4 { page[crcOffset + i] = UInt8((crc >> (8 * UInt32(i))) & 0xFF) }
        bytes += page
        sequence += 1
    }

    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var r = UInt32(i) << 24
        for _ in 0..<8 { r = (r & 0x8000_0000) != 0 ? (r << 1) ^ 0x04C1_1DB7 : r << 1 }
        return r
    }

    static func crc(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0
        for byte in data { crc = (crc << 8) ^ table[Int(((crc >> 24) ^ UInt32(byte)) & 0xFF)] }
        return crc
    }
}

/// Standard base64 (RFC 4648 §4) without Foundation.
func base64(_ data: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    var out: [UInt8] = []
    out.reserveCapacity((data.count + 2) / 3 * 4)
    var i = 0
    while i < data.count {
        let b0 = UInt32(data[i]), b1 = i + 1 < data.count ? UInt32(data[i + 1]) : 0, b2 = i + 2 < data.count ? UInt32(data[i + 2]) : 0
        let n = b0 << 16 | b1 << 8 | b2
        out.append(alphabet[Int(n >> 18 & 63)])
        out.append(alphabet[Int(n >> 12 & 63)])
        out.append(i + 1 < data.count ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
        out.append(i + 2 < data.count ? alphabet[Int(n & 63)] : UInt8(ascii: "="))
        i += 3
    }
    return String(decoding: out, as: UTF8.self)
}
