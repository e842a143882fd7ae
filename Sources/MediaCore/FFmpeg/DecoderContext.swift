internal import CFFmpeg

/// Owns a decoding `AVCodecContext` opened from a stream's parameters.
final class DecoderContext {
    let context: UnsafeMutablePointer<AVCodecContext>

    init(stream: UnsafeMutablePointer<AVStream>, codec: UnsafePointer<AVCodec>) throws(MediaError) {
        guard let ctx = avcodec_alloc_context3(codec) else {
            throw MediaError(.internalFailure, "cannot allocate a decoder context")
        }
        var owned: UnsafeMutablePointer<AVCodecContext>? = ctx
        do {
            try avcodec_parameters_to_context(ctx, stream.pointee.codecpar).check("invalid codec parameters")
            ctx.pointee.pkt_timebase = stream.pointee.time_base
            // Audio decoding is single-threaded in FFmpeg; one thread avoids its frame-thread pool.
            ctx.pointee.thread_count = 1
            try avcodec_open2(ctx, codec, nil).check("cannot open the \(String(cString: codec.pointee.name)) decoder", default: .unsupportedCodec)
        } catch {
            avcodec_free_context(&owned)
            throw error
        }
        context = ctx
    }

    /// Opens `codec` without a container: from the codec's own header bytes (`extradata`: an
    /// OpusHead packet, Xiph-laced Vorbis headers) or from the packets themselves (MP3, ADTS).
    init(codec: UnsafePointer<AVCodec>, extradata: [UInt8]?, sampleRate: Int32, channels: Int32) throws(MediaError) {
        guard let ctx = avcodec_alloc_context3(codec) else {
            throw MediaError(.internalFailure, "cannot allocate a decoder context")
        }
        var owned: UnsafeMutablePointer<AVCodecContext>? = ctx
        do throws(MediaError) {
            if let extradata, !extradata.isEmpty {
                // libavcodec frees extradata with the context; it must come from av_malloc, padded.
                let padding = 64
                guard let buffer = av_mallocz(extradata.count + padding)?.assumingMemoryBound(to: UInt8.self) else {
                    throw MediaError(.internalFailure, "cannot allocate codec headers")
                }
                extradata.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: $0.count) }
                ctx.pointee.extradata = buffer
                ctx.pointee.extradata_size = Int32(extradata.count)
            }
            if sampleRate > 0 { ctx.pointee.sample_rate = sampleRate }
            if channels > 0 { av_channel_layout_default(&ctx.pointee.ch_layout, channels) }
            ctx.pointee.thread_count = 1
            try avcodec_open2(ctx, codec, nil).check("cannot open the \(String(cString: codec.pointee.name)) decoder", default: .unsupportedCodec)
        } catch {
            avcodec_free_context(&owned)
            throw error
        }
        context = ctx
    }

    deinit {
        var ctx: UnsafeMutablePointer<AVCodecContext>? = context
        avcodec_free_context(&ctx)
    }

    /// Sends a packet (or nil to drain); returns the raw result.
    func send(_ packet: Packet?) -> AVResult {
        AVResult(avcodec_send_packet(context, packet?.pointer))
    }

    /// Receives the next frame; returns the raw result (0, EAGAIN, EOF or an error).
    func receive(into frame: Frame) -> AVResult {
        AVResult(avcodec_receive_frame(context, frame.pointer))
    }
}

/// Owns a `SwrContext` used only to change the sample format to interleaved Float32
/// (and to fold a mid-stream change of layout or rate back onto the stream's first one).
final class SampleConverter {
    private let swr: OpaquePointer
    let inputFormat: Int32
    let inputRate: Int32
    let inputChannels: Int32
    private var inputLayout: AVChannelLayout

    /// - Parameters: `layout`/`rate`: the output (fixed for the decoder's life).
    init(frame: UnsafePointer<AVFrame>, outputLayout: UnsafeMutablePointer<AVChannelLayout>, outputRate: Int32) throws(MediaError) {
        var context: OpaquePointer? = nil
        var input = AVChannelLayout()
        var inLayout = frame.pointee.ch_layout
        if inLayout.order == AV_CHANNEL_ORDER_UNSPEC {
            av_channel_layout_default(&input, inLayout.nb_channels)
        } else {
            try av_channel_layout_copy(&input, &inLayout).check("invalid channel layout")
        }
        let result = swr_alloc_set_opts2(
            &context,
            outputLayout, AV_SAMPLE_FMT_FLT, outputRate,
            &input, AVSampleFormat(frame.pointee.format), frame.pointee.sample_rate,
            0, nil
        )
        guard result >= 0, let context else {
            av_channel_layout_uninit(&input)
            throw AVResult(result).error("cannot set up sample conversion", default: .unsupportedParameters)
        }
        let initResult = swr_init(context)
        if initResult < 0 {
            var owned: OpaquePointer? = context
            swr_free(&owned)
            av_channel_layout_uninit(&input)
            throw AVResult(initResult).error("cannot set up sample conversion", default: .unsupportedParameters)
        }
        swr = context
        inputFormat = frame.pointee.format
        inputRate = frame.pointee.sample_rate
        inputChannels = frame.pointee.ch_layout.nb_channels
        inputLayout = input
    }

    deinit {
        var owned: OpaquePointer? = swr
        swr_free(&owned)
        av_channel_layout_uninit(&inputLayout)
    }

    /// True when `frame` has the format this converter was made for.
    func accepts(_ frame: UnsafePointer<AVFrame>) -> Bool {
        frame.pointee.format == inputFormat && frame.pointee.sample_rate == inputRate
            && frame.pointee.ch_layout.nb_channels == inputChannels
    }

    /// Upper bound of output frames for `inputFrames` more input frames.
    func outputCapacity(for inputFrames: Int32) -> Int32 {
        swr_get_out_samples(swr, inputFrames)
    }

    /// Converts `frame` into `output` (interleaved, `channels` wide); returns frames written.
    func convert(_ frame: UnsafePointer<AVFrame>, into output: UnsafeMutablePointer<Float>, capacity: Int32) throws(MediaError) -> Int32 {
        var out: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(output).assumingMemoryBound(to: UInt8.self)
        let input = UnsafeMutableRawPointer(mutating: frame.pointee.extended_data)?
            .assumingMemoryBound(to: UnsafePointer<UInt8>?.self)
        let written = swr_convert(swr, &out, capacity, input, frame.pointee.nb_samples)
        return try written.check("sample conversion failed", default: .internalFailure)
    }

    /// `frame` converted, as an array of `channels`-wide interleaved samples.
    func samples(from frame: UnsafePointer<AVFrame>, channels: Int) throws(MediaError) -> [Float] {
        let capacity = outputCapacity(for: frame.pointee.nb_samples)
        guard capacity > 0 else { return [] }
        var failure: MediaError?
        let samples = [Float](unsafeUninitializedCapacity: Int(capacity) * channels) { buffer, initialized in
            do {
                initialized = Int(try convert(frame, into: buffer.baseAddress!, capacity: capacity)) * channels
            } catch let error as MediaError {
                failure = error
                initialized = 0
            } catch {
                failure = MediaError(.internalFailure, "\(error)")
                initialized = 0
            }
        }
        if let failure { throw failure }
        return samples
    }

    /// Flushes what a rate change left buffered; returns frames written.
    func flush(into output: UnsafeMutablePointer<Float>, capacity: Int32) -> Int32 {
        var out: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(output).assumingMemoryBound(to: UInt8.self)
        return max(0, swr_convert(swr, &out, capacity, nil, 0))
    }
}
