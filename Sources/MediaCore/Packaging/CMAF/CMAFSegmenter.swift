/// One finished CMAF segment (one CMAF fragment), ready to store as `seg-<number>.m4s`.
public struct CMAFSegment: Sendable, Hashable {
    /// Segment number, from 1; also the `mfhd` sequence number.
    public var number: Int
    /// Decode time of the first packet in timescale units (the `tfdt` value): the sum of
    /// the durations of all earlier packets, priming included.
    public var startTime: Int64
    /// Duration in timescale units: the sum of the segment's packet durations. Divided by
    /// the timescale it is the value of the segment's `EXTINF`.
    public var duration: Int
    /// Number of packets (samples) in the segment.
    public var packetCount: Int
    /// The bytes of the segment, as written by ``CMAFWriter/mediaSegment(track:sequenceNumber:baseMediaDecodeTime:packets:)``.
    public var bytes: [UInt8]
    /// Size of the segment in bytes (for byte-range playlists and bandwidth estimates).
    public var byteSize: Int { bytes.count }

    /// Creates a segment description.
    public init(number: Int, startTime: Int64, duration: Int, packetCount: Int, bytes: [UInt8]) {
        self.number = number
        self.startTime = startTime
        self.duration = duration
        self.packetCount = packetCount
        self.bytes = bytes
    }
}

/// Splits a packet stream into CMAF segments of about `targetDuration` at whole packets.
///
/// **Boundary rule.** Segment *n* (from 1) ends at the first packet boundary at or after
/// `n × targetDuration` on the media timeline (the running sum of packet durations from 0,
/// priming included). The cut positions therefore depend only on packet durations, never on
/// packet sizes or on how packets are fed: renditions of one codec group whose packets have
/// the same durations (e.g. AAC at 1024 samples per frame, at any bitrate) get identical
/// boundaries, as CMAF switching sets require (ISO/IEC 23000-19 §7.3.4: aligned fragments).
/// Errors do not accumulate: a segment that runs long is followed by a shorter one. The last
/// segment, shorter than the target, is emitted by ``finish()``. (Only when a single packet
/// is longer than `targetDuration` can a grid line be skipped; segment numbers stay
/// contiguous and the next segment ends at the first grid line after its start.)
public struct CMAFSegmenter: Sendable {
    /// The track the segments belong to.
    public let track: CMAFTrack
    /// Target segment duration in timescale units (the grid the boundaries snap to).
    public let targetDuration: Int

    private var pending: [EncodedPacket] = []
    private var pendingDuration = 0
    private var segmentStart: Int64 = 0
    private var nextNumber = 1
    /// Index k of the grid line `k × targetDuration` the pending segment ends at or after.
    private var gridLine: Int64 = 1

    /// Creates a segmenter; `targetDuration` is in timescale units and must be positive.
    public init(track: CMAFTrack, targetDuration: Int) {
        precondition(targetDuration > 0, "targetDuration must be positive")
        self.track = track
        self.targetDuration = targetDuration
    }

    /// Feeds packets; returns the segments they complete (possibly none), in order.
    public mutating func add(_ packets: [EncodedPacket]) -> [CMAFSegment] {
        var done: [CMAFSegment] = []
        for packet in packets {
            pending.append(packet)
            pendingDuration += packet.duration
            let boundary = gridLine * Int64(targetDuration)
            if segmentStart + Int64(pendingDuration) >= boundary {
                done.append(cut())
            }
        }
        return done
    }

    /// Emits the last, possibly shorter, segment (none if no packet is pending).
    public mutating func finish() -> [CMAFSegment] {
        pending.isEmpty ? [] : [cut()]
    }

    private mutating func cut() -> CMAFSegment {
        let bytes = CMAFWriter.mediaSegment(
            track: track,
            sequenceNumber: UInt32(nextNumber),
            baseMediaDecodeTime: UInt64(segmentStart),
            packets: pending
        )
        let segment = CMAFSegment(number: nextNumber, startTime: segmentStart, duration: pendingDuration, packetCount: pending.count, bytes: bytes)
        segmentStart += Int64(pendingDuration)
        nextNumber += 1
        // Only a packet longer than the target can jump past several grid lines; the next
        // segment then ends at the first grid line after its start (numbers stay contiguous).
        gridLine += 1
        while gridLine * Int64(targetDuration) <= segmentStart { gridLine += 1 }
        pending.removeAll(keepingCapacity: true)
        pendingDuration = 0
        return segment
    }
}
