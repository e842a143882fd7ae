import DequeModule
import Foundation
import MediaCore
import StreamKit
import Synchronization

/// A live show's ladder as LL-HLS (RFC 8216bis) and live DASH: each rung's CMAF parts over a DVR
/// window, segments of ``partsPerSegment`` parts, and the requests waiting for a part that is
/// not encoded yet (blocking playlist reload, `_HLS_msn` / `_HLS_part`; a DASH segment sent in
/// chunks as its parts are encoded).
///
/// Part `p` of media sequence number `m` is the stream's part `m × partsPerSegment + p`;
/// every rung has the same part boundaries (``LiveLadder`` aligns them), so a player that
/// switches rungs lands on the same instant.
final class LivePresentation: Sendable {
    struct Rung: Sendable {
        var id: String
        var codecs: String
        var bandwidth: Int
        /// The encoder's bit rate.
        var nominalBitrate: Int
        var codec: AudioCodec
        var sampleRate: Int
        var channelCount: Int
        var initSegment: [UInt8]
        /// The switching set: rungs of one codec family share a multivariant playlist.
        var family: String
    }

    /// Parts in a segment: segments of about 3.84 s whatever the part duration.
    let partsPerSegment: Int

    let rungs: [Rung]
    /// Part duration in samples at `timescale`.
    let partFrames: Int
    let timescale: Int
    /// Parts kept per rung (the DVR window).
    let windowParts: Int
    /// When the show started (its source connected): the timeline's anchor until the first
    /// part is encoded (see ``timelineStart``).
    let startedAt: Date

    private struct Waiter {
        var rung: String
        var index: Int
        var continuation: CheckedContinuation<Bool, Never>
    }

    /// What a rendered media playlist depends on: every rung's last part (rendition reports
    /// name the others), whether the show ended, and the request's form.
    private struct RenderKey: Hashable {
        var rung: String
        var lastParts: [Int]
        var ended: Bool
        var deltaUpdate: Bool
        var token: String?
    }

    private struct State {
        var parts: [String: Deque<LivePart>] = [:]
        var ended = false
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        /// Media playlists as last rendered: a blocking reload wakes every listener of a rung
        /// at once, and all of them get the same text, rendered once.
        var rendered: [RenderKey: String] = [:]
        /// The wall-clock instant of media time 0, set when the first part is encoded.
        var timelineStart: Date?
    }

    /// The wall-clock instant of media time 0 (EXT-X-PROGRAM-DATE-TIME, the MPD's
    /// `availabilityStartTime`): the moment the first part was encoded, less its media end
    /// time. Not the moment the source connected: a source's audio starts some seconds after
    /// it connects (its own buffering, our decoder's probe, the encoders' priming), and a DASH
    /// player computes the live edge from `availabilityStartTime` and its clock. Anchored at
    /// the connection, the timeline ran that much ahead of the encoder, and a player asked for
    /// segments that did not exist yet (GStreamer's dashdemux, waiting on them, played nothing
    /// at all on a loaded machine).
    var timelineStart: Date { state.withLock { $0.timelineStart } ?? startedAt }

    private let state = Mutex(State())

    init(ladder: LiveLadder, windowSeconds: Double, startedAt: Date) {
        // MP3 rungs are ICY streams only.
        rungs = ladder.rungs.filter { ladder.isCMAF($0.id) }.map { rung in
            let bitrate: Int = switch rung.settings {
            case .aac(let bitrate), .opus(let bitrate): bitrate.bitsPerSecond
            default: 128_000
            }
            let codec = AudioCodec(codecsString: ladder.codecStrings[rung.id] ?? "")
            return Rung(id: rung.id, codecs: ladder.codecStrings[rung.id] ?? "", bandwidth: bitrate * 11 / 10 + 8_000, nominalBitrate: bitrate,
                        codec: codec, sampleRate: ladder.sampleRate, channelCount: ladder.channelCount,
                        initSegment: ladder.initSegments[rung.id] ?? [], family: rung.settings.codec.rawValue)
        }
        partFrames = ladder.partFrames
        timescale = ladder.sampleRate
        partsPerSegment = max(1, Int((3.84 / ladder.partSeconds).rounded()))
        windowParts = max(partsPerSegment * 3, Int(windowSeconds / ladder.partSeconds))
        self.startedAt = startedAt
    }

    var partSeconds: Double { Double(partFrames) / Double(timescale) }
    var families: [String] { rungs.map(\.family).reduce(into: []) { if !$0.contains($1) { $0.append($1) } } }

    func rung(_ id: String) -> Rung? { rungs.first { $0.id == id } }

    // MARK: Parts in

    func append(_ parts: [LivePart]) {
        guard !parts.isEmpty else { return }
        let now = Date()
        let partSeconds = self.partSeconds
        let woken: [CheckedContinuation<Bool, Never>] = state.withLock { state in
            if state.timelineStart == nil, let first = parts.first {
                state.timelineStart = now.addingTimeInterval(-Double(first.index + 1) * partSeconds)
            }
            for var part in parts where rungs.contains(where: { $0.id == part.rung }) {
                part.packets = []
                state.parts[part.rung, default: []].append(part)
                while (state.parts[part.rung]?.count ?? 0) > windowParts { state.parts[part.rung]?.removeFirst() }
            }
            var ready: [CheckedContinuation<Bool, Never>] = []
            for (id, waiter) in state.waiters where (state.parts[waiter.rung]?.last?.index ?? -1) >= waiter.index {
                ready.append(waiter.continuation)
                state.waiters[id] = nil
            }
            return ready
        }
        for continuation in woken { continuation.resume(returning: true) }
    }

    /// The source is gone: playlists get `EXT-X-ENDLIST`, waiting requests are answered.
    func end() {
        let woken: [CheckedContinuation<Bool, Never>] = state.withLock { state in
            state.ended = true
            let all = state.waiters.values.map(\.continuation)
            state.waiters = [:]
            return all
        }
        for continuation in woken { continuation.resume(returning: true) }
    }

    var isEnded: Bool { state.withLock { $0.ended } }

    // MARK: Blocking reload

    /// Waits until part `index` of `rung` exists (or the stream ends): false after `timeout`.
    func waitFor(rung: String, index: Int, timeout: Duration) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let id: UInt64? = state.withLock { state in
                if state.ended || (state.parts[rung]?.last?.index ?? -1) >= index { return nil }
                let id = state.nextWaiter
                state.nextWaiter += 1
                state.waiters[id] = Waiter(rung: rung, index: index, continuation: continuation)
                return id
            }
            guard let id else {
                continuation.resume(returning: true)
                return
            }
            Task {
                try? await Task.sleep(for: timeout)
                let expired = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                expired?.continuation.resume(returning: false)
            }
        }
    }

    /// The index of the next part `rung` will have.
    func nextPartIndex(_ rung: String) -> Int {
        state.withLock { ($0.parts[rung]?.last?.index ?? -1) + 1 }
    }

    // MARK: Objects out

    func part(rung: String, index: Int) -> LivePart? {
        state.withLock { state in
            guard let parts = state.parts[rung], let first = parts.first, index >= first.index, index - first.index < parts.count else { return nil }
            return parts[index - first.index]
        }
    }

    /// A whole segment: its parts, concatenated (nil until its last part exists).
    func segment(rung: String, sequence: Int) -> [UInt8]? {
        let first = sequence * partsPerSegment
        var bytes: [UInt8] = []
        for index in first..<(first + partsPerSegment) {
            guard let part = part(rung: rung, index: index) else { return nil }
            bytes += part.bytes
        }
        return bytes
    }

    // MARK: Playlists

    /// The media playlist of `rung` as it stands, once its first segment is complete (the
    /// routes wait for that: the map comes with the first segment) (relative URIs: `init.mp4`, `seg-M.m4s`,
    /// `part-M.P.m4s`; other rungs of the set reported as `../{rung}/index.m3u8`).
    ///
    /// - Parameters:
    ///   - deltaUpdate: a Playlist Delta Update (`_HLS_skip=YES`): segments more than
    ///     `CAN-SKIP-UNTIL` (six target durations) before the end are replaced by `EXT-X-SKIP`.
    ///   - token: a signed-URL token carried into every URI (nil: none).
    func mediaPlaylist(rung id: String, deltaUpdate: Bool = false, token: String? = nil) -> String? {
        guard rung(id) != nil else { return nil }
        let (parts, key, cached) = state.withLock { state in
            let key = RenderKey(rung: id, lastParts: rungs.map { state.parts[$0.id]?.last?.index ?? -1 }, ended: state.ended,
                                deltaUpdate: deltaUpdate, token: token)
            return (state.parts[id] ?? [], key, state.rendered[key])
        }
        if let cached { return cached }
        let ended = key.ended
        let per = partsPerSegment
        let partTime = MediaTime(value: Int64(partFrames), timescale: Int32(timescale))
        let segmentTime = MediaTime(value: Int64(partFrames * per), timescale: Int32(timescale))
        let lastIndex = parts.last?.index ?? -1
        let firstIndex = parts.first?.index ?? 0
        let firstSegment = (firstIndex + per - 1) / per
        let completeSegments = (lastIndex + 1) / per
        var segments: [MediaSegment] = []
        if completeSegments > firstSegment {
            let anchor = timelineStart
            for sequence in firstSegment..<completeSegments {
                let start = anchor.addingTimeInterval(Double(sequence * per) * partSeconds)
                var segment = MediaSegment(uri: LiveObjectName.segment(sequence: sequence).fileName, duration: segmentTime,
                                           programDateTime: Timestamp(millisecondsSince1970: Int64((start.timeIntervalSince1970 * 1000).rounded())))
                if sequence == firstSegment { segment.map = MediaInitialization(uri: LiveObjectName.initialization.fileName) }
                // Parts are listed for the last three segments (RFC 8216bis §4.4.4.9).
                if sequence >= completeSegments - 3 {
                    segment.parts = (0..<per).map { PartialSegment(uri: LiveObjectName.part(sequence: sequence, index: $0).fileName, duration: partTime, independent: true) }
                }
                segments.append(segment)
            }
        }
        let trailingStart = max(completeSegments * per, firstIndex)
        let trailing = trailingStart <= lastIndex
            ? (trailingStart...lastIndex).map { PartialSegment(uri: LiveObjectName.part(absolute: $0, partsPerSegment: per).fileName, duration: partTime, independent: true) }
            : []
        let next = lastIndex + 1
        let family = rung(id)?.family
        let playlist = MediaPlaylist(
            targetDuration: Int64(ceil(segmentTime.seconds)), mediaSequence: Int64(firstSegment),
            independentSegments: true, partTarget: partTime,
            serverControl: ServerControl(canSkipUntil: MediaTime(value: 6 * Int64(ceil(segmentTime.seconds)), timescale: 1),
                                         partHoldBack: MediaTime(value: Int64(partFrames * 3), timescale: Int32(timescale)), canBlockReload: true),
            segments: segments, trailingParts: trailing,
            preloadHints: ended ? [] : [PreloadHint(type: .part, uri: LiveObjectName.part(absolute: next, partsPerSegment: per).fileName)],
            renditionReports: zip(rungs, key.lastParts).filter { $0.0.id != id && $0.0.family == family }.map { other, last in
                return RenditionReport(uri: "../\(other.id)/" + LiveObjectName.playlist.fileName, lastMediaSequenceNumber: Int64(max(0, last) / per), lastPart: max(0, last) % per)
            },
            endList: ended)
        var delivered = deltaUpdate ? playlist.deltaUpdate() : playlist
        if let token { delivered = delivered.addingQueryItem(name: HostAuth.tokenParameter, value: token) }
        let text = delivered.render()
        state.withLock { state in
            // The newest texts only: those of older states are not asked for again.
            if state.rendered.count >= 16 { state.rendered.removeAll(keepingCapacity: true) }
            state.rendered[key] = text
        }
        return text
    }

    // MARK: DASH

    /// The live MPD: one adaptation set per codec family, segments of ``partsPerSegment`` parts
    /// addressed by number (`{rung}/seg-$Number$.m4s`, the same objects LL-HLS lists), the DVR
    /// window as `@timeShiftBufferDepth`, and low-latency chunked availability: a segment may be
    /// requested once its first part exists (its response then follows the encoder part by
    /// part). Nil until every rung has a whole segment.
    func mpd(now: Date, token: String? = nil) -> String? {
        let per = partsPerSegment
        let (windows, ended) = state.withLock { state in
            (state.parts.mapValues { ($0.first?.index ?? 0, $0.last?.index ?? -1) }, state.ended)
        }
        let segmentFrames = Int64(partFrames * per)
        func signed(_ template: String) -> String {
            token.map { QueryRewriter.adding(name: HostAuth.tokenParameter, value: $0, to: template) } ?? template
        }
        var renditions: [Rendition] = []
        for rung in rungs {
            guard let (first, last) = windows[rung.id] else { return nil }
            let firstSegment = (first + per - 1) / per
            let completeSegments = (last + 1) / per
            guard completeSegments > firstSegment else { return nil }
            // While the show goes on, the segment being encoded is listed too: with the
            // chunked availability declared it is available once its first part is (and a
            // request for it is held until then); a client that reads to the end of the
            // timeline then finds the next segment instead of falling off the live edge.
            let listed = ended ? completeSegments : completeSegments + 1
            let byteSize = Int64(rung.nominalBitrate) * segmentFrames / Int64(timescale) / 8
            let segments = (firstSegment..<listed).map {
                SegmentInfo(number: Int64($0), start: Int64($0) * segmentFrames, duration: segmentFrames, byteSize: byteSize)
            }
            renditions.append(Rendition(id: rung.id, codec: AudioCodec(codecsString: rung.codecs), codecGroup: rung.family,
                                        sampleRate: rung.sampleRate, channelCount: rung.channelCount, timescale: Int32(timescale),
                                        addressing: .template(initialization: signed("$RepresentationID$/init.mp4"), media: signed("$RepresentationID$/seg-$Number$.m4s")),
                                        segments: segments))
        }
        func stamp(_ date: Date) -> Timestamp { Timestamp(millisecondsSince1970: Int64((date.timeIntervalSince1970 * 1000).rounded())) }
        let partTime = MediaTime(value: Int64(partFrames), timescale: Int32(timescale))
        let segmentTime = MediaTime(value: segmentFrames, timescale: Int32(timescale))
        let timing = MPD.DynamicTiming(
            availabilityStartTime: stamp(timelineStart), publishTime: stamp(now), minimumUpdatePeriod: partTime,
            timeShiftBufferDepth: MediaTime(value: Int64(windowParts * partFrames), timescale: Int32(timescale)),
            suggestedPresentationDelay: MediaTime(value: Int64(partFrames * 3), timescale: Int32(timescale)))
        // A show that has ended is no longer chunked: every listed segment is whole.
        let lowLatency = ended ? nil : (availabilityTimeOffset: segmentTime - partTime, targetLatency: MediaTime(value: Int64(partFrames * 3), timescale: Int32(timescale)))
        guard var mpd = try? MPD.live(renditions: renditions, timing: timing, utcTiming: .directTiming(stamp(now)), lowLatency: lowLatency) else { return nil }
        // The now-playing title rides in the segments as ID3 in `emsg` (``TimedMetadata``).
        for p in mpd.periods.indices {
            for a in mpd.periods[p].adaptationSets.indices { mpd.periods[p].adaptationSets[a].inbandEventStreams = [.id3TimedMetadata] }
        }
        return mpd.render()
    }

    /// The parts of segment `sequence` of `rung`, each as soon as it is encoded (for a segment
    /// requested before it is complete), or nil when the segment is outside the window or more
    /// than ``maximumSegmentsAhead`` segments ahead of the encoder. A DASH player computes
    /// segment numbers from its clock: one whose clock runs a little ahead is held until the
    /// segment exists rather than sent a 404 that it would skip.
    func segmentParts(rung: String, sequence: Int) -> AsyncStream<[UInt8]>? {
        let per = partsPerSegment
        let first = sequence * per
        let next = nextPartIndex(rung)
        guard first < next + Self.maximumSegmentsAhead * per, part(rung: rung, index: first) != nil || first >= next else { return nil }
        let partSeconds = self.partSeconds
        return AsyncStream { continuation in
            let task = Task {
                for index in first..<(first + per) {
                    if part(rung: rung, index: index) == nil {
                        // Its time to be encoded, and two seconds for a source's jitter (an
                        // Ogg page brings about a second of audio at once).
                        let wait = Double(max(0, index - nextPartIndex(rung) + 1)) * partSeconds + 2
                        _ = await waitFor(rung: rung, index: index, timeout: .seconds(wait))
                    }
                    guard let part = part(rung: rung, index: index) else { break }
                    continuation.yield(part.bytes)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// How far ahead of the encoder a segment request is held rather than refused.
    static let maximumSegmentsAhead = 3

    /// The multivariant playlist of one codec family (`aac`, `opus`).
    func multivariantPlaylist(family: String, token: String? = nil) -> String? {
        let members = rungs.filter { $0.family == family }
        guard !members.isEmpty else { return nil }
        let playlist = MasterPlaylist(independentSegments: true, variants: members.map {
            VariantStream(uri: "\($0.id)/index.m3u8", bandwidth: Bitrate(bitsPerSecond: Int64($0.bandwidth)), codecs: [$0.codecs])
        })
        return (token.map { playlist.addingQueryItem(name: HostAuth.tokenParameter, value: $0) } ?? playlist).render()
    }
}
