import Foundation
import Glibc
import CoreFoundation
import NIOCore
import NIOPosix
import SystemPackage

/// Objects as files under a root directory, the key being the relative path.
///
/// Every write goes to a temporary file in the same directory, is flushed, and is renamed
/// into place, so a crash leaves the old object or the new one, never half of one.
public struct LocalDiskStorage: ObjectStorage {
    /// The directory holding the objects.
    public let root: String
    /// Descriptors shared by the responses that send objects with `sendfile`; writes and
    /// deletes here drop their entries.
    let openFiles = OpenFileCache()

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
            defer { openFiles.forget(path: target) }
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
            openFiles.forget(path: target)
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
        defer { openFiles.forget(prefix: path(prefix.hasSuffix("/") ? prefix : prefix + "/")) }
        for key in keys.filter(TrackLayout.isManifest) + keys.filter({ !TrackLayout.isManifest($0) }) {
            if unlink(path(key)) != 0 && errno != ENOENT {
                throw StorageError(key: key, String(cString: strerror(errno)))
            }
        }
        try? FileManager.default.removeItem(atPath: path(prefix))
    }

    public func localPath(of key: String) -> String? {
        (try? validateKey(key)) == nil ? nil : path(key)
    }

    /// The object at `key` open for `sendfile` on the event loop `loop`, shared with the other
    /// responses sending it there (``OpenFileCache``); nil when there is none or it cannot be
    /// opened.
    func sharedFile(_ key: String, loop: ObjectIdentifier) -> OpenFileCache.File? {
        guard (try? validateKey(key)) != nil else { return nil }
        return openFiles.file(path: path(key), key: key, loop: loop)
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

    /// Objects up to this size are read whole when opened (one trip to the I/O thread pool
    /// for open, stat and read: media segments are 10–300 KiB).
    static let prefetchLimit = 512 * 1024

    /// Opens a regular file read-only and describes it (blocking: on the I/O thread pool, or on
    /// an event loop for the fast path, as nginx does). nil when there is no such file; the
    /// caller owns the descriptor.
    static func openFile(_ file: String, key: String) -> Result<(CInt, ObjectInfo)?, StorageError> {
        let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            // No such file, a component that is a file, or a name longer than the file system
            // allows (a request's id can be anything): no such object, not a storage failure.
            return errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG
                ? .success(nil) : .failure(StorageError(key: key, String(cString: strerror(errno))))
        }
        // swift-system's Stat: reading the C struct's fields here directly fails to compile in
        // debug builds (Swift attributes `struct stat` to NIO's CNIOLinux module there).
        guard let status = try? FileDescriptor(rawValue: fd).stat(), status.type == .regular else {
            Glibc.close(fd)
            return .success(nil)
        }
        let size = status.size
        // timespec is {time_t tv_sec; long tv_nsec} (two words) on Linux; read as such for the same reason.
        let (seconds, nanoseconds) = withUnsafeBytes(of: status.st_mtim) { raw in
            (Int64(raw.load(as: Int.self)), Int64(raw.load(fromByteOffset: MemoryLayout<Int>.size, as: Int.self)))
        }
        let modified = Date(timeIntervalSince1970: Double(seconds) + Double(nanoseconds) / 1e9)
        // Like nginx: size and modification time, in hex (objects are written once, by rename).
        let tag = String(seconds, radix: 16) + String(nanoseconds / 1000, radix: 16) + "-" + String(size, radix: 16)
        return .success((fd, ObjectInfo(size: size, lastModified: modified, entityTag: tag)))
    }

    public func open(_ key: String) async throws(StorageError) -> (any StoredObject)? {
        try validateKey(key)
        let file = path(key)
        let result: Result<LocalStoredObject?, StorageError>
        do {
            result = try await NIOThreadPool.singleton.runIfActive { () -> Result<LocalStoredObject?, StorageError> in
                switch Self.openFile(file, key: key) {
                case .failure(let error): return .failure(error)
                case .success(nil): return .success(nil)
                case .success(let (fd, info)?):
                    if info.size <= Self.prefetchLimit {
                        let buffer = StoredObjects.preadFully(fd, length: Int(info.size), offset: 0)
                        Glibc.close(fd)
                        guard let buffer else { return .failure(StorageError(key: key, "short read")) }
                        return .success(LocalStoredObject(key: key, info: info, contents: buffer, descriptor: -1))
                    }
                    return .success(LocalStoredObject(key: key, info: info, contents: nil, descriptor: fd))
                }
            }
        } catch {
            throw StorageError(key: key, "I/O thread pool unavailable: \(error)")
        }
        return try result.get()
    }
}

/// A file of ``LocalDiskStorage``: small ones held in memory, larger ones read with `pread`
/// on NIO's blocking-I/O thread pool, one chunk at a time.
final class LocalStoredObject: StoredObject {
    let key: String
    let info: ObjectInfo
    let contents: ByteBuffer?
    let descriptor: CInt

    init(key: String, info: ObjectInfo, contents: ByteBuffer?, descriptor: CInt) {
        self.key = key
        self.info = info
        self.contents = contents
        self.descriptor = descriptor
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    func read(_ range: ClosedRange<Int64>, chunkSize: Int, into body: (ByteBuffer) async throws -> Void) async throws {
        precondition(range.upperBound < info.size)
        if let contents {
            try await StoredObjects.read(contents, range, chunkSize: chunkSize, into: body)
            return
        }
        let fd = descriptor
        let key = key
        var offset = range.lowerBound
        while offset <= range.upperBound {
            let length = Int(min(Int64(chunkSize), range.upperBound - offset + 1))
            let start = offset
            let chunk = try await NIOThreadPool.singleton.runIfActive { () throws -> ByteBuffer in
                guard let buffer = StoredObjects.preadFully(fd, length: length, offset: start) else {
                    throw StorageError(key: key, "short read (the object changed while being read)")
                }
                return buffer
            }
            try await body(chunk)
            offset += Int64(length)
        }
    }
}
