import Foundation
import GRDB

/// Listening analytics in the catalog database (migration v6): finished sessions and the
/// minute, hour and day rollups kept up to date as sessions end.
extension SQLiteCatalog: AnalyticsStore {
    static let analyticsSchema = """
        CREATE TABLE listening_session (
            id TEXT NOT NULL, started_at REAL NOT NULL, track_id TEXT NOT NULL, subject_tag TEXT, ended_at REAL NOT NULL,
            listened_seconds REAL NOT NULL, fetched_seconds REAL NOT NULL, outcome TEXT NOT NULL, play INTEGER NOT NULL,
            stalls INTEGER NOT NULL, seeks INTEGER NOT NULL, beacons INTEGER NOT NULL, rendition TEXT, codec TEXT,
            client_prefix TEXT, client_type TEXT NOT NULL, country TEXT, media_requests INTEGER NOT NULL,
            playlist_requests INTEGER NOT NULL, bytes INTEGER NOT NULL,
            PRIMARY KEY (id, started_at)
        );
        CREATE INDEX listening_session_track ON listening_session(track_id, started_at);
        CREATE INDEX listening_session_subject ON listening_session(subject_tag);
        CREATE INDEX listening_session_started ON listening_session(started_at);
        CREATE TABLE listening_rollup (
            track_id TEXT NOT NULL, granularity TEXT NOT NULL, bucket INTEGER NOT NULL,
            sessions INTEGER NOT NULL, plays INTEGER NOT NULL, completions INTEGER NOT NULL, skips INTEGER NOT NULL,
            abandons INTEGER NOT NULL, bots INTEGER NOT NULL, listened_seconds REAL NOT NULL, stalls INTEGER NOT NULL,
            peak_listeners INTEGER NOT NULL, listeners BLOB NOT NULL,
            PRIMARY KEY (track_id, granularity, bucket)
        );
        CREATE INDEX listening_rollup_bucket ON listening_rollup(granularity, bucket);
        """

    public func recordListening(_ sessions: [FinishedSession], peaks: [ListenerPeak]) async throws(CatalogError) {
        guard !sessions.isEmpty || !peaks.isEmpty else { return }
        try await write { db in
            for s in sessions {
                try db.execute(sql: """
                    INSERT OR REPLACE INTO listening_session (id, started_at, track_id, subject_tag, ended_at, listened_seconds,
                        fetched_seconds, outcome, play, stalls, seeks, beacons, rendition, codec, client_prefix, client_type, country,
                        media_requests, playlist_requests, bytes)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [s.id, s.startedAt, s.track, s.subjectTag, s.endedAt, s.listenedSeconds, s.fetchedSeconds,
                                     s.outcome.rawValue, s.isPlay, s.stalls, s.seeks, s.beacons, s.rendition, s.codec,
                                     s.clientPrefix, s.clientType, s.country, s.mediaRequests, s.playlistRequests, s.bytes])
            }
            // One read-modify-write per bucket touched.
            var rows: [String: RollupRow] = [:]
            func row(_ track: String, _ interval: RollupInterval, _ bucket: Int64) throws -> String {
                let key = "\(track)\n\(interval.rawValue)\n\(bucket)"
                if rows[key] == nil {
                    rows[key] = try Self.rollup(db, track: track, interval: interval, bucket: bucket)
                        ?? RollupRow(track: track, interval: interval, bucket: bucket)
                }
                return key
            }
            for session in sessions {
                for interval in RollupInterval.allCases {
                    let key = try row(session.track, interval, interval.bucket(session.startedAt))
                    rows[key]!.add(session)
                }
            }
            for peak in peaks {
                for interval in RollupInterval.allCases {
                    let key = try row(peak.track, interval, interval.bucket(Double(peak.minute)))
                    rows[key]!.peakListeners = max(rows[key]!.peakListeners, peak.peak)
                }
            }
            for r in rows.values {
                try db.execute(sql: """
                    INSERT OR REPLACE INTO listening_rollup (track_id, granularity, bucket, sessions, plays, completions, skips, abandons,
                        bots, listened_seconds, stalls, peak_listeners, listeners)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [r.track, r.interval.rawValue, r.bucket, r.sessions, r.plays, r.completions, r.skips, r.abandons,
                                     r.bots, r.listenedSeconds, r.stalls, r.peakListeners, Data(r.listeners.serialized)])
            }
        }
    }

    private static func rollup(_ db: Database, track: String, interval: RollupInterval, bucket: Int64) throws -> RollupRow? {
        try Row.fetchOne(db, sql: "SELECT * FROM listening_rollup WHERE track_id = ? AND granularity = ? AND bucket = ?",
                         arguments: [track, interval.rawValue, bucket]).map(rollup)
    }

    private static func rollup(_ row: Row) -> RollupRow {
        var r = RollupRow(track: row["track_id"], interval: RollupInterval(rawValue: row["granularity"]) ?? .minute, bucket: row["bucket"])
        r.sessions = row["sessions"]
        r.plays = row["plays"]
        r.completions = row["completions"]
        r.skips = row["skips"]
        r.abandons = row["abandons"]
        r.bots = row["bots"]
        r.listenedSeconds = row["listened_seconds"]
        r.stalls = row["stalls"]
        r.peakListeners = row["peak_listeners"]
        let blob: Data = row["listeners"]
        r.listeners = HyperLogLog(serialized: Array(blob)) ?? HyperLogLog()
        return r
    }

    public func rollups(track: String?, interval: RollupInterval, from: Int64, to: Int64) async throws(CatalogError) -> [RollupRow] {
        try await read { db in
            if let track {
                return try Row.fetchAll(db, sql: """
                    SELECT * FROM listening_rollup WHERE track_id = ? AND granularity = ? AND bucket >= ? AND bucket < ? ORDER BY bucket
                    """, arguments: [track, interval.rawValue, from, to]).map(Self.rollup)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM listening_rollup WHERE granularity = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
                                    arguments: [interval.rawValue, from, to]).map(Self.rollup)
        }
    }

    public func breakdown(track: String, dimension: String, from: Double, to: Double) async throws(CatalogError) -> [BreakdownEntry] {
        guard ["codec", "rendition", "client_type", "country"].contains(dimension) else { return [] }
        return try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT COALESCE(\(dimension), 'unknown') AS value, COUNT(*) AS sessions, SUM(listened_seconds) AS listened
                FROM listening_session WHERE track_id = ? AND started_at >= ? AND started_at < ? AND outcome != 'bot'
                GROUP BY value ORDER BY sessions DESC, value
                """, arguments: [track, from, to]).map { row in
                BreakdownEntry(value: row["value"], sessions: row["sessions"], listenedSeconds: row["listened"] ?? 0)
            }
        }
    }

    public func deleteListening(subjectTag: String) async throws(CatalogError) -> Int {
        try await write { db in
            try db.execute(sql: "DELETE FROM listening_session WHERE subject_tag = ?", arguments: [subjectTag])
            return db.changesCount
        }
    }

    public func purgeListening(sessionsBefore: Double, rollupsBefore: Double) async throws(CatalogError) {
        try await write { db in
            try db.execute(sql: "DELETE FROM listening_session WHERE started_at < ?", arguments: [sessionsBefore])
            try db.execute(sql: "DELETE FROM listening_rollup WHERE granularity = 'minute' AND bucket < ?", arguments: [sessionsBefore])
            try db.execute(sql: "DELETE FROM listening_rollup WHERE bucket < ?", arguments: [rollupsBefore])
        }
    }
}
