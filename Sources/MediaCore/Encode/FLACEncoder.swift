internal import CFLAC

/// Lossless FLAC with libFLAC, at the source's rate and bit depth (16 or 24 bits).
///
/// Float input is converted back to integers exactly (a 16- or 24-bit source decoded to Float32
/// is exact), so the encoded stream is bit-identical to the source. Packets are FLAC frames;
/// after ``finish()``, ``format``'s `codecConfiguration` is the final 34-byte STREAMINFO body
/// with the total sample count and the MD5 of the audio.
public final class FLACEncoder: AudioEncoder {
    public private(set) var format: EncodedFormat
    public private(set) var inputFrameCount: Int64 = 0
    private let encoder: UnsafeMutablePointer<FLAC__StreamEncoder>
    private let sink: Sink
    private var integers: [Int32] = []
    private let scale: Float
    private let maximum: Int32

    /// Receives libFLAC's callbacks (passed as `client_data`; lives as long as the encoder).
    final class Sink {
        var packets: [EncodedPacket] = []
        var streamInfo: [UInt8] = []
        var headerSeen = false
    }

    public init(sampleRate: Int, channelCount: Int, bitsPerSample: Int, compressionLevel: Int = 5) throws(MediaError) {
        guard bitsPerSample == 16 || bitsPerSample == 24 else {
            throw MediaError(.unsupportedParameters, "FLAC is encoded at 16 or 24 bits, not \(bitsPerSample)")
        }
        guard (1...8).contains(channelCount), (1...655_350).contains(sampleRate), (0...8).contains(compressionLevel) else {
            throw MediaError(.unsupportedParameters, "FLAC cannot encode \(channelCount) channels at \(sampleRate) Hz (level \(compressionLevel))")
        }
        guard let encoder = FLAC__stream_encoder_new() else { throw MediaError(.internalFailure, "cannot create a FLAC encoder") }
        self.encoder = encoder
        sink = Sink()
        scale = Float(1 << (bitsPerSample - 1))
        maximum = Int32((1 << (bitsPerSample - 1)) - 1)
        FLAC__stream_encoder_set_channels(encoder, UInt32(channelCount))
        FLAC__stream_encoder_set_bits_per_sample(encoder, UInt32(bitsPerSample))
        FLAC__stream_encoder_set_sample_rate(encoder, UInt32(sampleRate))
        FLAC__stream_encoder_set_compression_level(encoder, UInt32(compressionLevel))
        let write: FLAC__StreamEncoderWriteCallback = { _, buffer, bytes, samples, _, client in
            let sink = Unmanaged<Sink>.fromOpaque(client!).takeUnretainedValue()
            let data = Array(UnsafeBufferPointer(start: buffer, count: bytes))
            if samples > 0 {
                sink.packets.append(EncodedPacket(data: data, duration: Int(samples)))
            }
            return FLAC__STREAM_ENCODER_WRITE_STATUS_OK
        }
        let metadata: FLAC__StreamEncoderMetadataCallback = { _, block, client in
            guard let block, block.pointee.type == FLAC__METADATA_TYPE_STREAMINFO else { return }
            let sink = Unmanaged<Sink>.fromOpaque(client!).takeUnretainedValue()
            sink.streamInfo = FLACEncoder.serialize(block.pointee.data.stream_info)
        }
        let status = FLAC__stream_encoder_init_stream(encoder, write, nil, nil, metadata,
                                                      Unmanaged.passUnretained(sink).toOpaque())
        guard status == FLAC__STREAM_ENCODER_INIT_STATUS_OK else {
            FLAC__stream_encoder_delete(encoder)
            throw MediaError(.internalFailure, "cannot initialise the FLAC encoder (status \(status.rawValue))")
        }
        format = EncodedFormat(codec: .flac, sampleRate: sampleRate, channelCount: channelCount,
                               frameSize: Int(FLAC__stream_encoder_get_blocksize(encoder)), priming: 0,
                               codecConfiguration: [], bitrate: nil, bitsPerSample: bitsPerSample)
    }

    deinit { FLAC__stream_encoder_delete(encoder) }

    public func encode(_ interleaved: UnsafeBufferPointer<Float>) throws(MediaError) -> [EncodedPacket] {
        let frames = interleaved.count / format.channelCount
        inputFrameCount += Int64(frames)
        if integers.count < interleaved.count { integers = [Int32](repeating: 0, count: interleaved.count) }
        for i in 0..<interleaved.count {
            let v = (interleaved[i] * scale).rounded()
            integers[i] = v >= Float(maximum) ? maximum : (v <= -scale ? -maximum - 1 : Int32(v))
        }
        let ok = integers.withUnsafeBufferPointer { FLAC__stream_encoder_process_interleaved(encoder, $0.baseAddress!, UInt32(frames)) }
        guard ok != 0 else { throw failure() }
        return takePackets()
    }

    public func finish() throws(MediaError) -> [EncodedPacket] {
        guard FLAC__stream_encoder_finish(encoder) != 0 else { throw failure() }
        format.codecConfiguration = sink.streamInfo
        return takePackets()
    }

    private func takePackets() -> [EncodedPacket] {
        defer { sink.packets.removeAll(keepingCapacity: true) }
        return sink.packets
    }

    private func failure() -> MediaError {
        let state = FLAC__stream_encoder_get_state(encoder)
        return MediaError(.internalFailure, "FLAC encoding failed (state \(state.rawValue))")
    }

    /// The 34-byte STREAMINFO body (FLAC format §METADATA_BLOCK_STREAMINFO).
    static func serialize(_ info: FLAC__StreamMetadata_StreamInfo) -> [UInt8] {
        var b: [UInt8] = []
        func put(_ value: UInt64, bytes: Int) { for i in (0..<bytes).reversed() { b.append(UInt8((value >> (8 * UInt64(i))) & 0xFF)) } }
        put(UInt64(info.min_blocksize), bytes: 2)
        put(UInt64(info.max_blocksize), bytes: 2)
        put(UInt64(info.min_framesize), bytes: 3)
        put(UInt64(info.max_framesize), bytes: 3)
        // 20 bits rate, 3 bits channels−1, 5 bits bps−1, 36 bits total samples.
        let packed = UInt64(info.sample_rate) << 44 | UInt64(info.channels - 1) << 41
            | UInt64(info.bits_per_sample - 1) << 36 | (info.total_samples & 0xF_FFFF_FFFF)
        put(packed, bytes: 8)
        var md5 = info.md5sum
        withUnsafeBytes(of: &md5) { b.append(contentsOf: $0) }
        return b
    }
}
