internal import CFFmpeg

/// Owns an input `AVFormatContext` (demuxer) opened on a local file.
///
/// Only the `file` protocol is allowed and the demuxer is the one the sniffer chose,
/// so a hostile path or file cannot make FFmpeg open URLs or pick an obscure demuxer.
/// Blocking reads are bounded by an optional deadline through FFmpeg's interrupt callback.
final class FormatInput {
    let context: UnsafeMutablePointer<AVFormatContext>
    private let interrupt: UnsafeMutablePointer<VezaInterruptState>

    init(path: String, demuxer: String, deadline: ContinuousClock.Instant?) throws(MediaError) {
        _ = FFmpegLogging.quiet
        let interrupt = UnsafeMutablePointer<VezaInterruptState>.allocate(capacity: 1)
        interrupt.initialize(to: VezaInterruptState(deadline_us: 0, abort_now: 0))
        if let deadline {
            interrupt.pointee.deadline_us = FormatInput.microseconds(until: deadline)
        }
        guard var ctx = avformat_alloc_context() else {
            interrupt.deallocate()
            throw MediaError(.internalFailure, "cannot allocate a demuxer context")
        }
        veza_install_interrupt(ctx, interrupt)
        guard let format = av_find_input_format(demuxer) else {
            avformat_free_context(ctx)
            interrupt.deallocate()
            throw MediaError(.unsupportedFormat, "this FFmpeg build has no '\(demuxer)' demuxer")
        }
        var options: OpaquePointer? = nil
        av_dict_set(&options, "protocol_whitelist", "file", 0)
        av_dict_set(&options, "max_streams", "64", 0)
        defer { av_dict_free(&options) }
        var maybeContext: UnsafeMutablePointer<AVFormatContext>? = ctx
        let result = avformat_open_input(&maybeContext, "file:" + path, format, &options)
        if result < 0 {
            // avformat_open_input frees the context on failure.
            interrupt.deallocate()
            if AVResult(result) == .eof {
                throw MediaError(.invalidData, "the file ends before its headers are complete (truncated)", underlyingCode: result)
            }
            throw AVResult(result).error("cannot read the \(demuxer) headers")
        }
        ctx = maybeContext!
        self.context = ctx
        self.interrupt = interrupt
    }

    deinit {
        var ctx: UnsafeMutablePointer<AVFormatContext>? = context
        avformat_close_input(&ctx)
        interrupt.deallocate()
    }

    /// Reads stream parameters (bounded by FFmpeg's probesize/analyzeduration and the deadline).
    func findStreamInfo() throws(MediaError) {
        let result = avformat_find_stream_info(context, nil)
        if AVResult(result) == .eof {
            throw MediaError(.invalidData, "the file ends before its stream parameters (truncated)", underlyingCode: result)
        }
        try result.check("cannot read stream parameters")
    }

    /// The index and decoder of the best audio stream.
    func bestAudioStream() throws(MediaError) -> (index: Int32, codec: UnsafePointer<AVCodec>?) {
        var decoder: UnsafePointer<AVCodec>? = nil
        let index = av_find_best_stream(context, AVMEDIA_TYPE_AUDIO, -1, -1, &decoder, 0)
        if index < 0 {
            // AVERROR_DECODER_NOT_FOUND: an audio stream exists but nothing decodes it.
            if let (codec, decodable) = firstAudioCodec() {
                if decodable {
                    throw MediaError(.invalidData, "the parameters of the '\(codec)' stream could not be determined (file too short or damaged)", underlyingCode: index)
                }
                throw MediaError(.unsupportedCodec, "no decoder for the audio codec '\(codec)'", underlyingCode: index)
            }
            throw MediaError(.noAudioStream, "the file holds no audio stream", underlyingCode: index)
        }
        return (index, decoder)
    }

    private func firstAudioCodec() -> (name: String, decodable: Bool)? {
        for i in 0..<Int(context.pointee.nb_streams) {
            guard let stream = context.pointee.streams[i], let par = stream.pointee.codecpar else { continue }
            if par.pointee.codec_type == AVMEDIA_TYPE_AUDIO {
                let id = par.pointee.codec_id
                return (String(cString: avcodec_get_name(id)), id != AV_CODEC_ID_NONE && avcodec_find_decoder(id) != nil)
            }
        }
        return nil
    }

    func stream(at index: Int32) -> UnsafeMutablePointer<AVStream> {
        context.pointee.streams[Int(index)]!
    }

    var streamCount: Int { Int(context.pointee.nb_streams) }

    /// Reads the next packet into `packet`; returns the raw result (0, EOF or an error).
    func read(into packet: Packet) -> AVResult {
        AVResult(av_read_frame(context, packet.pointer))
    }

    /// True when the deadline set at open (if any) has passed.
    var isPastDeadline: Bool {
        interrupt.pointee.deadline_us > 0 && veza_now_us() > interrupt.pointee.deadline_us
    }

    /// Any I/O error the byte reader hit (distinguishes a truncated read from a clean end).
    var ioError: Int32 {
        context.pointee.pb?.pointee.error ?? 0
    }

    private static func microseconds(until deadline: ContinuousClock.Instant) -> Int64 {
        let remaining = ContinuousClock.now.duration(to: deadline)
        let (seconds, attoseconds) = remaining.components
        let micros = seconds &* 1_000_000 &+ attoseconds / 1_000_000_000_000
        // At least 1 µs in the future so that "already expired" still aborts (0 means none).
        return veza_now_us() &+ max(micros, 1)
    }
}

/// Owns an `AVPacket`.
final class Packet {
    let pointer: UnsafeMutablePointer<AVPacket>

    init() throws(MediaError) {
        guard let packet = av_packet_alloc() else {
            throw MediaError(.internalFailure, "cannot allocate a packet")
        }
        pointer = packet
    }

    deinit {
        var packet: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&packet)
    }

    func unref() { av_packet_unref(pointer) }
}

/// Owns an `AVFrame`.
final class Frame {
    let pointer: UnsafeMutablePointer<AVFrame>

    init() throws(MediaError) {
        guard let frame = av_frame_alloc() else {
            throw MediaError(.internalFailure, "cannot allocate a frame")
        }
        pointer = frame
    }

    deinit {
        var frame: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&frame)
    }

    func unref() { av_frame_unref(pointer) }
}
