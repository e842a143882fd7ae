internal import CFFmpeg

/// What a file is: its format, audio parameters, duration and tags.
///
/// Made by ``MediaProbe/probe(fileAt:timeLimit:)``; encodes to JSON with stable keys
/// (the `streamhost probe` output).
public struct MediaProbe: Sendable, Hashable, Codable {
    /// The container (`mp3`, `adts`, `mp4`, `flac`, `ogg`, `wav`, `aiff`).
    public var container: String
    /// A readable description of the family the sniffer saw (e.g. `WAVE (rf64, format 0xfffe)`).
    public var formatDescription: String
    /// FFmpeg's short codec name: `mp3`, `aac`, `flac`, `vorbis`, `opus`, `pcm_s24le`, ….
    public var codec: String
    /// Codec profile when the codec has them (`LC`, `HE-AAC`).
    public var profile: String?
    /// Samples per second per channel.
    public var sampleRate: Int
    /// Number of channels.
    public var channelCount: Int
    /// Channel layout as FFmpeg names it (`mono`, `stereo`, `5.1(side)`), or `N channels`.
    public var channelLayout: String
    /// Bits per sample of the source for lossless and PCM codecs; nil for lossy codecs.
    public var bitDepth: Int?
    /// Average bitrate in bits per second, when known.
    public var bitRate: Int?
    /// Duration in samples per channel at ``sampleRate``, when known.
    public var sampleCount: Int64?
    /// True when ``sampleCount`` comes from the container's own exact count (FLAC STREAMINFO,
    /// WAVE/AIFF data size, Ogg granule positions, MP4 sample tables, an MP3 LAME header),
    /// false when it is an estimate (e.g. from the bitrate).
    public var durationIsExact: Bool
    /// Sanitised tags.
    public var tags: Tags
    /// The embedded cover image, when there is one.
    public var coverArt: CoverArt?
    /// Size of the file in bytes.
    public var fileSize: Int64

    /// Duration in seconds (from ``sampleCount``), when known.
    public var durationSeconds: Double? {
        sampleCount.map { Double($0) / Double(sampleRate) }
    }
}

/// An embedded cover image (ID3 `APIC`, FLAC/Vorbis `PICTURE`, MP4 `covr`).
public struct CoverArt: Sendable, Hashable, Codable {
    /// `image/jpeg`, `image/png`, … from the image data itself.
    public var mimeType: String
    /// Size of the image data in bytes.
    public var byteCount: Int
    public var width: Int?
    public var height: Int?
}

extension MediaProbe {
    /// Largest sample rate accepted (Hz).
    public static let maximumSampleRate = 768_000
    /// Largest channel count accepted.
    public static let maximumChannelCount = 32

    /// Sniffs and probes a file.
    ///
    /// - Parameters:
    ///   - path: the file.
    ///   - timeLimit: bound on the time spent reading (default 30 s); a file that takes
    ///     longer gives ``MediaError/Code/timedOut``.
    /// - Throws: ``MediaError`` with ``MediaError/Code/unsupportedFormat`` for non-audio,
    ///   ``MediaError/Code/invalidData`` / ``MediaError/Code/unsupportedParameters`` for broken audio.
    public static func probe(fileAt path: String, timeLimit: Duration = .seconds(30)) throws(MediaError) -> MediaProbe {
        let opened = try OpenedMedia(path: path, deadline: .now + timeLimit)
        return opened.probe
    }
}

/// A file sniffed, opened with its demuxer, with its audio stream chosen and checked.
/// Shared by probing and decoding.
final class OpenedMedia {
    let input: FormatInput
    let family: MediaFamily
    let streamIndex: Int32
    let codec: UnsafePointer<AVCodec>
    let probe: MediaProbe
    /// Where a WAVE/AIFF data chunk says the samples end (may lie beyond a truncated file).
    let declaredDataEnd: Int64?

    init(path: String, deadline: ContinuousClock.Instant?) throws(MediaError) {
        let sniffed = try Sniffer.sniffFile(path)
        family = sniffed.family
        declaredDataEnd = sniffed.declaredDataEnd
        let fileSize = sniffed.fileSize
        input = try FormatInput(path: path, demuxer: family.demuxerName, deadline: deadline)
        try input.findStreamInfo()
        let (index, decoder) = try input.bestAudioStream()
        let stream = input.stream(at: index)
        let par = stream.pointee.codecpar!.pointee
        let codecName = String(cString: avcodec_get_name(par.codec_id))
        guard let decoder else {
            throw MediaError(.unsupportedCodec, "no decoder for the audio codec '\(codecName)'")
        }
        let sampleRate = Int(par.sample_rate)
        let channels = Int(par.ch_layout.nb_channels)
        guard sampleRate > 0, sampleRate <= MediaProbe.maximumSampleRate else {
            throw MediaError(.unsupportedParameters, "sample rate \(sampleRate) Hz is outside 1…\(MediaProbe.maximumSampleRate)")
        }
        guard channels > 0, channels <= MediaProbe.maximumChannelCount else {
            throw MediaError(.unsupportedParameters, "\(channels) channels is outside 1…\(MediaProbe.maximumChannelCount)")
        }
        streamIndex = index
        codec = decoder

        var (sampleCount, exact) = OpenedMedia.duration(input: input, stream: stream, family: family, sampleRate: sampleRate)
        if case .mp3 = family, let tag = MP3InfoTag.parse(sniffed.window), let count = tag.exactSampleCount {
            (sampleCount, exact) = (count, true)
        }
        probe = MediaProbe(
            container: family.containerName,
            formatDescription: family.description,
            codec: codecName,
            profile: av_get_profile_name(decoder, par.profile).map { String(cString: $0) },
            sampleRate: sampleRate,
            channelCount: channels,
            channelLayout: OpenedMedia.describe(layout: stream.pointee.codecpar!),
            bitDepth: OpenedMedia.bitDepth(par),
            bitRate: par.bit_rate > 0 ? Int(par.bit_rate) : (input.context.pointee.bit_rate > 0 ? Int(input.context.pointee.bit_rate) : nil),
            sampleCount: sampleCount,
            durationIsExact: exact,
            tags: OpenedMedia.tags(input: input, stream: stream, family: family),
            coverArt: OpenedMedia.coverArt(input: input),
            fileSize: fileSize
        )
    }

    static func describe(layout par: UnsafeMutablePointer<AVCodecParameters>) -> String {
        if par.pointee.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC {
            let n = par.pointee.ch_layout.nb_channels
            return n == 1 ? "mono" : (n == 2 ? "stereo" : "\(n) channels")
        }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 128) { buffer in
            withUnsafePointer(to: &par.pointee.ch_layout) { layout in
                av_channel_layout_describe(layout, buffer.baseAddress, 128) < 0
                    ? "\(par.pointee.ch_layout.nb_channels) channels" : String(cString: buffer.baseAddress!)
            }
        }
    }

    static func bitDepth(_ par: AVCodecParameters) -> Int? {
        let lossy: Set<AVCodecID> = [AV_CODEC_ID_MP3, AV_CODEC_ID_MP2, AV_CODEC_ID_MP1, AV_CODEC_ID_AAC,
                                     AV_CODEC_ID_VORBIS, AV_CODEC_ID_OPUS]
        if lossy.contains(par.codec_id) { return nil }
        if par.bits_per_raw_sample > 0 { return Int(par.bits_per_raw_sample) }
        if par.bits_per_coded_sample > 0 { return Int(par.bits_per_coded_sample) }
        let bytes = av_get_bytes_per_sample(AVSampleFormat(par.format))
        return bytes > 0 ? Int(bytes) * 8 : nil
    }

    /// Samples per channel and whether the count is the container's exact one.
    static func duration(input: FormatInput, stream: UnsafeMutablePointer<AVStream>, family: MediaFamily, sampleRate: Int) -> (Int64?, Bool) {
        let noValue = veza_av_nopts_value()
        let tb = stream.pointee.time_base
        if stream.pointee.duration != noValue, stream.pointee.duration > 0, tb.num > 0, tb.den > 0 {
            var samples = av_rescale_q(stream.pointee.duration, tb, AVRational(num: 1, den: Int32(sampleRate)))
            // Ogg Opus durations come from granule positions, which count the pre-skip too.
            if case .ogg(.opus) = family, let par = stream.pointee.codecpar, par.pointee.initial_padding > 0 {
                samples -= av_rescale(Int64(par.pointee.initial_padding), Int64(sampleRate), 48_000)
            }
            // Exact when the stream's time base counts whole samples and the container states the length.
            let countsSamples = Int64(tb.den) % Int64(sampleRate) == 0 || (tb.num == 1 && Int(tb.den) == sampleRate)
            let exact: Bool
            switch family {
            case .flac, .wav, .aiff, .ogg, .mp4: exact = countsSamples
            case .mp3, .adts: exact = false
            }
            return (samples, exact)
        }
        let total = input.context.pointee.duration
        if total != noValue, total > 0 {
            return (av_rescale(total, Int64(sampleRate), Int64(AV_TIME_BASE)), false)
        }
        return (nil, false)
    }

    static func value(_ dict: OpaquePointer?, _ keys: [String]) -> [UInt8]? {
        for key in keys {
            if let entry = av_dict_get(dict, key, nil, 0), let value = entry.pointee.value {
                let length = strlen(value)
                return Array(UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: length))
            }
        }
        return nil
    }

    static func tags(input: FormatInput, stream: UnsafeMutablePointer<AVStream>, family: MediaFamily) -> Tags {
        let dicts = [input.context.pointee.metadata, stream.pointee.metadata]
        func text(_ keys: [String], max: Int = Tags.Limits.name) -> String? {
            for dict in dicts {
                if let bytes = value(dict, keys), let cleaned = TagSanitizer.clean(bytes, maxBytes: max) { return cleaned }
            }
            return nil
        }
        var tags = Tags()
        tags.title = text(["title"])
        tags.artist = text(["artist", "author"])
        tags.album = text(["album"])
        tags.albumArtist = text(["album_artist", "albumartist", "album artist"])
        (tags.trackNumber, tags.trackTotal) = TagSanitizer.numberAndTotal(text(["track", "tracknumber"], max: 32))
        if tags.trackTotal == nil { tags.trackTotal = TagSanitizer.numberAndTotal(text(["tracktotal", "totaltracks"], max: 32)).0 }
        (tags.discNumber, tags.discTotal) = TagSanitizer.numberAndTotal(text(["disc", "discnumber"], max: 32))
        if tags.discTotal == nil { tags.discTotal = TagSanitizer.numberAndTotal(text(["disctotal", "totaldiscs"], max: 32)).0 }
        tags.date = text(["date", "year", "TDRC", "TYER", "originaldate"], max: Tags.Limits.date)
        tags.genre = text(["genre"])
        // RIFF INFO's "ISRC" chunk means "source", not the recording code: the ISRC validator drops it
        // unless it really is one.
        tags.isrc = TagSanitizer.isrc(text(["isrc", "TSRC", "----:com.apple.iTunes:ISRC"], max: 64))
        tags.comment = text(["comment", "description", "COMM"], max: Tags.Limits.comment)
        return tags
    }

    static func coverArt(input: FormatInput) -> CoverArt? {
        let attached = veza_disposition_attached_pic()
        for i in 0..<input.streamCount {
            let stream = input.stream(at: Int32(i))
            guard stream.pointee.disposition & attached != 0, stream.pointee.attached_pic.size > 0,
                  let par = stream.pointee.codecpar else { continue }
            let mime: String
            switch par.pointee.codec_id {
            case AV_CODEC_ID_MJPEG: mime = "image/jpeg"
            case AV_CODEC_ID_PNG: mime = "image/png"
            case AV_CODEC_ID_GIF: mime = "image/gif"
            case AV_CODEC_ID_BMP: mime = "image/bmp"
            case AV_CODEC_ID_WEBP: mime = "image/webp"
            case AV_CODEC_ID_TIFF: mime = "image/tiff"
            default: mime = "application/octet-stream"
            }
            return CoverArt(
                mimeType: mime,
                byteCount: Int(stream.pointee.attached_pic.size),
                width: par.pointee.width > 0 ? Int(par.pointee.width) : nil,
                height: par.pointee.height > 0 ? Int(par.pointee.height) : nil
            )
        }
        return nil
    }
}
