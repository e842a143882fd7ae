import Foundation
import Logging
import PostgresNIO

/// Content keys in PostgreSQL, wrapped (``ContentKeyRecord``).
extension PostgresCatalog {
    public func saveContentKey(_ record: ContentKeyRecord) async throws(CatalogError) -> ContentKeyRecord {
        _ = try await perform {
            try await client.query("""
                INSERT INTO content_key (track_id, key_id, method, wrapped_key, kek_id, created_at)
                VALUES (\(record.trackID), \(record.keyID), \(record.method), \(record.wrappedKey), \(record.kekID),
                        \(record.createdAt.timeIntervalSince1970))
                ON CONFLICT (track_id) DO NOTHING
                """, logger: logger)
        }
        return try await contentKey(track: record.trackID) ?? record
    }

    public func contentKey(track: String) async throws(CatalogError) -> ContentKeyRecord? {
        try await perform {
            try await Self.first(try await client.query("""
                SELECT track_id, key_id, method, wrapped_key, kek_id, created_at FROM content_key WHERE track_id = \(track)
                """, logger: logger), Self.contentKey)
        }
    }

    public func deleteContentKey(track: String) async throws(CatalogError) {
        _ = try await perform {
            try await client.query("DELETE FROM content_key WHERE track_id = \(track)", logger: logger)
        }
    }

    public func contentKeys(notWrappedBy kekID: String, limit: Int) async throws(CatalogError) -> [ContentKeyRecord] {
        try await perform {
            try await Self.all(try await client.query("""
                SELECT track_id, key_id, method, wrapped_key, kek_id, created_at FROM content_key
                WHERE kek_id <> \(kekID) ORDER BY track_id LIMIT \(limit)
                """, logger: logger), Self.contentKey)
        }
    }

    public func rewrapContentKey(_ record: ContentKeyRecord, wrappedKey: String, kekID: String) async throws(CatalogError) -> Bool {
        try await perform {
            try await Self.first(try await client.query("""
                UPDATE content_key SET wrapped_key = \(wrappedKey), kek_id = \(kekID)
                WHERE track_id = \(record.trackID) AND wrapped_key = \(record.wrappedKey) RETURNING track_id
                """, logger: logger)) { try $0.decode(String.self) } != nil
        }
    }

    static func contentKey(_ row: PostgresRow) throws -> ContentKeyRecord {
        let (track, keyID, method, wrapped, kek, created) = try row.decode((String, String, String, String, String, Double).self)
        return ContentKeyRecord(trackID: track, keyID: keyID, method: method, wrappedKey: wrapped, kekID: kek,
                                createdAt: Date(timeIntervalSince1970: created))
    }
}
