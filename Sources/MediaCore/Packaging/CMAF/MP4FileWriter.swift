/// iTunes-style metadata for a progressive `.m4a` (`moov/udta/meta/ilst`).
public struct MP4Tags: Sendable, Hashable {
    /// `©nam`.
    public var title: String?
    /// `©ART`.
    public var artist: String?
    /// `©alb`.
    public var album: String?
    /// `aART`.
    public var albumArtist: String?
    /// `trkn` number (written when the number or the total is set).
    public var trackNumber: Int?
    /// `trkn` total.
    public var trackTotal: Int?
    /// `disk` number (written when the number or the total is set).
    public var discNumber: Int?
    /// `disk` total.
    public var discTotal: Int?
    /// `©day`: a year or an ISO 8601 date.
    public var date: String?
    /// `©gen`: free-text genre.
    public var genre: String?
    /// `©cmt`.
    public var comment: String?
    /// `covr`: the encoded image bytes (JPEG, or PNG when `coverIsPNG`).
    public var coverImage: [UInt8]?
    /// Whether `coverImage` is PNG (data type 14) rather than JPEG (data type 13).
    public var coverIsPNG: Bool

    /// Creates a tag set; every field is optional.
    public init(
        title: String? = nil, artist: String? = nil, album: String? = nil, albumArtist: String? = nil,
        trackNumber: Int? = nil, trackTotal: Int? = nil, discNumber: Int? = nil, discTotal: Int? = nil,
        date: String? = nil, genre: String? = nil, comment: String? = nil,
        coverImage: [UInt8]? = nil, coverIsPNG: Bool = false
    ) {
        self.title = title
        self.artist = artist
        self.album = album
        self.albumArtist = albumArtist
        self.trackNumber = trackNumber
        self.trackTotal = trackTotal
        self.discNumber = discNumber
        self.discTotal = discTotal
        self.date = date
        self.genre = genre
        self.comment = comment
        self.coverImage = coverImage
        self.coverIsPNG = coverIsPNG
    }

    /// True when no field would be written.
    var isEmpty: Bool {
        title == nil && artist == nil && album == nil && albumArtist == nil && trackNumber == nil && trackTotal == nil
            && discNumber == nil && discTotal == nil && date == nil && genre == nil && comment == nil && coverImage == nil
    }
}

/// Writes progressive (non-fragmented) MP4/M4A files with the `moov` first ("fast start"),
/// so a player can start from the first bytes of a progressive download.
public enum MP4FileWriter {
    /// Writes a complete file: `ftyp` + `moov` + `mdat`.
    ///
    /// - `ftyp`: major brand `M4A ` (compatible `M4A `, `mp42`, `isom`) for AAC; `isom`
    ///   (compatible `isom`, `iso2`, `mp41`, plus `Opus` for Opus) for Opus and FLAC, which
    ///   `M4A ` does not cover.
    /// - `moov`: `mvhd`, `trak` (`tkhd`, `edts`/`elst`, `mdia`: `mdhd`, `hdlr`, `minf`:
    ///   `smhd`, `dinf`, `stbl`: `stsd`, `stts`, `stsc`, `stsz`, `stco` or `co64`, `roll`
    ///   group for Opus), `udta`/`meta`/`ilst` when there are tags.
    /// - The edit list starts at media time `track.priming` (for Opus at least the pre-skip)
    ///   and lasts `sourceSampleCount`, so
    ///   both the encoder delay and the padding of the last frame are trimmed and the exact
    ///   source length is signalled. Movie and media timescales are equal, so the edit is
    ///   sample-exact.
    /// - Samples are grouped in chunks of about one second; `co64` is used only when a chunk
    ///   offset does not fit in 32 bits, and `mdat` uses `largesize` only past 4 GiB.
    ///
    /// - Parameters:
    ///   - track: the track (its `priming` is trimmed by the edit list).
    ///   - packets: all packets, in decode order.
    ///   - sourceSampleCount: number of valid samples (the encoder's input length) in the
    ///     track's timescale (for Opus, at 48 kHz).
    ///   - tags: metadata for `ilst`.
    /// - Returns: the bytes of the file.
    public static func file(track: CMAFTrack, packets: [EncodedPacket], sourceSampleCount: Int64, tags: MP4Tags) -> [UInt8] {
        file(track: track, packets: packets, sourceSampleCount: sourceSampleCount, tags: tags, limits: Limits())
    }

    /// Size limits of the compact 32-bit fields; tests lower them to exercise `co64` and
    /// `largesize` without writing 4 GiB.
    struct Limits {
        var chunkOffset32: UInt64 = UInt64(UInt32.max)
        var compactBoxSize: UInt64 = UInt64(UInt32.max)
    }

    static func file(track: CMAFTrack, packets: [EncodedPacket], sourceSampleCount: Int64, tags: MP4Tags, limits: Limits) -> [UInt8] {
        var out: [UInt8] = []
        write(track: track, packets: PacketsInMemory(packets), sourceSampleCount: sourceSampleCount, tags: tags, limits: limits, to: &out)
        return out
    }

    /// ``file(track:packets:sourceSampleCount:tags:)`` to any output, from packets in memory or spooled.
    static func write(track: CMAFTrack, packets source: some PacketPayloads, sourceSampleCount: Int64, tags: MP4Tags,
                      limits: Limits = Limits(), to output: inout some ByteOutput) {
        let packets = source.shapes
        let layout = ChunkLayout(packets: packets, timescale: track.timescale)
        let payloadSize = packets.reduce(0) { $0 + $1.size }

        var prototype = MP4ByteWriter()
        prototype.compactBoxSizeLimit = limits.compactBoxSize
        var head = prototype
        head.fileType(major: majorBrand(track), minor: track.codec.isAAC ? 0x200 : 0, compatible: compatibleBrands(track))

        // The moov's size does not depend on the offset values, only on stco vs co64: write
        // it once with zero offsets to learn where mdat's payload starts, then for real.
        var use64 = false
        var moov: [UInt8] = []
        for _ in 0..<2 {
            let trial = movie(track: track, packets: packets, layout: layout, sourceSampleCount: sourceSampleCount, tags: tags, chunkOffsets: nil, use64: use64, writer: prototype)
            let payloadStart = UInt64(head.count + trial.count + prototype.headerSize(forPayload: payloadSize))
            let offsets = layout.chunkByteStarts.map { payloadStart + UInt64($0) }
            if !use64, let last = offsets.last, last > limits.chunkOffset32 {
                use64 = true
                continue
            }
            moov = movie(track: track, packets: packets, layout: layout, sourceSampleCount: sourceSampleCount, tags: tags, chunkOffsets: offsets, use64: use64, writer: prototype)
            break
        }

        var out = head
        out.append(moov)
        out.boxHeader("mdat", payloadSize: payloadSize)
        output.write(out.bytes)
        source.copy(0..<packets.count, to: &output)
    }

    private static func majorBrand(_ track: CMAFTrack) -> String {
        track.codec.isAAC ? "M4A " : "isom"
    }

    private static func compatibleBrands(_ track: CMAFTrack) -> [String] {
        switch track.codec {
        case .aac: ["M4A ", "mp42", "isom"]
        // 'iso2' for the roll sample groups Opus needs (Opus-in-ISOBMFF §4.1).
        case .opus: ["isom", "iso2", "Opus", "mp41"]
        case .flac: ["isom", "iso2", "mp41"]
        }
    }

    private static func movie(track: CMAFTrack, packets: [PacketShape], layout: ChunkLayout, sourceSampleCount: Int64, tags: MP4Tags, chunkOffsets: [UInt64]?, use64: Bool, writer: MP4ByteWriter) -> [UInt8] {
        var w = writer
        let mediaDuration = UInt64(packets.reduce(0) { $0 + $1.duration })
        let presentation = UInt64(max(sourceSampleCount, 0))
        let bitrates = Bitrates(packets: packets, timescale: track.timescale)
        var described = track
        if described.averageBitrate == nil { described.averageBitrate = bitrates.average }
        w.box("moov") { w in
            w.movieHeader(timescale: track.timescale, duration: presentation)
            w.box("trak") { w in
                w.trackHeader(duration: presentation)
                w.editList(segmentDuration: presentation, mediaTime: Int64(track.editMediaTime))
                w.box("mdia") { w in
                    w.mediaHeader(timescale: track.timescale, duration: mediaDuration, language: track.language)
                    w.handler("soun", name: "SoundHandler")
                    w.box("minf") { w in
                        w.soundMediaHeaderAndDataInformation()
                        w.box("stbl") { w in
                            w.sampleDescription(described, maxBitrate: bitrates.maximum, bufferSize: bitrates.largestPacket)
                            w.timeToSample(packets)
                            w.sampleToChunk(layout)
                            w.sampleSizes(packets)
                            w.chunkOffsets(chunkOffsets ?? Array(repeating: 0, count: layout.chunkByteStarts.count), use64: use64)
                            if case .opus = track.codec, !packets.isEmpty {
                                w.rollGroupDescription(rollDistance: opusRollDistance(packetDuration: packets[0].duration, timescale: track.timescale))
                                w.rollSampleToGroup([(UInt32(packets.count), 1)])
                            }
                        }
                    }
                }
            }
            // iTunes' gapless record: readers that ignore edit lists (iTunes, some hardware)
            // trim priming and padding from it instead.
            let smpb = track.codec.isAAC
                ? MP4ByteWriter.iTunSMPB(priming: track.editMediaTime, validSamples: presentation, mediaDuration: mediaDuration)
                : nil
            if !tags.isEmpty || smpb != nil { w.userData(tags, iTunSMPB: smpb) }
        }
        return w.bytes
    }
}

extension CMAFCodec {
    var isAAC: Bool {
        if case .aac = self { true } else { false }
    }
}

/// How samples are grouped into chunks: runs of about one second of packets.
struct ChunkLayout {
    /// Samples in each chunk but the last.
    let samplesPerChunk: Int
    /// Number of chunks.
    let chunkCount: Int
    /// Samples in the last chunk.
    let lastChunkSamples: Int
    /// Byte position of each chunk within the mdat payload.
    let chunkByteStarts: [Int]

    init(packets: [PacketShape], timescale: Int) {
        let frame = max(packets.first?.duration ?? 1, 1)
        let perChunk = max(1, timescale / frame)
        samplesPerChunk = perChunk
        chunkCount = (packets.count + perChunk - 1) / perChunk
        lastChunkSamples = packets.count - (chunkCount - 1) * perChunk
        var starts: [Int] = []
        var position = 0
        for (index, packet) in packets.enumerated() {
            if index % perChunk == 0 { starts.append(position) }
            position += packet.size
        }
        chunkByteStarts = starts
    }
}

/// Bitrates for `esds`/`btrt` measured on the packets: the average over the whole track and
/// the largest over any one-second window (ISO/IEC 14496-1 §7.2.6.6 maxBitrate).
struct Bitrates {
    var average: Int?
    var maximum: Int?
    var largestPacket: Int

    init(packets: [PacketShape], timescale: Int) {
        largestPacket = packets.map(\.size).max() ?? 0
        let totalDuration = packets.reduce(0) { $0 + $1.duration }
        guard totalDuration > 0, timescale > 0 else { return }
        let totalBytes = packets.reduce(0) { $0 + $1.size }
        average = Int(Int64(totalBytes) * 8 * Int64(timescale) / Int64(totalDuration))
        // Sliding window of packets spanning at most one second.
        var windowBytes = 0
        var windowDuration = 0
        var start = 0
        var peak = 0
        for (index, packet) in packets.enumerated() {
            windowBytes += packet.size
            windowDuration += packet.duration
            while windowDuration > timescale, start < index {
                windowBytes -= packets[start].size
                windowDuration -= packets[start].duration
                start += 1
            }
            peak = max(peak, windowBytes)
        }
        // Over a track shorter than a second the peak window is the whole track.
        maximum = totalDuration < timescale ? average : peak * 8
    }
}

extension MP4ByteWriter {
    /// `stts` (§8.6.1.2), run-length coded.
    mutating func timeToSample(_ packets: [PacketShape]) {
        var runs: [(count: UInt32, delta: UInt32)] = []
        for packet in packets {
            if let last = runs.last, last.delta == UInt32(packet.duration) {
                runs[runs.count - 1].count += 1
            } else {
                runs.append((1, UInt32(packet.duration)))
            }
        }
        fullBox("stts") { w in
            w.u32(UInt32(runs.count))
            for run in runs {
                w.u32(run.count)
                w.u32(run.delta)
            }
        }
    }

    /// `stsc` (§8.7.4): one run for the full chunks, one for a shorter last chunk.
    mutating func sampleToChunk(_ layout: ChunkLayout) {
        var runs: [(firstChunk: Int, samples: Int)] = []
        if layout.chunkCount > 0 {
            runs.append((1, layout.chunkCount == 1 ? layout.lastChunkSamples : layout.samplesPerChunk))
            if layout.chunkCount > 1 && layout.lastChunkSamples != layout.samplesPerChunk {
                runs.append((layout.chunkCount, layout.lastChunkSamples))
            }
        }
        fullBox("stsc") { w in
            w.u32(UInt32(runs.count))
            for run in runs {
                w.u32(UInt32(run.firstChunk))
                w.u32(UInt32(run.samples))
                w.u32(1)                          // sample_description_index
            }
        }
    }

    /// `stsz` (§8.7.3): a constant size when all packets agree, else a table.
    mutating func sampleSizes(_ packets: [PacketShape]) {
        let first = packets.first?.size ?? 0
        let constant = !packets.isEmpty && packets.allSatisfy { $0.size == first }
        fullBox("stsz") { w in
            w.u32(constant ? UInt32(first) : 0)
            w.u32(UInt32(packets.count))
            if !constant {
                for packet in packets { w.u32(UInt32(packet.size)) }
            }
        }
    }

    /// `stco`, or `co64` when an offset needs 64 bits (§8.7.5).
    mutating func chunkOffsets(_ offsets: [UInt64], use64: Bool) {
        fullBox(use64 ? "co64" : "stco") { w in
            w.u32(UInt32(offsets.count))
            for offset in offsets {
                if use64 { w.u64(offset) } else { w.u32(UInt32(truncatingIfNeeded: offset)) }
            }
        }
    }

    /// `udta` → `meta` (handler `mdir`/`appl`) → `ilst` with one item per set tag; each item
    /// holds a `data` box: type indicator (1 UTF-8, 0 implicit, 13 JPEG, 14 PNG), locale 0.
    mutating func userData(_ tags: MP4Tags, iTunSMPB: String? = nil) {
        box("udta") { w in
            w.fullBox("meta") { w in
                w.handler("mdir", name: "", reserved: [0x6170_706C, 0, 0])   // 'appl'
                w.box("ilst") { w in
                    w.textItem("©nam", tags.title)
                    w.textItem("©ART", tags.artist)
                    w.textItem("aART", tags.albumArtist)
                    w.textItem("©alb", tags.album)
                    if tags.trackNumber != nil || tags.trackTotal != nil {
                        w.dataItem("trkn", type: 0, payload: MP4ByteWriter.numberPair(tags.trackNumber, tags.trackTotal, trailing: true))
                    }
                    if tags.discNumber != nil || tags.discTotal != nil {
                        w.dataItem("disk", type: 0, payload: MP4ByteWriter.numberPair(tags.discNumber, tags.discTotal, trailing: false))
                    }
                    w.textItem("©day", tags.date)
                    w.textItem("©gen", tags.genre)
                    w.textItem("©cmt", tags.comment)
                    if let cover = tags.coverImage {
                        w.dataItem("covr", type: tags.coverIsPNG ? 14 : 13, payload: cover)
                    }
                    if let iTunSMPB { w.freeformItem(mean: "com.apple.iTunes", name: "iTunSMPB", value: iTunSMPB) }
                }
            }
        }
    }

    /// The `iTunSMPB` value: twelve space-prefixed hex fields, of which the second is the
    /// priming, the third the padding and the fourth (64-bit) the valid sample count.
    static func iTunSMPB(priming: Int, validSamples: UInt64, mediaDuration: UInt64) -> String {
        let padding = mediaDuration > UInt64(priming) + validSamples ? mediaDuration - UInt64(priming) - validSamples : 0
        func hex(_ value: UInt64, _ width: Int) -> String {
            let digits = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        var fields = ["00000000", hex(UInt64(max(priming, 0)), 8), hex(padding, 8), hex(validSamples, 16)]
        fields += Array(repeating: "00000000", count: 8)
        return fields.map { " " + $0 }.joined()
    }

    /// A freeform `----` item (`mean`, `name`, UTF-8 `data`).
    private mutating func freeformItem(mean: String, name: String, value: String) {
        box("----") { w in
            w.fullBox("mean") { w in w.append(Array(mean.utf8)) }
            w.fullBox("name") { w in w.append(Array(name.utf8)) }
            w.box("data") { w in
                w.u32(1)
                w.u32(0)
                w.append(Array(value.utf8))
            }
        }
    }

    private mutating func textItem(_ key: String, _ value: String?) {
        guard let value else { return }
        dataItem(key, type: 1, payload: Array(value.utf8))
    }

    private mutating func dataItem(_ key: String, type: UInt32, payload: [UInt8]) {
        box(key) { w in
            w.box("data") { w in
                w.u32(type)                       // version 0 + well-known type
                w.u32(0)                          // locale
                w.append(payload)
            }
        }
    }

    /// `trkn` payload: 2 reserved bytes, number, total, and (trkn only) 2 more reserved bytes.
    private static func numberPair(_ number: Int?, _ total: Int?, trailing: Bool) -> [UInt8] {
        var w = MP4ByteWriter()
        w.u16(0)
        w.u16(UInt16(clamping: number ?? 0))
        w.u16(UInt16(clamping: total ?? 0))
        if trailing { w.u16(0) }
        return w.bytes
    }
}
