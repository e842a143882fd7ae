import Foundation
import Logging
@testable import StreamHost
import Testing
import TestSupport

private let servicesScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts/services.sh").path

/// The ClickHouse analytics store against a real ClickHouse server (Debian's clickhouse-server,
/// started by `scripts/services.sh clickhouse`), checked against the embedded store (SQLite)
/// fed the same sessions: the same rollups, totals and breakdowns; nothing lost or counted twice
/// across an outage, a lost answer or a restart; deletion by subject.
@Suite("Listening analytics in ClickHouse", .serialized)
struct ClickHouseAnalyticsTests {
    /// A ClickHouse server of its own, under a fresh state directory.
    struct Server {
        let state: String
        let url: String

        init() throws {
            state = Fixtures.directory + "/clickhouse-\(UUID().uuidString.prefix(8))"
            try Subprocess.check(servicesScript, ["clickhouse", state])
            let env = try String(contentsOfFile: state + "/services.env", encoding: .utf8)
            url = try #require(env.split(separator: "\n").first { $0.hasPrefix("VEZA_CLICKHOUSE_URL=") }?.split(separator: "=", maxSplits: 1).last)
                .description
        }

        func stop() throws { try Subprocess.check(servicesScript, ["stop-clickhouse", state]) }
        func start() throws { try Subprocess.check(servicesScript, ["clickhouse", state]) }

        /// Stops the server and removes its state (a `defer` of each test: the lifetime of a
        /// local is not its scope in optimised code, so no deinit does it).
        func remove() {
            _ = try? Subprocess.run(servicesScript, ["stop", state])
            try? FileManager.default.removeItem(atPath: state)
        }
    }

    static func store(_ server: Server, buffer: String, database: String) throws -> ClickHouseAnalyticsStore {
        var configuration = AnalyticsConfiguration()
        configuration.backend = .clickhouse
        configuration.clickhouseURL = server.url
        configuration.clickhouseDatabase = database
        configuration.clickhouseUser = "veza"
        configuration.clickhousePassword = "veza"
        configuration.bufferDirectory = buffer
        return try ClickHouseAnalyticsStore(configuration: configuration, dataDirectory: buffer, node: "test-node",
                                            logger: Logger(label: "clickhouse-test"))
    }

    /// A ClickHouse store (database `veza_<name>`, its buffer in a fresh directory) and a SQLite
    /// catalog in the same directory, to be fed the same sessions.
    struct Stores {
        let directory: String
        let clickhouse: ClickHouseAnalyticsStore
        let sqlite: SQLiteCatalog
        var buffer: String { directory + "/buffer" }

        init(_ server: Server, name: String) throws {
            directory = Fixtures.directory + "/ch-\(name)-\(UUID().uuidString.prefix(6))"
            clickhouse = try ClickHouseAnalyticsTests.store(server, buffer: directory + "/buffer", database: "veza_\(name)")
            sqlite = try SQLiteCatalog(path: directory + "/catalog.sqlite")
        }

        func remove() { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Sessions with every outcome, over three tracks and three hours, some listeners coming back.
    static func sessions(_ count: Int, start: Double, seed: UInt64, subjects: [String]) -> [FinishedSession] {
        var random = SeededGenerator(seed: seed)
        let outcomes: [FinishedSession.Outcome] = [.completed, .completed, .skipped, .abandoned, .bot]
        return (0..<count).map { i in
            let outcome = outcomes[Int(random.next() % UInt64(outcomes.count))]
            let listened = outcome == .bot ? 0 : Double(random.next() % 300_000) / 1000
            let startedAt = start + Double(random.next() % 10_800_000) / 1000
            let rendition = ["aac_128", "opus_96", "mp3_128"][Int(random.next() % 3)]
            return FinishedSession(
                id: "s\(seed)-\(i)-\(UUID().uuidString.prefix(8))", track: ["trk-a", "trk-b", "trk-c"][i % 3],
                subjectTag: subjects.isEmpty || i % 4 == 3 ? nil : subjects[Int(random.next() % UInt64(subjects.count))],
                startedAt: startedAt, endedAt: startedAt + listened + 5, listenedSeconds: listened, fetchedSeconds: listened + 6,
                outcome: outcome, isPlay: outcome != .bot && (listened >= 30 || outcome == .completed),
                stalls: Int(random.next() % 3), seeks: 0, beacons: 0, rendition: rendition, codec: String(rendition.prefix(while: { $0 != "_" })),
                clientPrefix: nil, clientType: ["ffmpeg", "chromium", "mpv"][Int(random.next() % 3)],
                country: random.next() % 4 == 0 ? nil : ["NZ", "BR", "DE"][Int(random.next() % 3)],
                mediaRequests: 10, playlistRequests: 2, bytes: 100_000)
        }
    }

    static func peaks(start: Double) -> [ListenerPeak] {
        (0..<180).flatMap { minute in
            ["trk-a", "trk-b"].map { ListenerPeak(track: $0, minute: Int64(start) / 60 * 60 + Int64(minute) * 60, peak: (minute * 7) % 23 + 1) }
        }
    }

    /// Rollups, totals and breakdowns from both stores agree (unique listeners within their
    /// sketches' errors of the exact count).
    static func expectSameFigures(_ clickhouse: ClickHouseAnalyticsStore, _ sqlite: SQLiteCatalog, sessions: [FinishedSession],
                                  from: Int64, to: Int64) async throws {
        func counts(_ r: RollupRow) -> [Int] { [r.sessions, r.plays, r.completions, r.skips, r.abandons, r.bots, r.stalls, r.peakListeners] }
        for interval in RollupInterval.allCases {
            for track in ["trk-a", "trk-b", "trk-c"] {
                let a = try await clickhouse.rollups(track: track, interval: interval, from: from, to: to)
                let b = try await sqlite.rollups(track: track, interval: interval, from: from, to: to)
                #expect(a.map(\.bucket) == b.map(\.bucket), "\(track) \(interval)")
                for (x, y) in zip(a, b) {
                    #expect(counts(x) == counts(y), "\(track) \(interval) \(x.bucket)")
                    #expect(abs(x.listenedSeconds - y.listenedSeconds) < 1e-6)
                }
            }
            let totalsA = try await clickhouse.totals(track: nil, interval: interval, from: from, to: to)
            let totalsB = try await sqlite.totals(track: nil, interval: interval, from: from, to: to)
            #expect(totalsA.map(\.track) == totalsB.map(\.track))
            for (x, y) in zip(totalsA, totalsB) {
                #expect(counts(x) == counts(y), "\(x.track) \(interval)")
                let exact = Set(sessions.filter { $0.track == x.track && $0.outcome != .bot && Double(from) <= $0.startedAt && $0.startedAt < Double(to) }
                    .map(\.listenerKey)).count
                #expect(abs(Double(x.uniqueListeners - exact)) <= max(1, 3 * x.uniqueListenersError * Double(exact)), "ClickHouse \(x.uniqueListeners) vs \(exact)")
                #expect(abs(Double(y.uniqueListeners - exact)) <= max(1, 3 * y.uniqueListenersError * Double(exact)), "SQLite \(y.uniqueListeners) vs \(exact)")
            }
        }
        for dimension in ["codec", "rendition", "client_type", "country"] {
            let a = try await clickhouse.breakdown(track: "trk-a", dimension: dimension, from: Double(from), to: Double(to))
            let b = try await sqlite.breakdown(track: "trk-a", dimension: dimension, from: Double(from), to: Double(to))
            #expect(a.map(\.value) == b.map(\.value) && a.map(\.sessions) == b.map(\.sessions), "\(dimension)")
            #expect(zip(a, b).allSatisfy { abs($0.listenedSeconds - $1.listenedSeconds) < 1e-6 })
        }
    }

    @Test("3,000 sessions and 360 peaks in batches: ClickHouse's rollups (materialised views), totals and breakdowns equal SQLite's for minute, hour and day; unique listeners within 3 standard errors of the exact count")
    func sameFiguresAsTheCatalog() async throws {
        let server = try Server()
        defer { server.remove() }
        let stores = try Stores(server, name: "same")
        defer { stores.remove() }
        let (clickhouse, sqlite) = (stores.clickhouse, stores.sqlite)
        let start = 1_796_000_000.0
        let subjects = (0..<400).map { "subject-\($0)" }
        let sessions = Self.sessions(3_000, start: start, seed: 7, subjects: subjects)
        let peaks = Self.peaks(start: start)
        for batch in stride(from: 0, to: sessions.count, by: 250) {
            let slice = Array(sessions[batch..<min(batch + 250, sessions.count)])
            let peakSlice = batch == 0 ? peaks : []
            try await clickhouse.recordListening(slice, peaks: peakSlice)
            try await sqlite.recordListening(slice, peaks: peakSlice)
        }
        await clickhouse.sendBuffered()
        #expect(await clickhouse.bufferedBatches == 0)
        try await Self.expectSameFigures(clickhouse, sqlite, sessions: sessions, from: Int64(start) - 86_400, to: Int64(start) + 2 * 86_400)
        // Deleting a subject: the same sessions in both, gone from ClickHouse once its mutation ran.
        let a = try await clickhouse.deleteListening(subjectTag: "subject-5")
        let b = try await sqlite.deleteListening(subjectTag: "subject-5")
        #expect(a == b && a > 0)
        var left = -1
        for _ in 0..<600 {
            left = try await clickhouse.breakdown(track: "trk-a", dimension: "codec", from: 0, to: 4e9).reduce(0) { $0 + $1.sessions }
            let expected = try await sqlite.breakdown(track: "trk-a", dimension: "codec", from: 0, to: 4e9).reduce(0) { $0 + $1.sessions }
            if left == expected { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let expectedLeft = try await sqlite.breakdown(track: "trk-a", dimension: "codec", from: 0, to: 4e9).reduce(0) { $0 + $1.sessions }
        #expect(left == expectedLeft)
        // Whole monthly partitions older than the retention go; newer ones stay.
        try await clickhouse.purgeListening(sessionsBefore: start - 86_400 * 40, rollupsBefore: start - 86_400 * 400)
        let kept = try await clickhouse.totals(track: "trk-b", interval: .hour, from: 0, to: 4_000_000_000).first?.sessions
        let expectedKept = try await sqlite.totals(track: "trk-b", interval: .hour, from: 0, to: 4_000_000_000).first?.sessions
        #expect(kept != nil && kept == expectedKept)
    }

    @Test("ClickHouse stopped while sessions end: every batch waits on disk, nothing is refused or lost; started again, the backlog is sent and the figures equal SQLite's; a batch whose answer was lost and a restart with a backlog count each session once")
    func outageLosesNothing() async throws {
        let server = try Server()
        defer { server.remove() }
        let stores = try Stores(server, name: "outage")
        defer { stores.remove() }
        let (buffer, clickhouse, sqlite) = (stores.buffer, stores.clickhouse, stores.sqlite)
        let start = 1_796_100_000.0
        var all: [FinishedSession] = []
        func record(_ batch: [FinishedSession], into store: ClickHouseAnalyticsStore) async throws {
            try await store.recordListening(batch, peaks: [])
            try await sqlite.recordListening(batch, peaks: [])
            all += batch
        }
        try await record(Self.sessions(300, start: start, seed: 1, subjects: ["x", "y"]), into: clickhouse)
        await clickhouse.sendBuffered()
        #expect(await clickhouse.bufferedBatches == 0)

        try server.stop()
        for seed in 2...6 {
            try await record(Self.sessions(200, start: start, seed: UInt64(seed), subjects: ["x", "y"]), into: clickhouse)
        }
        #expect(await clickhouse.bufferedBatches == 5)
        await #expect(throws: CatalogError.self) { try await clickhouse.totals(track: nil, interval: .hour, from: 0, to: 4_000_000_000) }

        try server.start()
        // The backoff after failures is at most 30 s; flush until the buffer is empty.
        for _ in 0..<400 where await clickhouse.bufferedBatches > 0 {
            await clickhouse.sendBuffered()
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(await clickhouse.bufferedBatches == 0)
        try await Self.expectSameFigures(clickhouse, sqlite, sessions: all, from: Int64(start) - 86_400, to: Int64(start) + 86_400)

        // A batch that reached ClickHouse although the host did not hear so, left in the buffer by
        // a crash: the next start sends only what ClickHouse lacks.
        let again = Self.sessions(100, start: start, seed: 9, subjects: [])
        try await record(again, into: clickhouse)
        await clickhouse.sendBuffered()
        let spool = try AnalyticsSpool(directory: buffer, maxBytes: 1 << 30)
        _ = try spool.append(sessions: Array(again.prefix(60)).map { .init($0, node: "test-node") }, peaks: [])
        let extra = Self.sessions(40, start: start, seed: 10, subjects: [])
        _ = try spool.append(sessions: extra.map { .init($0, node: "test-node") }, peaks: [])
        try await sqlite.recordListening(extra, peaks: [])
        all += extra
        let restarted = try Self.store(server, buffer: buffer, database: "veza_outage")
        #expect(await restarted.bufferedBatches == 2)
        await restarted.sendBuffered()
        #expect(await restarted.bufferedBatches == 0)
        try await Self.expectSameFigures(restarted, sqlite, sessions: all, from: Int64(start) - 86_400, to: Int64(start) + 86_400)
    }

    @Test("A host with analytics.backend = clickhouse: two ffmpeg players' sessions reach ClickHouse and GET /v1/analytics/tracks/{id} reports them from there")
    func hostWritesToClickHouse() throws {
        let server = try Server()
        defer { server.remove() }
        let host = HostProcess(name: "analytics-clickhouse", environment: [
            "VEZA_ANALYTICS_BACKEND": "clickhouse",
            "VEZA_ANALYTICS_CLICKHOUSE_URL": server.url,
            "VEZA_ANALYTICS_CLICKHOUSE_USER": "veza",
            "VEZA_ANALYTICS_CLICKHOUSE_PASSWORD": "veza",
            "VEZA_ANALYTICS_CLICKHOUSE_DATABASE": "veza_host",
            "VEZA_LADDER_SEGMENT_SECONDS": "2",
            "VEZA_ANALYTICS_IDLE_TIMEOUT_SECONDS": "2",
            "VEZA_ANALYTICS_SWEEP_SECONDS": "0.2",
        ])
        try host.start()
        defer { host.stop() }
        let source = try Fixtures.make("analytics-ch-12s.flac", source: Fixtures.sourceArguments(seconds: 12), ["-c:a", "flac"])
        let id = try #require(try host.upload(source, contentType: "audio/flac").json["id"] as? String)
        #expect(try host.waitForTrack(id)["status"] as? String == "ready")
        for listener in ["user-1", "user-2"] {
            let reply = try host.curl([host.base + "/v1/tracks/\(id)?listener=\(listener)"])
            let playback = try #require(AnalyticsTests.json(reply.body)["playback"] as? [String: Any])
            let master = host.base + (try #require(playback["hls"] as? String))
            let result = try Subprocess.run("ffmpeg", ["-nostdin", "-loglevel", "error", "-i", master, "-f", "null", "-"])
            #expect(result.succeeded, "\(result.stderr)")
        }
        var totals: [String: Any] = [:]
        for _ in 0..<300 {
            let report = try host.curl([host.base + "/v1/analytics/tracks/\(id)?interval=minute&from=\(Int(Date().timeIntervalSince1970) - 600)"])
            totals = AnalyticsTests.json(report.body)["totals"] as? [String: Any] ?? [:]
            if totals["completions"] as? Int == 2 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(totals["completions"] as? Int == 2, "\(totals)")
        #expect(totals["plays"] as? Int == 2, "\(totals)")
        #expect(totals["uniqueListeners"] as? Int == 2, "\(totals)")
        #expect(totals["uniqueListenersError"] as? Double == 0.0029, "\(totals)")
    }

    @Test("Ingestion: 20,000 finished sessions in batches of 1,000 (one sweep's worth each) into SQLite and into ClickHouse, every one counted in both; the rates are printed for BENCHMARKS.md (a measurement, not a gate)")
    func ingestionRate() async throws {
        let server = try Server()
        defer { server.remove() }
        let stores = try Stores(server, name: "ingest")
        defer { stores.remove() }
        let (clickhouse, sqlite) = (stores.clickhouse, stores.sqlite)
        let start = 1_796_200_000.0
        let batches = (0..<20).map { Self.sessions(1_000, start: start, seed: UInt64(100 + $0), subjects: (0..<5_000).map { "s\($0)" }) }
        let clock = ContinuousClock()
        let sqliteTime = try await clock.measure {
            for batch in batches { try await sqlite.recordListening(batch, peaks: []) }
        }
        let clickhouseTime = try await clock.measure {
            for batch in batches {
                try await clickhouse.recordListening(batch, peaks: [])
                await clickhouse.sendBuffered()
            }
        }
        func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        print("analytics ingestion: SQLite \(Int(20_000 / seconds(sqliteTime))) sessions/s, ClickHouse \(Int(20_000 / seconds(clickhouseTime))) sessions/s (spooled, fsynced and sent, batches of 1,000)")
        let all = batches.flatMap { $0 }
        let expected = all.filter { $0.outcome != .bot }.count
        let a = try await clickhouse.totals(track: nil, interval: .day, from: 0, to: 4_000_000_000).reduce(0) { $0 + $1.sessions }
        let b = try await sqlite.totals(track: nil, interval: .day, from: 0, to: 4_000_000_000).reduce(0) { $0 + $1.sessions }
        #expect(a == expected && b == expected)
    }

    @Test("The spool keeps whole batches within its bound: beyond it the oldest go, never the newest")
    func spoolIsBounded() throws {
        let dir = Fixtures.directory + "/ch-spool-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spool = try AnalyticsSpool(directory: dir, maxBytes: 1 << 20)
        var dropped = 0
        var names: [[String]] = []
        for seed in 0..<12 {
            let rows = Self.sessions(400, start: 1_796_000_000, seed: UInt64(seed), subjects: []).map { ClickHouseSchema.SessionRow($0, node: "n") }
            dropped += try spool.append(sessions: rows, peaks: [])
            names.append(spool.files())
        }
        let size = spool.files().reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: dir + "/" + $1)[.size] as? Int) ?? 0) }
        #expect(dropped > 0 && size <= 1 << 20)
        #expect(spool.files().last == names.last?.last)
        #expect(spool.files().count + dropped == 12)
    }
}
