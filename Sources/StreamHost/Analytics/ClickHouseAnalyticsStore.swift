import Foundation
public import Logging

/// Listening analytics in ClickHouse (`analytics.backend = clickhouse`), for platforms whose
/// listening outgrows the catalog database, and for several host nodes writing to one place.
///
/// Finished sessions go to a `MergeTree` table (`listening_session`, partitioned by month);
/// materialised views fold them into `AggregatingMergeTree` rollups per minute, hour and day as
/// they arrive (plays, completions, skips, abandons, bots, listening time, stalls, and unique
/// listeners as `uniqCombined` states: exact for small sets, then HyperLogLog with 2^17 cells,
/// relative standard error about 0.3 %). Listener peaks are rows per node and minute; a
/// bucket's peak is the largest sum over nodes of their minute's peaks.
///
/// Nothing is lost while ClickHouse is away: each batch is first written to a spool file in
/// ``AnalyticsConfiguration/bufferDirectory`` (fsynced, bounded by
/// ``AnalyticsConfiguration/bufferMaxBytes``, oldest dropped and logged beyond it) and deleted
/// once ClickHouse has taken it (`AnalyticsSpool`). Sending runs in the background (a sweep
/// never waits for ClickHouse), one send at a time, retried with backoff each sweep and after a
/// restart. A batch that may have arrived although its answer was lost is sent again without
/// the sessions ClickHouse already holds (ids are checked first), so a session counts once.
///
/// The tables and views are in `ClickHouseSchema`; requests go through `ClickHouseClient`
/// (ClickHouse's HTTP interface, from version 18.16, the one Debian ships).
public actor ClickHouseAnalyticsStore: AnalyticsStore {
    /// The relative standard error of unique listeners: `uniqCombined`'s 2^17 HyperLogLog cells
    /// (1.04 / √131072; exact below its hash-table stage).
    static let uniqueListenersError = 0.0029
    let client: ClickHouseClient
    let database: String
    let node: String
    let spool: AnalyticsSpool
    let logger: Logger
    private var schemaReady = false
    private var retryAfter = 0.0
    private var failures = 0
    /// Spool files sent at least once without a clear answer: checked for duplicates first.
    private var ambiguous: Set<String>
    private var sending: Task<Void, Never>?

    /// A store writing to the ClickHouse server at `url` (`http://host:8123`).
    public init(configuration: AnalyticsConfiguration, dataDirectory: String, node: String, logger: Logger) throws(CatalogError) {
        client = try ClickHouseClient(url: configuration.clickhouseURL, user: configuration.clickhouseUser,
                                      password: configuration.clickhousePassword)
        guard configuration.clickhouseDatabase.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !configuration.clickhouseDatabase.isEmpty else {
            throw CatalogError(.database, "analytics.clickhouse.database must be letters, digits and underscores")
        }
        database = configuration.clickhouseDatabase
        self.node = node
        self.logger = logger
        spool = try AnalyticsSpool(directory: configuration.bufferDirectory ?? dataDirectory + "/analytics-buffer",
                                   maxBytes: configuration.bufferMaxBytes)
        // Whatever a previous run left may have reached ClickHouse already.
        ambiguous = Set(spool.files())
    }

    // MARK: writing

    public func recordListening(_ sessions: [FinishedSession], peaks: [ListenerPeak]) async throws(CatalogError) {
        guard !sessions.isEmpty || !peaks.isEmpty else { return }
        let dropped = try spool.append(sessions: sessions.map { ClickHouseSchema.SessionRow($0, node: node) },
                                       peaks: peaks.map { ClickHouseSchema.PeakRow(track: $0.track, minute: $0.minute, node: node, peak: $0.peak) })
        if dropped > 0 {
            logger.error("analytics buffer full: the oldest unsent batches were dropped", metadata: ["files": "\(dropped)"])
        }
        _ = startSending()
    }

    /// Starts sending what the spool holds in the background (the sweep never waits for
    /// ClickHouse), unless a send is under way or a recent failure asks to wait.
    public func flush() async {
        _ = startSending()
    }

    /// Sends what the spool holds and returns when done (or when ClickHouse failed).
    public func sendBuffered() async {
        if let running = sending { await running.value }
        await startSending().value
    }

    /// One send at a time, so that no batch goes twice.
    private func startSending() -> Task<Void, Never> {
        if let running = sending { return running }
        let task = Task {
            await self.sendAll()
            self.sending = nil
        }
        sending = task
        return task
    }

    private func sendAll() async {
        let now = Date().timeIntervalSince1970
        guard now >= retryAfter else { return }
        for file in spool.files() {
            do {
                try await send(file)
                spool.remove(file)
                ambiguous.remove(file)
                failures = 0
            } catch {
                if !error.refused { ambiguous.insert(file) }
                failures += 1
                retryAfter = now + min(30, 0.5 * Double(1 << min(failures, 6)))
                logger.warning("cannot send listening sessions to ClickHouse; they stay in the buffer",
                               metadata: ["error": "\(error.message)", "buffered": "\(spool.files().count)"])
                return
            }
        }
    }

    /// How many batches wait in the spool.
    public var bufferedBatches: Int { spool.files().count }

    private func send(_ file: String) async throws(ClickHouseClient.Failure) {
        try await ensureSchema()
        let (kind, lines) = spool.read(file)
        var rows = lines
        if kind == .sessions, ambiguous.contains(file), !rows.isEmpty {
            // It may have arrived: leave out the sessions ClickHouse already has.
            let ids = rows.compactMap { try? JSONDecoder().decode(ClickHouseSchema.SessionID.self, from: Data($0.utf8)).id }
            let present = Set(try await client.query("SELECT id FROM \(database).listening_session WHERE id IN (\(ids.map(ClickHouseClient.quoted).joined(separator: ","))) FORMAT TabSeparated")
                .split(separator: "\n").map(String.init))
            rows = zip(rows, ids).filter { !present.contains($0.1) }.map(\.0)
        }
        guard !rows.isEmpty else { return }
        try await client.insert(into: "\(database).\(kind == .sessions ? "listening_session" : "listener_peak")", lines: rows)
    }

    private func ensureSchema() async throws(ClickHouseClient.Failure) {
        guard !schemaReady else { return }
        for statement in ClickHouseSchema.statements(database) { _ = try await client.query(statement) }
        schemaReady = true
    }

    // MARK: reading

    public func rollups(track: String?, interval: RollupInterval, from: Int64, to: Int64) async throws(CatalogError) -> [RollupRow] {
        try await figures(track: track, interval: interval, from: from, to: to, perBucket: true)
    }

    public func totals(track: String?, interval: RollupInterval, from: Int64, to: Int64) async throws(CatalogError) -> [RollupRow] {
        try await figures(track: track, interval: interval, from: from, to: to, perBucket: false)
    }

    private func figures(track: String?, interval: RollupInterval, from: Int64, to: Int64, perBucket: Bool) async throws(CatalogError) -> [RollupRow] {
        let trackFilter = track.map { " AND track = \(ClickHouseClient.quoted($0))" } ?? ""
        let bucketColumn = perBucket ? "bucket" : "toUInt32(\(from))"
        let counts = """
            SELECT track, \(bucketColumn) AS b, countIfMerge(sessions) AS sessions, sumMerge(plays) AS plays,
                countIfMerge(completions) AS completions, countIfMerge(skips) AS skips, countIfMerge(abandons) AS abandons,
                countIfMerge(bots) AS bots, sumIfMerge(listened) AS listened, sumIfMerge(stalls) AS stalls,
                uniqCombinedIfMerge(listeners) AS listeners
            FROM \(database).listening_rollup_\(interval.rawValue) WHERE bucket >= \(from) AND bucket < \(to)\(trackFilter)
            GROUP BY track, b FORMAT JSONEachRow
            """
        // A bucket's peak: the most listeners at once in any of its minutes, summing the nodes.
        let minuteBucket = "toUInt32(intDiv(toUInt32(minute), \(interval.seconds)) * \(interval.seconds))"
        let peakBucket = perBucket ? minuteBucket : "toUInt32(\(from))"
        let peaks = """
            SELECT track, \(peakBucket) AS b, max(p) AS peak FROM (
                SELECT track, minute, sum(p1) AS p FROM (
                    SELECT track, minute, node, max(peak) AS p1 FROM \(database).listener_peak
                    WHERE \(minuteBucket) >= \(from) AND \(minuteBucket) < \(to)\(trackFilter) GROUP BY track, minute, node
                ) GROUP BY track, minute
            ) GROUP BY track, b FORMAT JSONEachRow
            """
        do throws(ClickHouseClient.Failure) {
            try await ensureSchema()
            var rows: [String: RollupRow] = [:]
            for line in try await client.query(counts).split(separator: "\n") {
                guard let c = try? JSONDecoder().decode(ClickHouseSchema.CountsRow.self, from: Data(line.utf8)) else { continue }
                var row = RollupRow(track: c.track, interval: interval, bucket: c.b)
                row.sessions = c.sessions
                row.plays = c.plays
                row.completions = c.completions
                row.skips = c.skips
                row.abandons = c.abandons
                row.bots = c.bots
                row.listenedSeconds = c.listened
                row.stalls = c.stalls
                row.storeEstimate = .init(count: c.listeners, relativeError: Self.uniqueListenersError)
                rows["\(c.track)\n\(c.b)"] = row
            }
            for line in try await client.query(peaks).split(separator: "\n") {
                guard let p = try? JSONDecoder().decode(ClickHouseSchema.PeakQueryRow.self, from: Data(line.utf8)) else { continue }
                rows["\(p.track)\n\(p.b)", default: {
                    var empty = RollupRow(track: p.track, interval: interval, bucket: p.b)
                    empty.storeEstimate = .init(count: 0, relativeError: Self.uniqueListenersError)
                    return empty
                }()].peakListeners = p.peak
            }
            return rows.values.sorted { ($0.bucket, $0.track) < ($1.bucket, $1.track) }
        } catch {
            throw error.catalogError
        }
    }

    public func breakdown(track: String, dimension: String, from: Double, to: Double) async throws(CatalogError) -> [BreakdownEntry] {
        guard ["codec", "rendition", "client_type", "country"].contains(dimension) else { return [] }
        let sql = """
            SELECT if(empty(\(dimension)), 'unknown', \(dimension)) AS value, count() AS sessions, sum(listened_seconds) AS listenedSeconds
            FROM \(database).listening_session WHERE track = \(ClickHouseClient.quoted(track)) AND started_at >= \(from) AND started_at < \(to)
                AND outcome != 'bot'
            GROUP BY value ORDER BY sessions DESC, value FORMAT JSONEachRow
            """
        do throws(ClickHouseClient.Failure) {
            try await ensureSchema()
            return try await client.query(sql).split(separator: "\n").compactMap { try? JSONDecoder().decode(BreakdownEntry.self, from: Data($0.utf8)) }
        } catch {
            throw error.catalogError
        }
    }

    // MARK: deleting

    public func deleteListening(subjectTag: String) async throws(CatalogError) -> Int {
        // The spooled batches first: nothing of the subject is sent after this.
        let spooled = spool.removeSessions { line in
            (try? JSONDecoder().decode(ClickHouseSchema.SessionSubject.self, from: Data(line.utf8)))?.subject_tag == subjectTag
        }
        do throws(ClickHouseClient.Failure) {
            try await ensureSchema()
            let condition = "subject_tag = \(ClickHouseClient.quoted(subjectTag))"
            let stored = Int(try await client.query("SELECT count() FROM \(database).listening_session WHERE \(condition)")
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            if stored > 0 {
                // A mutation: ClickHouse rewrites the parts holding them in the background.
                _ = try await client.query("ALTER TABLE \(database).listening_session DELETE WHERE \(condition)")
            }
            return stored + spooled
        } catch {
            throw error.catalogError
        }
    }

    /// Drops whole monthly partitions once everything in them is older than the retention
    /// (data is kept up to a month longer than `retentionDays`; no row-by-row mutations).
    public func purgeListening(sessionsBefore: Double, rollupsBefore: Double) async throws(CatalogError) {
        let tables: [(String, Double)] = [("listening_session", sessionsBefore), ("listener_peak", sessionsBefore),
                                          ("listening_rollup_minute", sessionsBefore), ("listening_rollup_hour", rollupsBefore),
                                          ("listening_rollup_day", rollupsBefore)]
        do throws(ClickHouseClient.Failure) {
            try await ensureSchema()
            for (table, before) in tables {
                let partitions = try await client.query("""
                    SELECT DISTINCT partition FROM system.parts WHERE database = \(ClickHouseClient.quoted(database)) AND table = \(ClickHouseClient.quoted(table)) AND active
                    FORMAT TabSeparated
                    """).split(separator: "\n").map(String.init)
                for partition in partitions where ClickHouseSchema.monthEnd(partition).map({ $0 <= before }) == true {
                    _ = try await client.query("ALTER TABLE \(database).\(table) DROP PARTITION \(partition)")
                }
            }
        } catch {
            throw error.catalogError
        }
    }
}
