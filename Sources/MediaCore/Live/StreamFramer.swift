/// The bitstream a live source sends, as its HTTP `Content-Type` names it.
public enum LiveStreamFormat: String, Sendable, Hashable, CaseIterable, Codable {
    /// MPEG-1/2/2.5 audio, layers I–III (`audio/mpeg`, `audio/mp3`).
    case mpegAudio = "mpeg"
    /// AAC in ADTS frames (`audio/aac`, `audio/aacp`).
    case adts
    /// Ogg pages (`audio/ogg`, `application/ogg`): Vorbis, Opus or FLAC, chained.
    case ogg

    /// The format a source's `Content-Type` declares, or nil when it is not one a live mount
    /// takes (parameters such as `; codecs=opus` are ignored).
    public init?(contentType: String) {
        let type = contentType.split(separator: ";").first.map { String($0.filter { $0 != " " && $0 != "\t" }).lowercased() } ?? ""
        switch type {
        case "audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg": self = .mpegAudio
        case "audio/aac", "audio/aacp", "audio/x-aac", "audio/adts": self = .adts
        case "audio/ogg", "application/ogg", "audio/opus", "audio/vorbis", "audio/x-ogg": self = .ogg
        default: return nil
        }
    }

    /// The `Content-Type` listeners get.
    public var contentType: String {
        switch self {
        case .mpegAudio: "audio/mpeg"
        case .adts: "audio/aac"
        case .ogg: "audio/ogg"
        }
    }
}

/// One unit of a live bitstream, whole: an MPEG audio frame, an ADTS frame or an Ogg page.
public struct LiveFrame: Sendable, Hashable {
    /// The unit's bytes, exactly as the source sent them.
    public var bytes: [UInt8]
    /// How much audio it carries, in seconds (0 for Ogg header pages).
    public var duration: Double
    /// The sample rate it declares (0 when the unit does not say).
    public var sampleRate: Int
    /// An Ogg page that begins a logical stream or carries its headers: a listener who joins
    /// later needs these pages of the current chain before any audio page.
    public var isStreamHeader: Bool
    /// For the pages of an Ogg stream's comment header: its `TITLE` (and `ARTIST`), when set.
    public var title: String?
}

/// Splits a live source's bytes, as they arrive in pieces of any size, into whole frames or
/// pages, and finds the next one again after corrupt or foreign bytes (counted in
/// ``skippedBytes``). A unit is only returned when the header of the unit after it is valid too
/// (or, for Ogg, when its checksum-free structure is whole), so stray sync patterns inside audio
/// data are not taken for frames.
///
/// Pure Swift, no FFmpeg: the host uses it on the event loop to pace a source in media time,
/// keep a burst of recent audio for listeners who join, and relay whole units only.
public struct StreamFramer: Sendable {
    public let format: LiveStreamFormat
    /// Bytes dropped while looking for a frame (corrupt data, or data of another format).
    public private(set) var skippedBytes = 0
    /// Whole units returned so far.
    public private(set) var frameCount = 0
    private var pending: [UInt8] = []
    private var start = 0
    /// Ogg: each logical stream's codec sample rate, by serial number (Opus: 48 kHz).
    private var oggRates: [UInt32: Int] = [:]
    private var oggGranules: [UInt32: Int64] = [:]
    /// Ogg: whether a stream's header packets are still being sent (until its first audio page).
    private var oggHeaderPages: [UInt32: Int] = [:]

    /// The most bytes held while looking for a unit's end: a unit is never larger (an Ogg page
    /// is at most 65,307 bytes; an MPEG or ADTS frame under 8 KiB).
    public static let maximumUnit = 65_307 + 1024

    public init(format: LiveStreamFormat) {
        self.format = format
    }

    /// Adds bytes and returns the units they complete.
    public mutating func push<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> [LiveFrame] {
        if start > 0, start > pending.count / 2 {
            pending.removeFirst(start)
            start = 0
        }
        pending.append(contentsOf: bytes)
        var frames: [LiveFrame] = []
        while let frame = next() { frames.append(frame) }
        return frames
    }

    /// Bytes held that do not yet make a whole unit.
    public var bufferedBytes: Int { pending.count - start }

    private mutating func next() -> LiveFrame? {
        while pending.count - start >= 4 {
            let result: Scan = switch format {
            case .mpegAudio: scanMPEG()
            case .adts: scanADTS()
            case .ogg: scanOgg()
            }
            switch result {
            case .frame(let frame):
                frameCount += 1
                return frame
            case .needMore:
                return nil
            case .retry:
                continue
            case .skip:
                start += 1
                skippedBytes += 1
            }
        }
        return nil
    }

    private enum Scan: Equatable {
        case frame(LiveFrame)
        case needMore
        case skip
        /// The position moved on by itself: scan again.
        case retry
    }

    // MARK: MPEG audio

    struct MPEGHeader: Equatable {
        var length: Int
        var samples: Int
        var sampleRate: Int
        /// Version, layer and sample rate: consecutive frames of one stream agree on these.
        var signature: UInt32
    }

    static let mpegBitrates: [[Int]] = [
        // MPEG-1 layers I, II, III
        [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
        [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
        // MPEG-2/2.5 layer I, then layers II and III
        [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ]

    static func mpegHeader(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8) -> MPEGHeader? {
        guard b0 == 0xFF, b1 & 0xE0 == 0xE0 else { return nil }
        let version = (b1 >> 3) & 3          // 0: 2.5, 2: 2, 3: 1
        let layer = (b1 >> 1) & 3            // 1: III, 2: II, 3: I
        let bitrateIndex = Int(b2 >> 4)
        let rateIndex = Int((b2 >> 2) & 3)
        guard version != 1, layer != 0, bitrateIndex != 0, bitrateIndex != 15, rateIndex != 3 else { return nil }
        let padding = Int((b2 >> 1) & 1)
        let baseRates = [44_100, 48_000, 32_000]
        let sampleRate = baseRates[rateIndex] >> (version == 3 ? 0 : version == 2 ? 1 : 2)
        let table = version == 3 ? Int(3 - layer) : (layer == 3 ? 3 : 4)
        let bitrate = mpegBitrates[table][bitrateIndex] * 1000
        let length: Int
        let samples: Int
        switch layer {
        case 3:  // layer I
            samples = 384
            length = (12 * bitrate / sampleRate + padding) * 4
        case 2:  // layer II
            samples = 1152
            length = 144 * bitrate / sampleRate + padding
        default: // layer III
            samples = version == 3 ? 1152 : 576
            length = (version == 3 ? 144 : 72) * bitrate / sampleRate + padding
        }
        guard length >= 24 else { return nil }
        let signature = UInt32(b1 & 0xFE) << 8 | UInt32(b2 & 0x0C)
        return MPEGHeader(length: length, samples: samples, sampleRate: sampleRate, signature: signature)
    }

    private func byte(_ offset: Int) -> UInt8 { pending[start + offset] }

    private mutating func scanMPEG() -> Scan {
        // An ID3v2 tag (ffmpeg's mp3 muxer starts with one): skipped whole, by its size.
        if byte(0) == 0x49, byte(1) == 0x44, byte(2) == 0x33 {
            guard pending.count - start >= 10 else { return .needMore }
            let size = (6..<10).reduce(0) { $0 << 7 | Int(byte($1) & 0x7F) } + 10 + (byte(5) & 0x10 != 0 ? 10 : 0)
            guard pending.count - start >= size else { return .needMore }
            start += size
            skippedBytes += size
            return scanAfterTag()
        }
        guard let header = Self.mpegHeader(byte(0), byte(1), byte(2), byte(3)) else { return .skip }
        let available = pending.count - start
        // Confirm with the next frame's header: same version, layer and sample rate.
        guard available >= header.length + 4 else { return .needMore }
        guard let following = Self.mpegHeader(byte(header.length), byte(header.length + 1), byte(header.length + 2), byte(header.length + 3)),
              following.signature == header.signature else { return .skip }
        return .frame(take(header.length, duration: Double(header.samples) / Double(header.sampleRate), rate: header.sampleRate))
    }

    /// After a skipped tag: look again from the new position (or ask for more bytes).
    private func scanAfterTag() -> Scan { pending.count - start >= 4 ? .retry : .needMore }

    // MARK: ADTS

    static let adtsRates = [96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000, 7_350]

    struct ADTSHeader: Equatable {
        var length: Int
        var sampleRate: Int
        var blocks: Int
        var signature: UInt32
    }

    static func adtsHeader(_ b: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> ADTSHeader? {
        guard b.0 == 0xFF, b.1 & 0xF6 == 0xF0 else { return nil }
        let rateIndex = Int((b.2 >> 2) & 0x0F)
        guard rateIndex < adtsRates.count else { return nil }
        let length = Int(b.3 & 0x03) << 11 | Int(b.4) << 3 | Int(b.5 >> 5)
        let headerLength = b.1 & 1 == 1 ? 7 : 9
        guard length > headerLength else { return nil }
        let blocks = Int(b.6 & 0x03) + 1
        let signature = UInt32(b.1) << 16 | UInt32(b.2 & 0xFC) << 8 | UInt32(b.3 & 0xC0)
        return ADTSHeader(length: length, sampleRate: adtsRates[rateIndex], blocks: blocks, signature: signature)
    }

    private func adtsHeader(at offset: Int) -> ADTSHeader? {
        Self.adtsHeader((byte(offset), byte(offset + 1), byte(offset + 2), byte(offset + 3), byte(offset + 4), byte(offset + 5), byte(offset + 6)))
    }

    private mutating func scanADTS() -> Scan {
        let available = pending.count - start
        guard available >= 7 else { return .needMore }
        guard let header = adtsHeader(at: 0) else { return .skip }
        guard available >= header.length + 7 else { return .needMore }
        guard let following = adtsHeader(at: header.length), following.signature == header.signature else { return .skip }
        return .frame(take(header.length, duration: Double(1024 * header.blocks) / Double(header.sampleRate), rate: header.sampleRate))
    }

    // MARK: Ogg

    private mutating func scanOgg() -> Scan {
        let available = pending.count - start
        guard byte(0) == 0x4F, byte(1) == 0x67, byte(2) == 0x67, byte(3) == 0x53 else { return .skip }  // "OggS"
        guard available >= 27 else { return .needMore }
        guard byte(4) == 0 else { return .skip }  // stream structure version 0
        let segments = Int(byte(26))
        guard available >= 27 + segments else { return .needMore }
        var bodyLength = 0
        for index in 0..<segments { bodyLength += Int(byte(27 + index)) }
        let length = 27 + segments + bodyLength
        guard available >= length else { return .needMore }
        let flags = byte(5)
        var granule: Int64 = 0
        for index in (0..<8).reversed() { granule = granule << 8 | Int64(byte(6 + index)) }
        var serial: UInt32 = 0
        for index in (0..<4).reversed() { serial = serial << 8 | UInt32(byte(14 + index)) }
        let body = 27 + segments
        let beginsStream = flags & 0x02 != 0
        if beginsStream {
            oggRates[serial] = oggSampleRate(bodyAt: body, length: bodyLength)
            oggGranules[serial] = 0
            oggHeaderPages[serial] = 0
        }
        // Header pages: the first page, then pages up to the first one with a granule position
        // (Vorbis, Opus and FLAC all give header pages a granule position of 0).
        let isHeader = beginsStream || (oggHeaderPages[serial] != nil && granule == 0)
        var title: String?
        if isHeader {
            oggHeaderPages[serial, default: 0] += 1
            title = oggCommentTitle(bodyAt: body, length: bodyLength)
        } else {
            oggHeaderPages[serial] = nil
        }
        var duration = 0.0
        let rate = oggRates[serial] ?? 0
        if !isHeader, granule >= 0, rate > 0 {
            let previous = oggGranules[serial] ?? granule
            if granule > previous { duration = Double(granule - previous) / Double(rate) }
            oggGranules[serial] = granule
        }
        if flags & 0x04 != 0 {  // end of stream: a new chain may follow
            oggGranules[serial] = nil
            oggHeaderPages[serial] = nil
        }
        var frame = take(length, duration: duration, rate: rate)
        frame.isStreamHeader = isHeader
        frame.title = title
        return .frame(frame)
    }

    /// The sample rate an Ogg stream's first packet declares (Opus: 48 kHz always).
    private func oggSampleRate(bodyAt offset: Int, length: Int) -> Int {
        func bytes(_ at: Int, _ count: Int) -> [UInt8]? {
            guard at + count <= length else { return nil }
            return (0..<count).map { byte(offset + at + $0) }
        }
        if bytes(0, 8) == Array("OpusHead".utf8) { return 48_000 }
        if bytes(0, 7) == [0x01] + Array("vorbis".utf8), let rate = bytes(12, 4) {
            return Int(rate[0]) | Int(rate[1]) << 8 | Int(rate[2]) << 16 | Int(rate[3]) << 24
        }
        // Ogg FLAC: 0x7F "FLAC", version, header count, "fLaC", then the STREAMINFO block
        // (4-byte block header; the rate is 20 bits at byte 10 of STREAMINFO).
        if bytes(0, 5) == [0x7F] + Array("FLAC".utf8), let info = bytes(13 + 4 + 10, 3) {
            return Int(info[0]) << 12 | Int(info[1]) << 4 | Int(info[2]) >> 4
        }
        return 0
    }

    /// The `TITLE` (with `ARTIST - ` before it when present) of a Vorbis comment packet that
    /// starts in this page (OpusTags, or Vorbis's type-3 header).
    private func oggCommentTitle(bodyAt offset: Int, length: Int) -> String? {
        let body = Array(pending[(start + offset)..<(start + offset + length)])
        var cursor: Int
        if body.starts(with: Array("OpusTags".utf8)) {
            cursor = 8
        } else if body.starts(with: [0x03] + Array("vorbis".utf8)) {
            cursor = 7
        } else {
            return nil
        }
        func readLength() -> Int? {
            guard cursor + 4 <= body.count else { return nil }
            let value = Int(body[cursor]) | Int(body[cursor + 1]) << 8 | Int(body[cursor + 2]) << 16 | Int(body[cursor + 3]) << 24
            cursor += 4
            return value
        }
        guard let vendor = readLength(), vendor >= 0, cursor + vendor <= body.count else { return nil }
        cursor += vendor
        guard let count = readLength() else { return nil }
        var fields: [String: String] = [:]
        for _ in 0..<min(count, 256) {
            guard let size = readLength(), size >= 0, cursor + size <= body.count else { break }
            let text = String(decoding: body[cursor..<(cursor + size)], as: UTF8.self)
            cursor += size
            if let equals = text.firstIndex(of: "=") {
                fields[text[..<equals].uppercased()] = String(text[text.index(after: equals)...])
            }
        }
        guard let title = fields["TITLE"], !title.isEmpty else { return nil }
        if let artist = fields["ARTIST"], !artist.isEmpty { return artist + " - " + title }
        return title
    }

    private mutating func take(_ length: Int, duration: Double, rate: Int) -> LiveFrame {
        let bytes = Array(pending[start..<(start + length)])
        start += length
        return LiveFrame(bytes: bytes, duration: duration, sampleRate: rate, isStreamHeader: false, title: nil)
    }
}
