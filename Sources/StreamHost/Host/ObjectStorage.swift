import Foundation

/// A failure of an ``ObjectStorage`` backend.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    /// The key involved.
    public var key: String
    /// What went wrong.
    public var message: String

    public init(key: String, _ message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "storage error on \(key): \(message)" }
}

/// Where published tracks and kept sources live, addressed by the keys of DESIGN.md §3
/// (`tracks/{id}/v{n}/…`, `tracks/{id}/source/original.{ext}`).
///
/// The pipeline and the routes speak only this protocol: the embedded default is
/// ``LocalDiskStorage``; an S3-compatible backend implements the same calls. Writes of one
/// object are atomic (a reader sees the old object, no object, or the whole new one).
public protocol ObjectStorage: Sendable {
    /// Stores the file at `path` under `key`, consuming the file (backends may move it).
    func put(fileAt path: String, key: String) async throws(StorageError)
    /// Stores `bytes` under `key`.
    func put(_ bytes: [UInt8], key: String) async throws(StorageError)
    /// The object's size, or nil when there is no object at `key`.
    func size(of key: String) async throws(StorageError) -> Int?
    /// Every key under `prefix`, sorted.
    func list(prefix: String) async throws(StorageError) -> [String]
    /// Deletes every object under `prefix`. Objects named `manifest.json` go first, so a
    /// reader never finds a manifest whose files are already gone.
    func delete(prefix: String) async throws(StorageError)
    /// A local file holding the object, when the backend has one (disk: zero-copy serving
    /// and decoding in place); nil otherwise, and callers then use ``fetch(_:to:)``.
    func localPath(of key: String) -> String?
    /// Copies the object to a local file.
    func fetch(_ key: String, to path: String) async throws(StorageError)
    /// Proves the backend can write, read and delete (for `/readyz`).
    func check() async throws(StorageError)
}

/// Validates a storage key: relative, `/`-separated, no empty, `.` or `..` components.
func validateKey(_ key: String) throws(StorageError) {
    let parts = key.split(separator: "/", omittingEmptySubsequences: false)
    guard !key.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
        throw StorageError(key: key, "invalid key")
    }
}

/// Objects as files under a root directory, the key being the relative path.
///
/// Every write goes to a temporary file in the same directory, is flushed, and is renamed
/// into place, so a crash leaves the old object or the new one, never half of one.
public struct LocalDiskStorage: ObjectStorage {
    /// The directory holding the objects.
    public let root: String

    /// Uses (and creates) `root`.
    public init(root: String) throws(StorageError) {
        self.root = root
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        } catch {
            throw StorageError(key: root, "cannot create the storage directory: \(error.localizedDescription)")
        }
    }

    private func path(_ key: String) -> String { root + "/" + key }

    public func put(fileAt source: String, key: String) async throws(StorageError) {
        try validateKey(key)
        let target = path(key)
        do {
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            // rename(2) is atomic and free when both paths are on one file system…
            if rename(source, target) == 0 { return }
            // …otherwise copy to a temporary name beside the target, then rename.
            let temporary = target + ".part-\(UUID().uuidString)"
            try FileManager.default.copyItem(atPath: source, toPath: temporary)
            guard rename(temporary, target) == 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(atPath: temporary)
                throw StorageError(key: key, reason)
            }
            try? FileManager.default.removeItem(atPath: source)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(key: key, error.localizedDescription)
        }
    }

    public func put(_ bytes: [UInt8], key: String) async throws(StorageError) {
        try validateKey(key)
        let target = path(key)
        do {
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: target), options: .atomic)
        } catch {
            throw StorageError(key: key, error.localizedDescription)
        }
    }

    public func size(of key: String) async throws(StorageError) -> Int? {
        try validateKey(key)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path(key), isDirectory: &isDirectory), !isDirectory.boolValue else { return nil }
        do {
            return (try FileManager.default.attributesOfItem(atPath: path(key))[.size] as? NSNumber)?.intValue
        } catch {
            throw StorageError(key: key, error.localizedDescription)
        }
    }

    public func list(prefix: String) async throws(StorageError) -> [String] {
        let base = path(prefix)
        guard let enumerator = FileManager.default.enumerator(atPath: base) else { return [] }
        var keys: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue,
               !relative.contains(".part-") {
                keys.append((prefix.hasSuffix("/") ? prefix : prefix + "/") + relative)
            }
        }
        return keys.sorted()
    }

    public func delete(prefix: String) async throws(StorageError) {
        try validateKey(prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix)
        let keys = try await list(prefix: prefix)
        for key in keys.filter({ $0.hasSuffix("/manifest.json") }) + keys.filter({ !$0.hasSuffix("/manifest.json") }) {
            if unlink(path(key)) != 0 && errno != ENOENT {
                throw StorageError(key: key, String(cString: strerror(errno)))
            }
        }
        try? FileManager.default.removeItem(atPath: path(prefix))
    }

    public func localPath(of key: String) -> String? {
        (try? validateKey(key)) == nil ? nil : path(key)
    }

    public func fetch(_ key: String, to destination: String) async throws(StorageError) {
        try validateKey(key)
        do {
            try FileManager.default.copyItem(atPath: path(key), toPath: destination)
        } catch {
            throw StorageError(key: key, error.localizedDescription)
        }
    }

    public func check() async throws(StorageError) {
        let key = ".readyz/\(UUID().uuidString)"
        try await put(Array("ok".utf8), key: key)
        guard try await size(of: key) == 2 else { throw StorageError(key: key, "a written object reads back wrong") }
        try await delete(prefix: ".readyz")
    }
}
