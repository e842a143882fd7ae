import Foundation
public import Logging
public import MediaCore
import Synchronization

/// The key service: generates each protected track's content key, keeps it in the catalog
/// wrapped by the key-encryption key (envelope encryption: the KEK stays in configuration, a file
/// or the environment), unwraps it for the packager and for entitled players, and re-wraps keys
/// under a new KEK without re-packaging.
///
/// Keys never reach a log line, a metric, an error message or an API response other than the
/// key route's body (``KeyRoutes``).
public struct KeyService: Sendable {
    let catalog: any Catalog
    let configuration: ProtectionConfiguration
    let dataDirectory: String
    let metrics: HostMetrics?
    let logger: Logger
    private let ring = KeyRingBox()

    public init(catalog: any Catalog, configuration: ProtectionConfiguration, dataDirectory: String, metrics: HostMetrics?, logger: Logger) {
        self.catalog = catalog
        self.configuration = configuration
        self.dataDirectory = dataDirectory
        self.metrics = metrics
        self.logger = logger
    }

    /// The KEKs, read (or, for the embedded default, created) on first use.
    func keys() throws(ProtectionError) -> KeyEncryptionKeys {
        if let loaded = ring.value.withLock({ $0 }) { return loaded }
        let loaded = try KeyEncryptionKeys.load(configuration, dataDirectory: dataDirectory)
        ring.value.withLock { $0 = loaded }
        return loaded
    }

    /// Gives `track` a content key for `method` (or returns the one it has).
    @discardableResult
    public func createKey(track: String, method: ProtectionConfiguration.Method) async throws -> ContentKeyRecord {
        guard method != .none else { throw ProtectionError(.unsupported, "no key is needed for method none") }
        if let existing = try await catalog.contentKey(track: track) { return existing }
        let kek = try keys()
        let keyID = Hex.encode(ContentKey.random().bytes)
        let record = ContentKeyRecord(trackID: track, keyID: keyID, method: method.rawValue,
                                      wrappedKey: try kek.wrap(ContentKey.random(), track: track, keyID: keyID, method: method.rawValue),
                                      kekID: kek.current.id, createdAt: Date())
        let stored = try await catalog.saveContentKey(record)
        if stored == record {
            metrics?.contentKeyCreated()
            logger.info("content key created", metadata: ["track": "\(track)", "keyId": "\(keyID)", "method": "\(method.rawValue)", "kek": "\(kek.current.id)"])
        }
        return stored
    }

    /// The protection of `track`'s segments, for the packager: nil when the track has no key.
    public func segmentProtection(track: String) async throws -> (record: ContentKeyRecord, protection: SegmentProtection)? {
        guard let record = try await catalog.contentKey(track: track) else { return nil }
        switch ProtectionConfiguration.Method(rawValue: record.method) {
        case .aes128?: return (record, .aes128(try keys().unwrap(record)))
        case .cenc?: return (record, .cenc(try keys().unwrap(record), keyID: Hex.decode(record.keyID) ?? []))
        case .cbcs?:
            // The constant IV is not secret (it is in every init segment): fresh per packaging.
            return (record, .cbcs(try keys().unwrap(record), keyID: Hex.decode(record.keyID) ?? [], constantIV: ContentKey.random().bytes))
        case .none?, nil:
            throw ProtectionError(.unsupported, "track \(track) asks for protection method \(record.method), which this host does not package")
        }
    }

    /// The content key of `track` named `keyID`, or nil when the track has no such key.
    func key(track: String, keyID: String) async throws -> ContentKey? {
        guard let record = try await catalog.contentKey(track: track), record.keyID == keyID else { return nil }
        return try keys().unwrap(record)
    }

    /// Re-wraps every content key wrapped by an earlier KEK under the current one; returns how
    /// many. Keys wrapped by a KEK the host does not hold are left (and logged): another host
    /// may hold it.
    @discardableResult
    public func rewrapAll() async throws -> Int {
        let kek = try keys()
        var moved = 0
        var skipped = Set<String>()
        while true {
            let batch = try await catalog.contentKeys(notWrappedBy: kek.current.id, limit: 200 + skipped.count)
                .filter { !skipped.contains($0.trackID) }
            if batch.isEmpty { break }
            for record in batch {
                do {
                    let key = try kek.unwrap(record)
                    let wrapped = try kek.wrap(key, track: record.trackID, keyID: record.keyID, method: record.method)
                    if try await catalog.rewrapContentKey(record, wrappedKey: wrapped, kekID: kek.current.id) { moved += 1 }
                } catch let error as ProtectionError {
                    skipped.insert(record.trackID)
                    logger.warning("content key left under its KEK", metadata: ["track": "\(record.trackID)", "kek": "\(record.kekID)", "reason": "\(error.message)"])
                }
            }
        }
        if moved > 0 || !skipped.isEmpty {
            logger.info("content keys re-wrapped", metadata: ["count": "\(moved)", "kek": "\(kek.current.id)", "leftUnderOtherKEKs": "\(skipped.count)"])
        }
        return moved
    }
}

/// The KEKs once loaded.
final class KeyRingBox: Sendable {
    let value = Mutex<KeyEncryptionKeys?>(nil)
}
