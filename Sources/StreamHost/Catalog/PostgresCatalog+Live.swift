public import Foundation
import Logging
import PostgresNIO

/// Live state in PostgreSQL: mounts made through the API, and each show's origin lease (the
/// host that runs the show; the others relay it).
extension PostgresCatalog {
    public func saveLiveMount(name: String, json: String) async throws(CatalogError) {
        _ = try await perform {
            try await client.query("""
                INSERT INTO live_mount (name, configuration_json) VALUES (\(name), \(json))
                ON CONFLICT (name) DO UPDATE SET configuration_json = EXCLUDED.configuration_json, updated_at = now()
                """, logger: logger)
        }
    }

    public func deleteLiveMount(name: String) async throws(CatalogError) -> Bool {
        try await perform {
            try await Self.first(try await client.query("DELETE FROM live_mount WHERE name = \(name) RETURNING name", logger: logger)) {
                try $0.decode(String.self)
            } != nil
        }
    }

    public func claimLiveOrigin(mount: String, node: String, leaseSeconds: Double, now: Date) async throws(CatalogError) -> Bool {
        let (at, until) = (now.timeIntervalSince1970, now.timeIntervalSince1970 + leaseSeconds)
        return try await perform {
            try await Self.first(try await client.query("""
                INSERT INTO live_origin (mount, node, expires_at) VALUES (\(mount), \(node), \(until))
                ON CONFLICT (mount) DO UPDATE SET node = EXCLUDED.node, expires_at = EXCLUDED.expires_at
                WHERE live_origin.node = EXCLUDED.node OR live_origin.expires_at < \(at)
                RETURNING node
                """, logger: logger)) { try $0.decode(String.self) } != nil
        }
    }

    public func releaseLiveOrigin(mount: String, node: String) async throws(CatalogError) {
        _ = try await perform {
            try await client.query("DELETE FROM live_origin WHERE mount = \(mount) AND node = \(node)", logger: logger)
        }
    }

    public func liveOrigin(mount: String, now: Date) async throws(CatalogError) -> String? {
        let at = now.timeIntervalSince1970
        return try await perform {
            try await Self.first(try await client.query("SELECT node FROM live_origin WHERE mount = \(mount) AND expires_at >= \(at)", logger: logger)) {
                try $0.decode(String.self)
            }
        }
    }

    public func liveMounts() async throws(CatalogError) -> [(name: String, json: String)] {
        let rows = try await perform {
            try await Self.all(try await client.query("SELECT name, configuration_json FROM live_mount ORDER BY name", logger: logger)) {
                let (name, json) = try $0.decode((String, String).self)
                return [name, json]
            }
        }
        return rows.map { (name: $0[0], json: $0[1]) }
    }
}
