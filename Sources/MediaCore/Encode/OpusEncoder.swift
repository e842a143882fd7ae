internal import COpus

/// Opus (libopus) at 48 kHz in 20 ms frames, VBR at a target bit rate.
///
/// Priming is libopus's look-ahead (the Ogg/MP4 pre-skip, 312 samples at 48 kHz for the
/// `audio` application). ``finish()`` pads with silence until every input sample, shifted by the
/// pre-skip, is inside a packet; the container trims the rest (Ogg end granule, MP4 edit list).
public final class OpusEncoder: AudioEncoder {
    public private(set) var format: EncodedFormat
    /// Frames of input received so far.
    public private(set) var inputFrameCount: Int64 = 0
    private let encoder: OpaquePointer
    private var accumulator: FrameAccumulator
    private var encodedFrames: Int64 = 0
    private var output = [UInt8](repeating: 0, count: 4000)

    /// - Parameters:
    ///   - sampleRate: must be 48000 (resample first).
    ///   - channelCount: 1 or 2.
    ///   - bitrate: the target bit rate.
    public init(sampleRate: Int, channelCount: Int, bitrate: AudioBitrate) throws(MediaError) {
        guard sampleRate == 48_000 else {
            throw MediaError(.unsupportedParameters, "Opus is encoded from 48 kHz PCM, not \(sampleRate) Hz")
        }
        guard channelCount == 1 || channelCount == 2 else {
            throw MediaError(.unsupportedParameters, "Opus encoding takes mono or stereo, not \(channelCount) channels")
        }
        guard (6_000...510_000).contains(bitrate.bitsPerSecond) else {
            throw MediaError(.unsupportedParameters, "Opus bit rate \(bitrate) is outside 6…510 kb/s")
        }
        var error: Int32 = 0
        guard let encoder = opus_encoder_create(48_000, Int32(channelCount), OPUS_APPLICATION_AUDIO, &error), error == OPUS_OK else {
            throw MediaError(.internalFailure, "cannot create an Opus encoder: \(String(cString: opus_strerror(error)))")
        }
        self.encoder = encoder
        var lookahead: Int32 = 0
        guard veza_opus_set_bitrate(encoder, Int32(bitrate.bitsPerSecond)) == OPUS_OK,
              veza_opus_set_vbr(encoder, 1) == OPUS_OK,
              veza_opus_set_complexity(encoder, 10) == OPUS_OK,
              veza_opus_get_lookahead(encoder, &lookahead) == OPUS_OK else {
            opus_encoder_destroy(encoder)
            throw MediaError(.internalFailure, "cannot configure the Opus encoder")
        }
        accumulator = FrameAccumulator(channelCount: channelCount, frameSize: 960)
        format = EncodedFormat(codec: .opus, sampleRate: 48_000, channelCount: channelCount, frameSize: 960,
                               priming: Int(lookahead), codecConfiguration: [], bitrate: bitrate, bitsPerSample: 16)
    }

    deinit { opus_encoder_destroy(encoder) }

    public func encode(_ interleaved: UnsafeBufferPointer<Float>) throws(MediaError) -> [EncodedPacket] {
        inputFrameCount += Int64(interleaved.count / format.channelCount)
        accumulator.append(interleaved)
        var packets: [EncodedPacket] = []
        try accumulator.drain { frame throws(MediaError) in packets.append(try encodeFrame(frame)) }
        return packets
    }

    public func finish() throws(MediaError) -> [EncodedPacket] {
        var packets: [EncodedPacket] = []
        if let (padded, _) = accumulator.takeRemainder() {
            try padded.withUnsafeBufferPointer { frame throws(MediaError) in packets.append(try encodeFrame(frame)) }
        }
        // Push the look-ahead out: the last input sample must be inside a packet.
        let silence = [Float](repeating: 0, count: 960 * format.channelCount)
        while encodedFrames < inputFrameCount + Int64(format.priming) {
            try silence.withUnsafeBufferPointer { frame throws(MediaError) in packets.append(try encodeFrame(frame)) }
        }
        return packets
    }

    private func encodeFrame(_ frame: UnsafeBufferPointer<Float>) throws(MediaError) -> EncodedPacket {
        let bytes = output.withUnsafeMutableBufferPointer { out in
            opus_encode_float(encoder, frame.baseAddress!, 960, out.baseAddress!, Int32(out.count))
        }
        guard bytes > 0 else {
            throw MediaError(.internalFailure, "Opus encoding failed: \(String(cString: opus_strerror(bytes)))")
        }
        encodedFrames += 960
        return EncodedPacket(data: Array(output[0..<Int(bytes)]), duration: 960)
    }
}
