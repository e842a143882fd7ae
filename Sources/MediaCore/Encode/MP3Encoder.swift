internal import CLame

/// MP3 with LAME, CBR or VBR, with a LAME/Info header for gapless playback.
///
/// LAME writes a byte stream; it is split here into whole MPEG frames (packets of 1152 samples
/// at 32–48 kHz, 576 below). The first packet is the Info/Xing frame placeholder (duration 0);
/// after ``finish()``, ``format``'s `codecConfiguration` holds the final LAME tag frame, carrying
/// encoder delay and padding, which a progressive file writes in place of that first packet.
public final class MP3Encoder: AudioEncoder {
    /// Bit-rate mode.
    public enum Mode: Sendable, Hashable {
        case cbr(AudioBitrate)
        /// VBR quality 0 (best) … 9.
        case vbr(quality: Int)
    }

    public private(set) var format: EncodedFormat
    public private(set) var inputFrameCount: Int64 = 0
    private let lame: OpaquePointer
    private var pending: [UInt8] = []
    private var output = [UInt8](repeating: 0, count: 1 << 16)
    private var sawInfoFrame = false

    public init(sampleRate: Int, channelCount: Int, mode: Mode) throws(MediaError) {
        guard [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000].contains(sampleRate) else {
            throw MediaError(.unsupportedParameters, "MP3 cannot carry \(sampleRate) Hz")
        }
        guard channelCount == 1 || channelCount == 2 else {
            throw MediaError(.unsupportedParameters, "MP3 takes mono or stereo, not \(channelCount) channels")
        }
        guard let lame = lame_init() else { throw MediaError(.internalFailure, "cannot create a LAME encoder") }
        self.lame = lame
        lame_set_in_samplerate(lame, Int32(sampleRate))
        lame_set_out_samplerate(lame, Int32(sampleRate))
        lame_set_num_channels(lame, Int32(channelCount))
        lame_set_mode(lame, channelCount == 1 ? MONO : JOINT_STEREO)
        lame_set_quality(lame, 2)
        lame_set_bWriteVbrTag(lame, 1)
        var bitrate: AudioBitrate?
        switch mode {
        case .cbr(let rate):
            guard (32_000...320_000).contains(rate.bitsPerSecond) else {
                lame_close(lame)
                throw MediaError(.unsupportedParameters, "MP3 bit rate \(rate) is outside 32…320 kb/s")
            }
            lame_set_VBR(lame, vbr_off)
            lame_set_brate(lame, Int32(rate.bitsPerSecond / 1000))
            bitrate = rate
        case .vbr(let quality):
            guard (0...9).contains(quality) else {
                lame_close(lame)
                throw MediaError(.unsupportedParameters, "MP3 VBR quality \(quality) is outside 0…9")
            }
            lame_set_VBR(lame, vbr_default)
            lame_set_VBR_quality(lame, Float(quality))
        }
        guard lame_init_params(lame) >= 0 else {
            lame_close(lame)
            throw MediaError(.unsupportedParameters, "LAME refused these parameters")
        }
        let frameSize = Int(lame_get_framesize(lame))
        format = EncodedFormat(codec: .mp3, sampleRate: sampleRate, channelCount: channelCount, frameSize: frameSize,
                               priming: Int(lame_get_encoder_delay(lame)) + 529, codecConfiguration: [],
                               bitrate: bitrate, bitsPerSample: 16)
    }

    deinit { lame_close(lame) }

    public func encode(_ interleaved: UnsafeBufferPointer<Float>) throws(MediaError) -> [EncodedPacket] {
        let frames = interleaved.count / format.channelCount
        inputFrameCount += Int64(frames)
        var offset = 0
        // LAME's output bound is 1.25 × samples + 7200 bytes: feed in slices that fit.
        while offset < frames {
            let count = min(frames - offset, 16_384)
            let written: Int32
            if format.channelCount == 2 {
                written = output.withUnsafeMutableBufferPointer { out in
                    lame_encode_buffer_interleaved_ieee_float(lame, interleaved.baseAddress! + offset * 2, Int32(count), out.baseAddress!, Int32(out.count))
                }
            } else {
                written = output.withUnsafeMutableBufferPointer { out in
                    lame_encode_buffer_ieee_float(lame, interleaved.baseAddress! + offset, nil, Int32(count), out.baseAddress!, Int32(out.count))
                }
            }
            guard written >= 0 else { throw MediaError(.internalFailure, "LAME encoding failed (\(written))") }
            pending += output[0..<Int(written)]
            offset += count
        }
        return splitFrames(final: false)
    }

    public func finish() throws(MediaError) -> [EncodedPacket] {
        let written = output.withUnsafeMutableBufferPointer { out in lame_encode_flush(lame, out.baseAddress!, Int32(out.count)) }
        guard written >= 0 else { throw MediaError(.internalFailure, "LAME flush failed (\(written))") }
        pending += output[0..<Int(written)]
        let packets = splitFrames(final: true)
        let tagSize = output.withUnsafeMutableBufferPointer { out in lame_get_lametag_frame(lame, out.baseAddress!, out.count) }
        format.codecConfiguration = Array(output[0..<tagSize])
        return packets
    }

    /// Cuts `pending` into whole frames using their headers.
    private func splitFrames(final: Bool) -> [EncodedPacket] {
        var packets: [EncodedPacket] = []
        var start = 0
        while start + 4 <= pending.count {
            guard let (_, length) = Sniffer.mpegAudioFrame(Array(pending[start..<start + 4]), at: 0) else {
                start += 1  // not expected from LAME; resynchronise
                continue
            }
            guard start + length <= pending.count else { break }
            let data = Array(pending[start..<start + length])
            // LAME's first frame is the Info/Xing placeholder: no audio in it.
            let duration = sawInfoFrame ? format.frameSize : 0
            sawInfoFrame = true
            packets.append(EncodedPacket(data: data, duration: duration))
            start += length
        }
        pending.removeFirst(final ? pending.count : start)
        return packets
    }
}
