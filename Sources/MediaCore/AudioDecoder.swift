internal import CFFmpeg

/// Options for ``AudioDecoder``.
public struct DecoderOptions: Sendable, Hashable {
    /// Channel shaping; default: surround downmixed to stereo with ITU-R BS.775 coefficients.
    public var channelMode: ChannelMode = .downmixToStereo(.bs775)
    /// Bound on the whole decode's wall time (checked on every read); nil for none.
    public var timeLimit: Duration? = nil
    /// Packets in a row that may fail to decode before the file is declared unreadable.
    public var maximumConsecutiveFailures: Int = 1_000

    public init(channelMode: ChannelMode = .downmixToStereo(.bs775), timeLimit: Duration? = nil) {
        self.channelMode = channelMode
        self.timeLimit = timeLimit
    }
}

/// What a decode found, beyond the samples.
public struct DecodeReport: Sendable, Hashable, Codable {
    /// Frames (samples per channel) delivered.
    public var framesDecoded: Int64 = 0
    /// Packets that failed to decode and were skipped.
    public var corruptPackets: Int = 0
    /// True when the input ended early: a read error before the end, or fewer frames than the
    /// container's exact count declares.
    public var truncated: Bool = false
    /// The container's exact frame count, when it has one.
    public var expectedFrames: Int64?
}

/// Streaming decoder: any file ``MediaProbe`` accepts, to interleaved Float32 ``PCMBuffer`` blocks.
///
/// Memory stays bounded whatever the file's length: one packet and one decoded frame
/// (a few thousand samples) are held at a time. Corrupt packets are skipped and counted in
/// ``report``; a truncated file yields what is decodable and sets ``DecodeReport/truncated``.
/// Encoder priming and padding that the container signals (LAME header, MP4 edit list,
/// Ogg Opus pre-skip and end granule) are trimmed, as FFmpeg does.
///
/// An `AudioDecoder` is used from one task at a time (it is not `Sendable`).
public final class AudioDecoder {
    /// The probe of the file being decoded.
    public let probe: MediaProbe
    /// Sample rate of every block.
    public let sampleRate: Int
    /// Channels of every block (after ``ChannelMode`` is applied).
    public let channelCount: Int
    /// Counters so far; final once ``read()`` has returned nil.
    public private(set) var report = DecodeReport()

    private let media: OpenedMedia
    private let decoder: DecoderContext
    private let packet: Packet
    private let frame: Frame
    private var converter: SampleConverter?
    private var outputLayout: AVChannelLayout
    private let matrix: ChannelMatrix?
    private let deadline: ContinuousClock.Instant?
    private let maximumConsecutiveFailures: Int
    private let byteBudget: Int64
    private var bytesRead: Int64 = 0
    private var consecutiveFailures = 0
    private var draining = false
    private var finished = false

    /// Opens `path` for decoding (sniff, probe, open the decoder).
    public init(path: String, options: DecoderOptions = DecoderOptions()) throws(MediaError) {
        deadline = options.timeLimit.map { .now + $0 }
        media = try OpenedMedia(path: path, deadline: deadline)
        probe = media.probe
        maximumConsecutiveFailures = max(1, options.maximumConsecutiveFailures)
        // A container cannot honestly reference more packet bytes than the file holds; a
        // looping or self-referencing sample table would otherwise decode forever.
        byteBudget = 4 * probe.fileSize + (1 << 20)
        let stream = media.input.stream(at: media.streamIndex)
        decoder = try DecoderContext(stream: stream, codec: media.codec)
        packet = try Packet()
        frame = try Frame()
        // Discard every other stream at the demuxer.
        for i in 0..<media.input.streamCount where i != Int(media.streamIndex) {
            media.input.stream(at: Int32(i)).pointee.discard = AVDISCARD_ALL
        }

        var layout = AVChannelLayout()
        let par = stream.pointee.codecpar!
        if par.pointee.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || par.pointee.ch_layout.order == AV_CHANNEL_ORDER_CUSTOM {
            av_channel_layout_default(&layout, par.pointee.ch_layout.nb_channels)
        } else {
            try av_channel_layout_copy(&layout, &par.pointee.ch_layout).check("invalid channel layout")
        }
        outputLayout = layout
        sampleRate = probe.sampleRate
        let sourceChannels = probe.channelCount
        let positions = (0..<sourceChannels).map { AudioDecoder.position(of: av_channel_layout_channel_from_index(&layout, UInt32($0))) }
        switch options.channelMode {
        case .preserve:
            matrix = nil
        case .downmixToStereo(let k):
            matrix = sourceChannels > 2 ? .stereo(from: positions, k) : nil
        case .mono(let k):
            if sourceChannels == 1 {
                matrix = nil
            } else {
                let stereo = sourceChannels == 2 ? ChannelMatrix(gains: [[1, 0], [0, 1]]) : .stereo(from: positions, k)
                matrix = ChannelMatrix(gains: [zip(stereo.gains[0], stereo.gains[1]).map { ($0 + $1) / 2 }])
            }
        }
        channelCount = matrix?.outputCount ?? sourceChannels
        report.expectedFrames = probe.durationIsExact ? probe.sampleCount : nil
    }

    deinit {
        av_channel_layout_uninit(&outputLayout)
    }

    /// The next block, or nil at the end of the stream.
    ///
    /// - Throws: ``MediaError`` with ``MediaError/Code/timedOut`` past the time limit, or
    ///   ``MediaError/Code/invalidData`` when too many packets in a row fail to decode.
    public func read() throws(MediaError) -> PCMBuffer? {
        while !finished {
            let received = decoder.receive(into: frame)
            switch received {
            case AVResult(0):
                defer { frame.unref() }
                consecutiveFailures = 0
                if let block = try convert(frame.pointer) { return block }
            case .again:
                try feed()
            case .eof:
                finished = true
                return finish()
            default:
                try failed(received)
            }
        }
        return nil
    }

    /// Decodes everything left into one buffer (for short files and tests; memory grows with length).
    public func readAll() throws(MediaError) -> PCMBuffer {
        var samples: [Float] = []
        let start = report.framesDecoded
        while let block = try read() { samples += block.samples }
        return PCMBuffer(samples: samples, channelCount: channelCount, sampleRate: sampleRate, startFrame: start)
    }

    // MARK: - Internals

    /// Sends the next packet of our stream to the decoder (or starts draining at the end).
    private func feed() throws(MediaError) {
        if draining {
            // The decoder wants input after a drain request: nothing left to give.
            finished = true
            return
        }
        while true {
            if let deadline, ContinuousClock.now > deadline {
                throw MediaError(.timedOut, "decoding went over its time limit")
            }
            let result = media.input.read(into: packet)
            if result == AVResult(0) {
                defer { packet.unref() }
                guard packet.pointer.pointee.stream_index == media.streamIndex else { continue }
                bytesRead += Int64(packet.pointer.pointee.size)
                if bytesRead > byteBudget {
                    report.truncated = true
                    throw MediaError(.invalidData, "the container references more data than the file holds")
                }
                let sent = decoder.send(packet)
                if sent.isError && sent != .again {
                    try failed(sent)
                }
                return
            }
            if result == .exit || media.input.isPastDeadline {
                throw MediaError(.timedOut, "decoding went over its time limit")
            }
            if result != .eof || media.input.ioError < 0 {
                report.truncated = true
            }
            draining = true
            _ = decoder.send(nil)
            return
        }
    }

    private func failed(_ result: AVResult) throws(MediaError) {
        if result == .exit { throw MediaError(.timedOut, "decoding went over its time limit") }
        report.corruptPackets += 1
        consecutiveFailures += 1
        if consecutiveFailures >= maximumConsecutiveFailures {
            throw result.error("\(consecutiveFailures) packets in a row failed to decode")
        }
    }

    private func finish() -> PCMBuffer? {
        if let expected = report.expectedFrames, report.framesDecoded < expected {
            report.truncated = true
        }
        if let end = media.declaredDataEnd, end > probe.fileSize {
            report.truncated = true
        }
        guard let converter else { return nil }
        // A converter that changed the rate may hold a tail.
        let capacity = Int32(max(0, converter.outputCapacity(for: 0)))
        guard capacity > 0 else { return nil }
        let channels = Int(outputLayout.nb_channels)
        var produced: Int32 = 0
        let samples = [Float](unsafeUninitializedCapacity: Int(capacity) * channels) { buffer, initialized in
            produced = converter.flush(into: buffer.baseAddress!, capacity: capacity)
            initialized = Int(produced) * channels
        }
        return produced > 0 ? emit(samples) : nil
    }

    private func convert(_ frame: UnsafeMutablePointer<AVFrame>) throws(MediaError) -> PCMBuffer? {
        guard frame.pointee.nb_samples > 0 else { return nil }
        if converter == nil || !converter!.accepts(frame) {
            converter = try withUnsafeMutablePointer(to: &outputLayout) { layout throws(MediaError) in
                try SampleConverter(frame: frame, outputLayout: layout, outputRate: Int32(sampleRate))
            }
        }
        let samples = try converter!.samples(from: frame, channels: Int(outputLayout.nb_channels))
        return samples.isEmpty ? nil : emit(samples)
    }

    private func emit(_ converted: [Float]) -> PCMBuffer {
        let samples = matrix.map { $0.apply(converted) } ?? converted
        let block = PCMBuffer(samples: samples, channelCount: channelCount, sampleRate: sampleRate, startFrame: report.framesDecoded)
        report.framesDecoded += Int64(block.frameCount)
        return block
    }

    private static func position(of channel: AVChannel) -> ChannelPosition {
        switch channel {
        case AV_CHAN_FRONT_LEFT, AV_CHAN_STEREO_LEFT: .left
        case AV_CHAN_FRONT_RIGHT, AV_CHAN_STEREO_RIGHT: .right
        case AV_CHAN_FRONT_CENTER: .center
        case AV_CHAN_LOW_FREQUENCY, AV_CHAN_LOW_FREQUENCY_2: .lfe
        case AV_CHAN_SIDE_LEFT, AV_CHAN_BACK_LEFT, AV_CHAN_WIDE_LEFT, AV_CHAN_SURROUND_DIRECT_LEFT: .surroundLeft
        case AV_CHAN_SIDE_RIGHT, AV_CHAN_BACK_RIGHT, AV_CHAN_WIDE_RIGHT, AV_CHAN_SURROUND_DIRECT_RIGHT: .surroundRight
        case AV_CHAN_BACK_CENTER: .backCenter
        default: .other
        }
    }
}
