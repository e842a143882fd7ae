public import Foundation
import Logging
import PostgresNIO

/// Forensic watermarking's records in PostgreSQL (``WatermarkSessionRecord``).
extension PostgresCatalog {
    public func markWatermarked(track: String, at date: Date) async throws(CatalogError) {
        _ = try await perform {
            try await client.query("""
                INSERT INTO watermark_track (track_id, created_at) VALUES (\(track), \(date.timeIntervalSince1970))
                ON CONFLICT (track_id) DO NOTHING
                """, logger: logger)
        }
    }

    public func isWatermarked(track: String) async throws(CatalogError) -> Bool {
        try await perform {
            try await Self.first(try await client.query("SELECT track_id FROM watermark_track WHERE track_id = \(track)", logger: logger)) {
                try $0.decode(String.self)
            } != nil
        }
    }

    public func unmarkWatermarked(track: String) async throws(CatalogError) {
        _ = try await perform {
            try await client.query("DELETE FROM watermark_track WHERE track_id = \(track)", logger: logger)
        }
    }

    public func recordWatermarkSession(_ record: WatermarkSessionRecord) async throws(CatalogError) {
        _ = try await perform {
            try await client.query("""
                INSERT INTO watermark_session (track_id, session_id, subject, subject_tag, created_at)
                VALUES (\(record.trackID), \(record.sessionID), \(record.subject), \(record.subjectTag), \(record.createdAt.timeIntervalSince1970))
                ON CONFLICT (track_id, session_id) DO UPDATE SET subject = COALESCE(watermark_session.subject, excluded.subject)
                """, logger: logger)
        }
    }

    public func watermarkSessions(track: String) async throws(CatalogError) -> [WatermarkSessionRecord] {
        try await perform {
            try await Self.all(try await client.query("""
                SELECT track_id, session_id, subject, subject_tag, created_at FROM watermark_session
                WHERE track_id = \(track) ORDER BY created_at
                """, logger: logger)) { row in
                let (track, session, subject, tag, created) = try row.decode((String, String, String?, String?, Double).self)
                return WatermarkSessionRecord(trackID: track, sessionID: session, subject: subject, subjectTag: tag,
                                              createdAt: Date(timeIntervalSince1970: created))
            }
        }
    }
}
