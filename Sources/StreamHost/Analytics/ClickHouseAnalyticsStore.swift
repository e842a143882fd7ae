import AsyncHTTPClient
import Foundation
public import Logging
import NIOCore
import NIOHTTP1

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
/// once ClickHouse has taken it. Sending runs in the background (a sweep never waits for
/// ClickHouse), one send at a time, retried with backoff each sweep and after a restart. A batch that may have arrived although its answer was lost is sent again without
/// the sessions ClickHouse already holds (ids are checked first), so a session counts once.
///
/// It speaks ClickHouse's HTTP interface (from version 18.16, the one Debian ships) through
/// async-http-client; the SQL is written against that version (no query parameters, so strings
/// are quoted here).
public actor ClickHouseAnalyticsStore: AnalyticsStore {
    /// The relative standard error of unique listeners: `uniqCombined`'s 2^17 HyperLogLog cells
    /// (1.04 / √131072; exact below its hash-table stage).
    static let uniqueListenersError = 0.0029
    let endpoint: String
    let database: String
    let authorization: String?
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
        guard let url = configuration.clickhouseURL, url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw CatalogError(.database, "analytics.clickhouse.url must be an http:// or https:// URL")
        }
        endpoint = url.hasSuffix("/") ? String(url.dropLast()) : url
        guard configuration.clickhouseDatabase.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), !configuration.clickhouseDatabase.isEmpty else {
            throw CatalogError(.database, "analytics.clickhouse.database must be letters, digits and underscores")
        }
        database = configuration.clickhouseDatabase
        if let user = configuration.clickhouseUser {
            authorization = "Basic " + Data("\(user):\(configuration.clickhousePassword ?? "")".utf8).base64EncodedString()
        } else {
            authorization = nil
        }
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
        let dropped = try spool.append(sessions: sessions.map { SessionRow($0, node: node) },
                                       peaks: peaks.map { PeakRow(track: $0.track, minute: $0.minute, node: node, peak: $0.peak) })
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
                               metadata: ["error": "\(error.error)", "buffered": "\(spool.files().count)"])
                return
            }
        }
    }

    /// How many batches wait in the spool.
    public var bufferedBatches: Int { spool.files().count }

    private func send(_ file: String) async throws(SendError) {
        try await ensureSchema()
        let (kind, lines) = spool.read(file)
        var rows = lines
        if kind == .sessions, ambiguous.contains(file), !rows.isEmpty {
            // It may have arrived: leave out the sessions ClickHouse already has.
            let ids = rows.compactMap { try? JSONDecoder().decode(SessionID.self, from: Data($0.utf8)).id }
            let present = Set(try await query("SELECT id FROM \(database).listening_session WHERE id IN (\(ids.map(Self.quoted).joined(separator: ","))) FORMAT TabSeparated")
                .split(separator: "\n").map(String.init))
            rows = zip(rows, ids).filter { !present.contains($0.1) }.map(\.0)
        }
        guard !rows.isEmpty else { return }
        let table = kind == .sessions ? "listening_session" : "listener_peak"
        _ = try await post(parameters: ["query": "INSERT INTO \(database).\(table) FORMAT JSONEachRow"], body: rows.joined(separator: "\n"),
                           timeout: .seconds(10))
    }

    private func ensureSchema() async throws(SendError) {
        guard !schemaReady else { return }
        for statement in Self.schema(database) { _ = try await query(statement) }
        schemaReady = true
    }

    /// The tables and views, created when missing (several nodes may race: all idempotent).
    static func schema(_ db: String) -> [String] {
        var statements = [
            "CREATE DATABASE IF NOT EXISTS \(db)",
            """
            CREATE TABLE IF NOT EXISTS \(db).listening_session (
                id String, track String, node String, started_at Float64, bucket DateTime, ended_at Float64,
                subject_tag String, listener String, listened_seconds Float64, fetched_seconds Float64, outcome String,
                play UInt8, stalls UInt32, seeks UInt32, beacons UInt32, rendition String, codec String, client_prefix String,
                client_type String, country String, media_requests UInt32, playlist_requests UInt32, bytes UInt64
            ) ENGINE = MergeTree PARTITION BY toYYYYMM(bucket) ORDER BY (track, bucket, id)
            """,
            """
            CREATE TABLE IF NOT EXISTS \(db).listener_peak (track String, minute DateTime, node String, peak UInt32)
            ENGINE = MergeTree PARTITION BY toYYYYMM(minute) ORDER BY (track, minute, node)
            """,
        ]
        for interval in RollupInterval.allCases {
            let table = "\(db).listening_rollup_\(interval.rawValue)"
            statements.append("""
                CREATE TABLE IF NOT EXISTS \(table) (
                    track String, bucket UInt32, sessions AggregateFunction(countIf, UInt8), plays AggregateFunction(sum, UInt64),
                    completions AggregateFunction(countIf, UInt8), skips AggregateFunction(countIf, UInt8),
                    abandons AggregateFunction(countIf, UInt8), bots AggregateFunction(countIf, UInt8),
                    listened AggregateFunction(sumIf, Float64, UInt8), stalls AggregateFunction(sumIf, UInt64, UInt8),
                    listeners AggregateFunction(uniqCombinedIf, String, UInt8)
                ) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(toDateTime(bucket)) ORDER BY (track, bucket)
                """)
            statements.append("""
                CREATE MATERIALIZED VIEW IF NOT EXISTS \(table)_mv TO \(table) AS
                SELECT track, toUInt32(intDiv(toUInt32(bucket), \(interval.seconds)) * \(interval.seconds)) AS bucket,
                    countIfState(outcome != 'bot') AS sessions, sumState(toUInt64(play * (outcome != 'bot'))) AS plays,
                    countIfState(outcome = 'completed') AS completions, countIfState(outcome = 'skipped') AS skips,
                    countIfState(outcome = 'abandoned') AS abandons, countIfState(outcome = 'bot') AS bots,
                    sumIfState(listened_seconds, outcome != 'bot') AS listened, sumIfState(toUInt64(stalls), outcome != 'bot') AS stalls,
                    uniqCombinedIfState(listener, outcome != 'bot') AS listeners
                FROM \(db).listening_session GROUP BY track, bucket
                """)
        }
        return statements
    }

    // MARK: reading

    public func rollups(track: String?, interval: RollupInterval, from: Int64, to: Int64) async throws(CatalogError) -> [RollupRow] {
        try await figures(track: track, interval: interval, from: from, to: to, perBucket: true)
    }

    public func totals(track: String?, interval: RollupInterval, from: Int64, to: Int64) async throws(CatalogError) -> [RollupRow] {
        try await figures(track: track, interval: interval, from: from, to: to, perBucket: false)
    }

    private func figures(track: String?, interval: RollupInterval, from: Int64, to: Int64, perBucket: Bool) async throws(CatalogError) -> [RollupRow] {
        let trackFilter = track.map { " AND track = \(Self.quoted($0))" } ?? ""
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
        do throws(SendError) {
            try await ensureSchema()
            var rows: [String: RollupRow] = [:]
            for line in try await query(counts).split(separator: "\n") {
                guard let c = try? JSONDecoder().decode(CountsRow.self, from: Data(line.utf8)) else { continue }
                var row = RollupRow(track: c.track, interval: interval, bucket: c.b)
                row.sessions = c.sessions
                row.plays = c.plays
                row.completions = c.completions
                row.skips = c.skips
                row.abandons = c.abandons
                row.bots = c.bots
                row.listenedSeconds = c.listened
                row.stalls = c.stalls
                row.uniqueEstimate = c.listeners
                rows["\(c.track)\n\(c.b)"] = row
            }
            for line in try await query(peaks).split(separator: "\n") {
                guard let p = try? JSONDecoder().decode(PeakQueryRow.self, from: Data(line.utf8)) else { continue }
                rows["\(p.track)\n\(p.b)", default: {
                    var empty = RollupRow(track: p.track, interval: interval, bucket: p.b)
                    empty.uniqueEstimate = 0
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
            FROM \(database).listening_session WHERE track = \(Self.quoted(track)) AND started_at >= \(from) AND started_at < \(to)
                AND outcome != 'bot'
            GROUP BY value ORDER BY sessions DESC, value FORMAT JSONEachRow
            """
        do throws(SendError) {
            try await ensureSchema()
            return try await query(sql).split(separator: "\n").compactMap { try? JSONDecoder().decode(BreakdownEntry.self, from: Data($0.utf8)) }
        } catch {
            throw error.catalogError
        }
    }

    // MARK: deleting

    public func deleteListening(subjectTag: String) async throws(CatalogError) -> Int {
        // The spooled batches first: nothing of the subject is sent after this.
        let spooled = spool.removeSessions { line in line.contains("\"subject_tag\":\(Self.jsonString(subjectTag))") }
        do throws(SendError) {
            try await ensureSchema()
            let condition = "subject_tag = \(Self.quoted(subjectTag))"
            let stored = Int(try await query("SELECT count() FROM \(database).listening_session WHERE \(condition)")
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            if stored > 0 {
                // A mutation: ClickHouse rewrites the parts holding them in the background.
                _ = try await query("ALTER TABLE \(database).listening_session DELETE WHERE \(condition)")
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
        do throws(SendError) {
            try await ensureSchema()
            for (table, before) in tables {
                let partitions = try await query("""
                    SELECT DISTINCT partition FROM system.parts WHERE database = \(Self.quoted(database)) AND table = \(Self.quoted(table)) AND active
                    FORMAT TabSeparated
                    """).split(separator: "\n").map(String.init)
                for partition in partitions where Self.monthEnd(partition).map({ $0 <= before }) == true {
                    _ = try await query("ALTER TABLE \(database).\(table) DROP PARTITION \(partition)")
                }
            }
        } catch {
            throw error.catalogError
        }
    }

    /// The end of month `YYYYMM`, seconds since 1970 (UTC).
    static func monthEnd(_ partition: String) -> Double? {
        guard partition.count == 6, let value = Int(partition) else { return nil }
        var components = DateComponents()
        components.year = value / 100 + (value % 100 == 12 ? 1 : 0)
        components.month = value % 100 == 12 ? 1 : value % 100 + 1
        components.day = 1
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: components)?.timeIntervalSince1970
    }

    // MARK: HTTP

    struct SendError: Error {
        var error: String
        /// Nothing reached the server (connection refused): the batch certainly did not arrive.
        var refused: Bool
        var catalogError: CatalogError { CatalogError(.database, "ClickHouse: \(error)") }
    }

    private func query(_ sql: String) async throws(SendError) -> String {
        try await post(parameters: [:], body: sql)
    }

    private func post(parameters: [String: String], body: String, timeout: TimeAmount = .seconds(15)) async throws(SendError) -> String {
        var components = URLComponents()
        components.queryItems = (["database": "default", "output_format_json_quote_64bit_integers": "0"].merging(parameters) { $1 })
            .sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) }
        var request = HTTPClientRequest(url: endpoint + "/" + (components.string ?? ""))
        request.method = .POST
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            let text = String(buffer: try await response.body.collect(upTo: 256 << 20))
            guard response.status == .ok else {
                throw SendError(error: "HTTP \(response.status.code): \(text.prefix(500))", refused: false)
            }
            return text
        } catch let error as SendError {
            throw error
        } catch {
            let refused = "\(error)".contains("connectionRefused") || "\(error)".contains("Connection refused")
                || (error as? HTTPClientError) == .connectTimeout
            throw SendError(error: "\(error)", refused: refused)
        }
    }

    /// A ClickHouse string literal.
    static func quoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
    }

    // MARK: rows

    struct SessionID: Decodable { var id: String }

    struct SessionRow: Codable {
        var id, track, node: String
        var started_at: Double
        var bucket: Int64
        var ended_at: Double
        var subject_tag, listener: String
        var listened_seconds, fetched_seconds: Double
        var outcome: String
        var play, stalls, seeks, beacons: Int
        var rendition, codec, client_prefix, client_type, country: String
        var media_requests, playlist_requests: Int
        var bytes: Int64

        init(_ s: FinishedSession, node: String) {
            id = s.id
            track = s.track
            self.node = node
            started_at = s.startedAt
            bucket = Int64(s.startedAt.rounded(.down))
            ended_at = s.endedAt
            subject_tag = s.subjectTag ?? ""
            listener = s.listenerKey
            listened_seconds = s.listenedSeconds
            fetched_seconds = s.fetchedSeconds
            outcome = s.outcome.rawValue
            play = s.isPlay ? 1 : 0
            stalls = s.stalls
            seeks = s.seeks
            beacons = s.beacons
            rendition = s.rendition ?? ""
            codec = s.codec ?? ""
            client_prefix = s.clientPrefix ?? ""
            client_type = s.clientType
            country = s.country ?? ""
            media_requests = s.mediaRequests
            playlist_requests = s.playlistRequests
            bytes = s.bytes
        }
    }

    struct PeakRow: Codable {
        var track: String
        var minute: Int64
        var node: String
        var peak: Int
    }

    struct CountsRow: Decodable {
        var track: String
        var b: Int64
        var sessions, plays, completions, skips, abandons, bots, stalls, listeners: Int
        var listened: Double
    }

    struct PeakQueryRow: Decodable {
        var track: String
        var b: Int64
        var peak: Int
    }
}

/// Batches waiting for the analytics store, one file each (`<sequence>.sessions` or
/// `<sequence>.peaks`, JSON lines), written to a temporary name, fsynced and renamed, so a crash
/// leaves whole batches or nothing. Bounded by bytes: beyond `maxBytes` the oldest go.
struct AnalyticsSpool: Sendable {
    enum Kind { case sessions, peaks }

    let directory: String
    let maxBytes: Int

    init(directory: String, maxBytes: Int) throws(CatalogError) {
        self.directory = directory
        self.maxBytes = maxBytes
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CatalogError(.database, "cannot create the analytics buffer directory \(directory): \(error)")
        }
        // Half-written batches of a crash.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasSuffix(".tmp") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// Batch files, oldest first.
    func files() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".sessions") || $0.hasSuffix(".peaks") }.sorted()
    }

    /// Writes the batch; returns how many old files were dropped to stay within the bound.
    func append(sessions: [ClickHouseAnalyticsStore.SessionRow], peaks: [ClickHouseAnalyticsStore.PeakRow]) throws(CatalogError) -> Int {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let sequence = String(format: "%020llu", UInt64(Date().timeIntervalSince1970 * 1_000_000))
        var written = 0
        do {
            if !sessions.isEmpty {
                try write(name: sequence + ".sessions", lines: try sessions.map { String(decoding: try encoder.encode($0), as: UTF8.self) })
                written += 1
            }
            if !peaks.isEmpty {
                try write(name: sequence + ".peaks", lines: try peaks.map { String(decoding: try encoder.encode($0), as: UTF8.self) })
                written += 1
            }
        } catch let error as CatalogError {
            throw error
        } catch {
            throw CatalogError(.database, "cannot write the analytics buffer: \(error)")
        }
        return trim()
    }

    private func write(name: String, lines: [String]) throws(CatalogError) {
        var final = directory + "/" + name
        var n = 1
        while FileManager.default.fileExists(atPath: final) {
            final = directory + "/" + name.replacingOccurrences(of: ".", with: "-\(n).")
            n += 1
        }
        let temporary = final + ".tmp"
        do {
            guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600]),
                  let handle = FileHandle(forWritingAtPath: temporary) else {
                throw CatalogError(.database, "cannot create \(temporary)")
            }
            defer { try? handle.close() }
            try handle.write(contentsOf: Data((lines.joined(separator: "\n") + "\n").utf8))
            try handle.synchronize()
            try FileManager.default.moveItem(atPath: temporary, toPath: final)
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            throw CatalogError(.database, "cannot write the analytics buffer \(final): \(error)")
        }
    }

    private func trim() -> Int {
        var sizes = files().map { ($0, (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0)[.size] as? Int) ?? 0) }
        var total = sizes.reduce(0) { $0 + $1.1 }
        var dropped = 0
        while total > maxBytes, sizes.count > 1 {
            let (name, size) = sizes.removeFirst()
            remove(name)
            total -= size
            dropped += 1
        }
        return dropped
    }

    func read(_ name: String) -> (Kind, [String]) {
        let text = (try? String(contentsOfFile: directory + "/" + name, encoding: .utf8)) ?? ""
        return (name.hasSuffix(".sessions") ? .sessions : .peaks, text.split(separator: "\n").map(String.init))
    }

    func remove(_ name: String) {
        try? FileManager.default.removeItem(atPath: directory + "/" + name)
    }

    /// Removes the session lines matching `condition` from every batch; returns how many.
    func removeSessions(where condition: (String) -> Bool) -> Int {
        var removed = 0
        for name in files() where name.hasSuffix(".sessions") {
            let (_, lines) = read(name)
            let kept = lines.filter { !condition($0) }
            guard kept.count != lines.count else { continue }
            removed += lines.count - kept.count
            if kept.isEmpty {
                remove(name)
            } else {
                try? Data((kept.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/" + name), options: .atomic)
            }
        }
        return removed
    }
}
