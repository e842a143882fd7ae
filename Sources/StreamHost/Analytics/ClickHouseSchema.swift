import Foundation

/// What ClickHouse holds for listening analytics: the tables and materialised views (SQL for
/// ClickHouse 18.16, the version Debian ships), and the rows as they travel as JSON lines.
enum ClickHouseSchema {
    /// The tables and views, created when missing (several nodes may race: all idempotent).
    static func statements(_ db: String) -> [String] {
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


    struct SessionID: Decodable { var id: String }

    struct SessionSubject: Decodable { var subject_tag: String }

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
