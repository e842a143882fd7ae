internal import CFFmpeg

/// AAC-LC with FFmpeg's native `aac` encoder, at a constant target bit rate.
///
/// Priming is the encoder's `initial_padding` (1024 samples); ``finish()`` drains the encoder,
/// whose last packet carries trailing padding up to a whole 1024-sample frame.
public final class AACEncoder: AudioEncoder {
    public private(set) var format: EncodedFormat
    public private(set) var inputFrameCount: Int64 = 0
    private let context: UnsafeMutablePointer<AVCodecContext>
    private let frame: Frame
    private let packet: Packet
    private var accumulator: FrameAccumulator
    private var pts: Int64 = 0

    public init(sampleRate: Int, channelCount: Int, bitrate: AudioBitrate) throws(MediaError) {
        _ = FFmpegLogging.quiet
        guard (1...2).contains(channelCount) else {
            throw MediaError(.unsupportedParameters, "AAC encoding takes mono or stereo, not \(channelCount) channels")
        }
        guard let codec = avcodec_find_encoder_by_name("aac") else {
            throw MediaError(.unsupportedCodec, "this FFmpeg has no native AAC encoder")
        }
        guard let context = avcodec_alloc_context3(codec) else {
            throw MediaError(.internalFailure, "cannot allocate the AAC encoder")
        }
        var owned: UnsafeMutablePointer<AVCodecContext>? = context
        do {
            context.pointee.sample_rate = Int32(sampleRate)
            context.pointee.sample_fmt = AV_SAMPLE_FMT_FLTP
            context.pointee.bit_rate = Int64(bitrate.bitsPerSecond)
            context.pointee.profile = FF_PROFILE_AAC_LOW
            context.pointee.time_base = AVRational(num: 1, den: Int32(sampleRate))
            av_channel_layout_default(&context.pointee.ch_layout, Int32(channelCount))
            try avcodec_open2(context, codec, nil).check("cannot open the AAC encoder", default: .unsupportedParameters)
            frame = try Frame()
            packet = try Packet()
        } catch {
            avcodec_free_context(&owned)
            throw error
        }
        self.context = context
        let frameSize = Int(context.pointee.frame_size)
        accumulator = FrameAccumulator(channelCount: channelCount, frameSize: frameSize)
        let extradata = context.pointee.extradata.map { Array(UnsafeBufferPointer(start: $0, count: Int(context.pointee.extradata_size))) } ?? []
        format = EncodedFormat(codec: .aac, sampleRate: sampleRate, channelCount: channelCount, frameSize: frameSize,
                               priming: Int(context.pointee.initial_padding), codecConfiguration: extradata,
                               bitrate: bitrate, bitsPerSample: 16)
    }

    deinit {
        var owned: UnsafeMutablePointer<AVCodecContext>? = context
        avcodec_free_context(&owned)
    }

    public func encode(_ interleaved: UnsafeBufferPointer<Float>) throws(MediaError) -> [EncodedPacket] {
        inputFrameCount += Int64(interleaved.count / format.channelCount)
        accumulator.append(interleaved)
        var packets: [EncodedPacket] = []
        try accumulator.drain { block throws(MediaError) in
            try send(block, frames: format.frameSize)
            try receive(into: &packets)
        }
        return packets
    }

    public func finish() throws(MediaError) -> [EncodedPacket] {
        var packets: [EncodedPacket] = []
        if let (padded, frames) = accumulator.takeRemainder() {
            try padded.withUnsafeBufferPointer { block throws(MediaError) in try send(block, frames: frames) }
            try receive(into: &packets)
        }
        try avcodec_send_frame(context, nil).check("cannot flush the AAC encoder", default: .internalFailure)
        try receive(into: &packets)
        return packets
    }

    /// Sends `frames` frames of interleaved input as one planar frame.
    private func send(_ interleaved: UnsafeBufferPointer<Float>, frames: Int) throws(MediaError) {
        let f = frame.pointer
        av_frame_unref(f)
        f.pointee.nb_samples = Int32(frames)
        f.pointee.format = AV_SAMPLE_FMT_FLTP.rawValue
        f.pointee.sample_rate = Int32(format.sampleRate)
        f.pointee.pts = pts
        pts += Int64(frames)
        try av_channel_layout_copy(&f.pointee.ch_layout, &context.pointee.ch_layout).check("invalid layout", default: .internalFailure)
        try av_frame_get_buffer(f, 0).check("cannot allocate an audio frame", default: .internalFailure)
        let channels = format.channelCount
        for c in 0..<channels {
            guard let plane = f.pointee.extended_data[c] else { continue }
            let out = UnsafeMutableRawPointer(plane).assumingMemoryBound(to: Float.self)
            for n in 0..<frames { out[n] = interleaved[n * channels + c] }
        }
        try avcodec_send_frame(context, f).check("AAC encoding failed", default: .internalFailure)
    }

    private func receive(into packets: inout [EncodedPacket]) throws(MediaError) {
        while true {
            let result = AVResult(avcodec_receive_packet(context, packet.pointer))
            if result == .again || result == .eof { return }
            if result.isError { throw result.error("AAC encoding failed", default: .internalFailure) }
            let p = packet.pointer.pointee
            // Every AAC frame decodes to frame_size samples; the container's edit list trims
            // the priming and the padding of the last one.
            packets.append(EncodedPacket(data: Array(UnsafeBufferPointer(start: p.data, count: Int(p.size))),
                                         duration: format.frameSize))
            packet.unref()
        }
    }
}
