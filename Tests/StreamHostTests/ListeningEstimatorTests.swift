import Foundation
@testable import MediaCore
@testable import StreamHost
import Testing

/// The listening estimator against a simulated real-time player whose truth is known, and the
/// HyperLogLog sketch against exact counts.
@Suite struct ListeningEstimatorTests {
    /// A track of `count` segments of `duration` seconds (one AAC rendition, 48 kHz timescale).
    static func timing(count: Int = 30, duration: Double = 6) -> TrackTiming {
        let segments = (1...count).map { number in
            PackagedSegment(number: number, start: Int64(Double(number - 1) * duration * 48000), duration: Int(duration * 48000),
                            byteSize: 96000, path: "cmaf/aac-128/seg-\(number).m4s")
        }
        let rendition = PublishedRendition(
            id: "aac-128", codec: "aac", codecs: "mp4a.40.2", sampleRate: 48000, channelCount: 2, timescale: 48000, bitsPerSample: 16,
            targetBitrate: 128_000, initSegment: "cmaf/aac-128/init.mp4", initSegmentByteSize: 700, segments: segments,
            progressive: "progressive/aac-128.m4a", progressiveByteSize: 2_880_000, progressiveMimeType: "audio/mp4")
        return TrackTiming(track: "t", version: 1, durationSeconds: Double(count) * duration, renditions: [rendition])
    }

    /// A player `buffer` segments ahead, listening from 0 to `stop` (media seconds), pausing
    /// `pause` seconds at `pauseAt`; returns the session as the server saw it.
    static func play(stop: Double, buffer: Int = 3, pauseAt: Double? = nil, pause: Double = 0, jitter: Double = 0.05,
                     timing: TrackTiming = timing()) -> ListeningSession {
        var session = ListeningSession(id: "s", track: "t", subjectTag: nil, timing: timing, clientPrefix: nil, clientType: "browser", at: 1000)
        let spans = timing.segments["aac-128"]!
        let count = spans.count - 1
        session.observe(.playlist, bytes: 100, at: 1000)
        session.observe(.initSegment(rendition: "aac-128"), bytes: 700, at: 1000)
        var fetched = 0
        var clock = 1000.0
        while fetched < min(buffer, count) {
            fetched += 1
            clock += 0.01
            session.observe(.segment(rendition: "aac-128", number: fetched), bytes: 96000, at: clock)
        }
        let start = clock
        // Each later segment k is fetched when the position reaches the start of segment k - buffer + 1.
        while fetched < count {
            let position = spans[fetched - buffer + 2].start
            guard position < stop else { break }
            let wall = start + position + (pauseAt.map { position > $0 ? pause : 0 } ?? 0) + jitter * Double(fetched % 3)
            fetched += 1
            session.observe(.segment(rendition: "aac-128", number: fetched), bytes: 96000, at: wall)
        }
        return session
    }

    @Test func withoutBeaconsTheEstimateIsWithinHalfASegment() {
        // Stops before the last segment is fetched (at 162 s here; after it, a player that
        // stops early cannot be told from one that plays its buffer out).
        for stop in stride(from: 1.0, through: 160, by: 3.7) {
            let session = Self.play(stop: stop)
            // Half a segment, plus the simulated request jitter (0.1 s).
            #expect(abs(session.serverListenedSeconds - stop) <= 3 + 0.15, "stop \(stop): \(session.serverListenedSeconds)")
        }
        // A pause adds no listening (at most the jitter allowance, 1 s for 6 s segments).
        let paused = Self.play(stop: 100, pauseAt: 40, pause: 60)
        #expect(abs(paused.serverListenedSeconds - 100) <= 3 + 1 + 0.15, "\(paused.serverListenedSeconds)")
        // Played to the end: the whole track.
        let complete = Self.play(stop: 1000)
        #expect(complete.reachedEnd)
        #expect(complete.serverListenedSeconds == 180)
        // Two-second segments: within a second.
        let short = Self.timing(count: 90, duration: 2)
        for stop in [5.0, 31.3, 77.7] {
            let estimate = Self.play(stop: stop, timing: short).serverListenedSeconds
            #expect(abs(estimate - stop) <= 1 + 0.15, "stop \(stop): \(estimate)")
        }
    }

    @Test func concurrentListenersAreUnbiased() {
        // Sessions stopping at every point of the track, some pausing for a minute: at each
        // instant (evaluated once the delay has passed), a session counts as playing when it
        // was, except within half a segment (and the jitter) of a start, stop, pause or resume,
        // and those errors cancel out over the sessions.
        let timing = Self.timing()
        var estimated = 0
        var truth = 0
        for (index, stop) in stride(from: 1.0, through: 155, by: 1.3).enumerated() {
            let pauseAt: Double? = index % 3 == 0 ? stop / 2 : nil
            let session = Self.play(stop: stop, pauseAt: pauseAt, pause: 60, timing: timing)
            let start = 1000 + 0.01 * 3
            let edges = [start, start + stop + (pauseAt == nil ? 0 : 60)] + (pauseAt.map { [start + $0, start + $0 + 60] } ?? [])
            for step in 0..<600 {
                let instant = 999 + Double(step) * 0.5
                let pausedNow = pauseAt.map { instant > start + $0 && instant < start + $0 + 60 } ?? false
                let playing = instant >= start && instant <= edges[1] && !pausedNow
                let counted = session.wasListening(at: instant)
                if counted != playing {
                    let distance = edges.map { abs($0 - instant) }.min()!
                    #expect(distance <= 3 + 1 + 0.2, "stop \(stop), pause \(pauseAt ?? -1): \(instant - start) s counted \(counted)")
                }
                estimated += counted ? 1 : 0
                truth += playing ? 1 : 0
            }
        }
        #expect(abs(Double(estimated - truth)) / Double(truth) < 0.01, "\(estimated) against \(truth)")
        #expect(ListeningSession.evaluationDelay(longestSegment: 6) == 8)
    }

    @Test func outcomesAndPlays() {
        let tracker = ListeningTracker(configuration: AnalyticsConfiguration(), timing: { _ in Self.timing() })
        #expect(tracker.finish(Self.play(stop: 1000), now: 2000).outcome == .completed)
        let skipped = tracker.finish(Self.play(stop: 12), now: 2000)
        #expect(skipped.outcome == .skipped && !skipped.isPlay)
        let abandoned = tracker.finish(Self.play(stop: 95), now: 2000)
        #expect(abandoned.outcome == .abandoned && abandoned.isPlay)
        var bot = ListeningSession(id: "b", track: "t", subjectTag: nil, timing: Self.timing(), clientPrefix: nil, clientType: "other", at: 0)
        bot.observe(.playlist, bytes: 100, at: 0)
        #expect(tracker.finish(bot, now: 10).outcome == .bot)
        var crawler = ListeningSession(id: "c", track: "t", subjectTag: nil, timing: Self.timing(), clientPrefix: nil,
                                   clientType: ListeningTracker.clientType("Googlebot/2.1"), at: 0)
        crawler.observe(.segment(rendition: "aac-128", number: 1), bytes: 1, at: 0)
        #expect(tracker.finish(crawler, now: 10).outcome == .bot)
    }

    /// A player three segments ahead that plays from 0 to `seekAt`, jumps to `seekTo` (dropping
    /// its buffer) and plays on to the end (or to `stop`); returns the session and the truth.
    static func playWithSeek(seekAt: Double, seekTo: Double, stop: Double = .infinity) -> (ListeningSession, listened: Double) {
        let timing = Self.timing()
        let spans = timing.segments["aac-128"]!
        let count = spans.count - 1
        var session = ListeningSession(id: "s", track: "t", subjectTag: nil, timing: timing, clientPrefix: nil, clientType: "browser", at: 1000)
        let t0 = 1000.0
        // Plays from `from` (media) at wall `wall`: fetches `first`, `first + 1`, `first + 2` at
        // once, then segment k when the position reaches the start of segment k - 2, until `until`.
        func run(first: Int, from: Double, wall: Double, until: Double) {
            var clock = wall
            for number in first..<min(first + 3, count + 1) {
                clock += 0.01
                session.observe(.segment(rendition: "aac-128", number: number), bytes: 96000, at: clock)
            }
            var k = first + 3
            while k <= count, spans[k - 2].start < until {
                session.observe(.segment(rendition: "aac-128", number: k), bytes: 96000, at: wall + spans[k - 2].start - from)
                k += 1
            }
        }
        run(first: 1, from: 0, wall: t0, until: seekAt)
        let target = spans.lastIndex { $0.start <= seekTo }!
        let end = min(stop, timing.durationSeconds)
        run(first: target, from: seekTo, wall: t0 + seekAt, until: end)
        return (session, seekAt + (end - seekTo))
    }

    @Test func aSeekDropsTheBufferAndCompletesFromWhereItJumped() {
        let tracker = ListeningTracker(configuration: AnalyticsConfiguration(), timing: { _ in Self.timing() })
        // Jumps over 60 s and plays to the end: completed, and what was buffered before the jump
        // (up to three segments) is not counted as heard.
        for (seekAt, seekTo) in [(40.0, 100.0), (33.0, 57.5), (40.0, 50.0), (10.0, 160.0), (61.0, 170.9)] {
            let (session, listened) = Self.playWithSeek(seekAt: seekAt, seekTo: seekTo)
            let finished = tracker.finish(session, now: 3000)
            #expect(finished.outcome == .completed, "\(seekAt) → \(seekTo)")
            #expect(abs(session.serverListenedSeconds - listened) <= 3 + 1, "\(seekAt) → \(seekTo): \(session.serverListenedSeconds) against \(listened)")
        }
        // (40 → 50 lands in the segment fetched last: fetched again, it is a jump. A jump to the
        // segment after the last one fetched is not seen: it counts as listened, as for a player
        // with a larger buffer.)
        // A jump into the last segment and a stop is not a completion.
        let (last, _) = Self.playWithSeek(seekAt: 40, seekTo: 176)
        #expect(tracker.finish(last, now: 3000).outcome == .abandoned)
        // Jumps and stops before the end: abandoned, within half a segment.
        let (stopped, listened) = Self.playWithSeek(seekAt: 40, seekTo: 90, stop: 130)
        #expect(tracker.finish(stopped, now: 3000).outcome == .abandoned)
        #expect(abs(stopped.serverListenedSeconds - listened) <= 3 + 1, "\(stopped.serverListenedSeconds) against \(listened)")
    }

    @Test func beaconsRefineTheServerView() {
        var session = Self.play(stop: 50)
        let t0 = 2000.0
        let taken1 = session.receive(PlaybackBeacon(id: "1", kind: .play, position: 0, clientTime: t0), at: 1000)
        #expect(taken1)
        let taken2 = session.receive(PlaybackBeacon(id: "2", kind: .pause, position: 20, clientTime: t0 + 20), at: 1020)
        #expect(taken2)
        let taken3 = session.receive(PlaybackBeacon(id: "2", kind: .pause, position: 20, clientTime: t0 + 20), at: 1020)
        #expect(!taken3)
        let taken4 = session.receive(PlaybackBeacon(id: "3", kind: .resume, position: 20, clientTime: t0 + 80), at: 1080)
        #expect(taken4)
        let taken5 = session.receive(PlaybackBeacon(id: "4", kind: .seek, position: 30, to: 100, clientTime: t0 + 90), at: 1090)
        #expect(taken5)
        let taken6 = session.receive(PlaybackBeacon(id: "5", kind: .skip, position: 110, clientTime: t0 + 100), at: 1100)
        #expect(taken6)
        #expect(session.listenedSeconds == 40)
        #expect(session.beaconSkipped)
        // Positions cannot run ahead of the client's clock (plus a second).
        var forged = Self.play(stop: 10)
        _ = forged.receive(PlaybackBeacon(id: "a", kind: .play, position: 0, clientTime: t0), at: 1000)
        _ = forged.receive(PlaybackBeacon(id: "b", kind: .complete, position: 180, clientTime: t0 + 5), at: 1005)
        #expect(forged.listenedSeconds == 6)
    }

    @Test func progressiveRangesMerge() {
        var session = ListeningSession(id: "p", track: "t", subjectTag: nil, timing: Self.timing(), clientPrefix: nil, clientType: "browser", at: 0)
        // 180 s in 2,880,000 bytes: 16,000 bytes a second. The same range a thousand times is one interval.
        for index in 0..<1000 { session.observe(.progressive(file: "progressive/aac-128.m4a", range: 0..<160_000), bytes: 160_000, at: Double(index)) }
        #expect(session.mediaFetchedSeconds == 10)
        session.observe(.progressive(file: "progressive/aac-128.m4a", range: 320_000..<480_000), bytes: 160_000, at: 1000)
        session.observe(.progressive(file: "progressive/aac-128.m4a", range: 150_000..<330_000), bytes: 180_000, at: 1001)
        #expect(session.mediaFetchedSeconds == 30)
        var ranges: [Range<Double>] = []
        for range in [5.0..<6, 1..<2, 3..<4, 1.5..<3.5, 10..<11] { ListeningSession.insert(range, into: &ranges) }
        #expect(ranges == [1..<4, 5..<6, 10..<11])
    }

    @Test func mediaPathsAndLabels() {
        #expect(DeliveredObject(mediaPath: "v2/cmaf/aac-128/seg-12.m4s", range: nil) == .segment(rendition: "aac-128", number: 12))
        #expect(DeliveredObject(mediaPath: "v2/cmaf/aac-128/init.mp4", range: nil) == .initSegment(rendition: "aac-128"))
        #expect(DeliveredObject(mediaPath: "v2/progressive/aac-128.m4a", range: 0..<10) == .progressive(file: "progressive/aac-128.m4a", range: 0..<10))
        #expect(DeliveredObject(mediaPath: "v2/waveform.json", range: nil) == .other)
        #expect(DeliveredObject(mediaPath: "v2/cmaf/aac-128/seg-x.m4s", range: nil) == .other)
        let label = PlaybackSessionLabel.of(token: "v2.k1.123.L2hscy90Lw.-.ABCDEFGHIJKLMNOPabcdefghijk.MAC")
        #expect(label == PlaybackSessionLabel(id: "ABCDEFGHIJKLMNOP", subjectTag: "abcdefghijk"))
        #expect(PlaybackSessionLabel.of(token: "v2.k1.123.L2hscy90Lw.-.ABCDEFGHIJKLMNOP.MAC")?.subjectTag == nil)
        #expect(PlaybackSessionLabel.of(token: "v1.k1.123.L2hscy90Lw.-.MAC") == nil)
        #expect(PlaybackSessionLabel.of(token: "v2.k1.123.L2hscy90Lw.-.short.MAC") == nil)
        #expect(DeliveryRoutes.sentRange("bytes 100-199/1000") == 100..<200)
        #expect(DeliveryRoutes.sentRange("bytes */1000") == nil)
    }

    @Test func hyperLogLogIsWithinItsError() {
        for count in [0, 1, 10, 1000, 20_000, 200_000] {
            var sketch = HyperLogLog()
            for index in 0..<count { sketch.insert("listener-\(index)") }
            let error = abs(Double(sketch.estimate - count)) / Double(max(count, 1))
            // Three standard errors (1.6 % each).
            #expect(error <= 3 * HyperLogLog.standardError, "\(count): \(sketch.estimate)")
            #expect(HyperLogLog(serialized: sketch.serialized) == sketch)
        }
        var a = HyperLogLog()
        var b = HyperLogLog()
        for index in 0..<5000 { a.insert("x\(index)") }
        for index in 2500..<7500 { b.insert("x\(index)") }
        a.merge(b)
        #expect(abs(Double(a.estimate - 7500)) / 7500 <= 3 * HyperLogLog.standardError)
        #expect(HyperLogLog(serialized: [7]) == nil)
        #expect(HyperLogLog(serialized: [1, 0xFF, 0xFF, 1]) == nil)
        #expect(HyperLogLog(serialized: [0, 1]) == nil)
    }
}
