internal import CFFmpeg

/// Decodes a live source's units, as ``StreamFramer`` cuts them from the network, to
/// interleaved Float32 at one fixed rate and channel count: the input a real-time ladder
/// encodes from. No file and no demuxer: each MPEG audio or ADTS frame is one packet for
/// libavcodec; Ogg pages are reassembled into packets here, and each new chain (Opus or Vorbis)
/// opens a new decoder from its header packets.
///
/// A change of sample rate or channels mid-stream is converted to the output format without a
/// gap; a unit that fails to decode is skipped and counted (``corruptUnits``). Not thread-safe:
/// one decoder per source, used from one task.
public final class LiveDecoder {
    public let format: LiveStreamFormat
    /// Frames per second of every block returned.
    public let outputRate: Int
    /// Channels of every block returned (1 or 2; stereo sources are folded to mono by
    /// libswresample, surround is downmixed with its default matrix).
    public let outputChannels: Int
    /// Units that could not be decoded (skipped).
    public private(set) var corruptUnits = 0
    /// Frames returned so far.
    public private(set) var framesDecoded: Int64 = 0

    private var decoder: DecoderContext?
    private var converter: SampleConverter?
    private var outputLayout = AVChannelLayout()
    private let packet: Packet
    private let frame: Frame
    private var ogg = OggPacketAssembler()
    private var oggHeaders: [[UInt8]] = []
    private var oggCodec: AVCodecID?
    private var oggHeaderCount = 0

    /// - Parameters:
    ///   - format: the source's bitstream, as its `Content-Type` declared it.
    ///   - outputRate: the rate of every block returned (8–192 kHz).
    ///   - outputChannels: 1 or 2.
    public init(format: LiveStreamFormat, outputRate: Int = 48_000, outputChannels: Int = 2) throws(MediaError) {
        guard (8_000...192_000).contains(outputRate), (1...2).contains(outputChannels) else {
            throw MediaError(.unsupportedParameters, "a live decoder outputs 8–192 kHz, mono or stereo")
        }
        self.format = format
        self.outputRate = outputRate
        self.outputChannels = outputChannels
        packet = try Packet()
        frame = try Frame()
        av_channel_layout_default(&outputLayout, Int32(outputChannels))
        switch format {
        case .mpegAudio: decoder = try Self.openDecoder(AV_CODEC_ID_MP3, extradata: nil, sampleRate: 0, channels: 0)
        case .adts: decoder = try Self.openDecoder(AV_CODEC_ID_AAC, extradata: nil, sampleRate: 0, channels: 0)
        case .ogg: decoder = nil
        }
    }

    deinit {
        av_channel_layout_uninit(&outputLayout)
    }

    /// Decodes one unit; returns the samples it completes (often none for header pages).
    public func decode(_ unit: LiveFrame) throws(MediaError) -> [Float] {
        switch format {
        case .mpegAudio, .adts:
            return try decodePacket(unit.bytes)
        case .ogg:
            var output: [Float] = []
            for (packetBytes, beginsStream) in ogg.push(page: unit.bytes) {
                if beginsStream { try startChain(firstPacket: packetBytes) ; continue }
                if oggHeaders.count < oggHeaderCount {
                    oggHeaders.append(packetBytes)
                    if oggHeaders.count == oggHeaderCount { try openOggDecoder() }
                    continue
                }
                guard decoder != nil else { continue }
                output += try decodePacket(packetBytes)
            }
            return output
        }
    }

    // MARK: Ogg chains

    private func startChain(firstPacket: [UInt8]) throws(MediaError) {
        decoder = nil
        oggHeaders = [firstPacket]
        if firstPacket.starts(with: Array("OpusHead".utf8)) {
            oggCodec = AV_CODEC_ID_OPUS
            oggHeaderCount = 2      // OpusHead, OpusTags
        } else if firstPacket.starts(with: [0x01] + Array("vorbis".utf8)) {
            oggCodec = AV_CODEC_ID_VORBIS
            oggHeaderCount = 3      // identification, comment, setup
        } else {
            oggCodec = nil
            oggHeaderCount = .max   // an Ogg codec the ladder does not decode (FLAC, Speex…): skipped
        }
    }

    private func openOggDecoder() throws(MediaError) {
        guard let codec = oggCodec else { return }
        if codec == AV_CODEC_ID_OPUS {
            let head = oggHeaders[0]
            let channels = head.count > 9 ? Int32(head[9]) : 2
            decoder = try Self.openDecoder(codec, extradata: head, sampleRate: 48_000, channels: channels)
        } else {
            // Vorbis: the three headers, Xiph-laced, as libavcodec's extradata.
            var extradata: [UInt8] = [2]
            for header in oggHeaders.prefix(2) {
                var length = header.count
                while length >= 255 { extradata.append(255); length -= 255 }
                extradata.append(UInt8(length))
            }
            for header in oggHeaders { extradata += header }
            let id = oggHeaders[0]
            let channels = id.count > 11 ? Int32(id[11]) : 2
            let rate = id.count > 15 ? Int32(id[12]) | Int32(id[13]) << 8 | Int32(id[14]) << 16 | Int32(id[15]) << 24 : 44_100
            decoder = try Self.openDecoder(codec, extradata: extradata, sampleRate: rate, channels: channels)
        }
    }

    // MARK: Decoding

    private static func openDecoder(_ id: AVCodecID, extradata: [UInt8]?, sampleRate: Int32, channels: Int32) throws(MediaError) -> DecoderContext {
        guard let codec = avcodec_find_decoder(id) else {
            throw MediaError(.unsupportedCodec, "this FFmpeg has no decoder for \(String(cString: avcodec_get_name(id)))")
        }
        return try DecoderContext(codec: codec, extradata: extradata, sampleRate: sampleRate, channels: channels)
    }

    private func decodePacket(_ bytes: [UInt8]) throws(MediaError) -> [Float] {
        guard let decoder, !bytes.isEmpty else { return [] }
        guard av_new_packet(packet.pointer, Int32(bytes.count)) >= 0 else { throw MediaError(.internalFailure, "cannot allocate a packet") }
        defer { packet.unref() }
        bytes.withUnsafeBufferPointer { source in
            packet.pointer.pointee.data.update(from: source.baseAddress!, count: source.count)
        }
        let sent = decoder.send(packet)
        if sent.isError && sent != .again {
            corruptUnits += 1
            return []
        }
        var output: [Float] = []
        while true {
            let received = decoder.receive(into: frame)
            if received == .again || received == .eof { break }
            if received.isError {
                corruptUnits += 1
                break
            }
            defer { frame.unref() }
            output += try convert(frame.pointer)
        }
        return output
    }

    private func convert(_ frame: UnsafeMutablePointer<AVFrame>) throws(MediaError) -> [Float] {
        guard frame.pointee.nb_samples > 0 else { return [] }
        var flushed: [Float] = []
        if converter == nil || !converter!.accepts(frame) {
            // A new rate or layout: keep what the previous converter still holds.
            if let previous = converter {
                let capacity = max(0, previous.outputCapacity(for: 0))
                if capacity > 0 {
                    flushed = [Float](unsafeUninitializedCapacity: Int(capacity) * outputChannels) { buffer, initialized in
                        initialized = Int(previous.flush(into: buffer.baseAddress!, capacity: capacity)) * outputChannels
                    }
                }
            }
            converter = try withUnsafeMutablePointer(to: &outputLayout) { layout throws(MediaError) in
                try SampleConverter(frame: frame, outputLayout: layout, outputRate: Int32(outputRate))
            }
        }
        let channels = outputChannels
        let samples = try converter!.samples(from: frame, channels: channels)
        framesDecoded += Int64((flushed.count + samples.count) / channels)
        return flushed + samples
    }
}

/// Ogg pages to packets (RFC 3533): lacing values of 255 continue a packet, a packet may span
/// pages. Knows one logical stream at a time (a live source's chains follow each other).
struct OggPacketAssembler {
    private var partial: [UInt8] = []

    /// The packets a page completes, each with whether it is the first packet of a new
    /// logical stream (the page has the BOS flag).
    mutating func push(page: [UInt8]) -> [(packet: [UInt8], beginsStream: Bool)] {
        guard page.count >= 27, page[0] == 0x4F, page[1] == 0x67, page[2] == 0x67, page[3] == 0x53 else { return [] }
        let flags = page[5]
        let segments = Int(page[26])
        guard page.count >= 27 + segments else { return [] }
        if flags & 0x01 == 0 { partial = [] }        // not a continuation: drop a dangling packet
        let beginsStream = flags & 0x02 != 0
        var packets: [(packet: [UInt8], beginsStream: Bool)] = []
        var offset = 27 + segments
        for index in 0..<segments {
            let lace = Int(page[27 + index])
            guard offset + lace <= page.count else { return packets }
            partial += page[offset..<(offset + lace)]
            offset += lace
            if lace < 255 {
                packets.append((partial, beginsStream && packets.isEmpty))
                partial = []
            }
        }
        return packets
    }
}
