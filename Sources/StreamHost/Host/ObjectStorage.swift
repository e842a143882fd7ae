public import Foundation
import Glibc
import CoreFoundation
public import NIOCore
import NIOPosix

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
    /// Opens an object for reading: its metadata at once, its bytes on demand. Nil when there
    /// is no object at `key`.
    func open(_ key: String) async throws(StorageError) -> (any StoredObject)?
    /// A URL a client can GET the object from directly for `expires` seconds (S3 presigned
    /// URLs), or nil when the backend has none (local disk).
    func presignedURL(for key: String, expires: Int) -> String?
    /// Whether the backend is known to be down right now (S3: its circuit breaker is open), so
    /// that a failure says nothing about the object or the job.
    var isUnavailable: Bool { get }
}

extension ObjectStorage {
    public func presignedURL(for key: String, expires: Int) -> String? { nil }
    public var isUnavailable: Bool { false }
}

/// What delivery needs to know about an object before sending it.
public struct ObjectInfo: Sendable, Hashable {
    public var size: Int64
    public var lastModified: Date
    /// A strong validator that changes whenever the object's bytes do.
    public var entityTag: String

    public init(size: Int64, lastModified: Date, entityTag: String) {
        self.size = size
        self.lastModified = lastModified
        self.entityTag = entityTag
    }
}

/// An object opened for reading (``ObjectStorage/open(_:)``); releases what it holds when
/// the last reference goes.
public protocol StoredObject: Sendable {
    var info: ObjectInfo { get }
    /// Sends the bytes of `range` to `body` in order, in chunks of at most `chunkSize` bytes,
    /// holding at most one chunk in memory at a time.
    func read(_ range: ClosedRange<Int64>, chunkSize: Int, into body: (ByteBuffer) async throws -> Void) async throws
    /// The whole object when it is already in memory (small objects), else nil.
    var contents: ByteBuffer? { get }
}

enum StoredObjects {
    /// `length` bytes of `fd` from `offset` (blocking: call on a thread pool), or nil on a short read.
    static func preadFully(_ fd: CInt, length: Int, offset: Int64) -> ByteBuffer? {
        var buffer = ByteBufferAllocator().buffer(capacity: length)
        let read = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { pointer in
            var done = 0
            while done < length {
                let n = pread(fd, pointer.baseAddress! + done, length - done, off_t(offset) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                done += n
            }
            return done
        }
        return read == length ? buffer : nil
    }

    /// Sends `range` of an in-memory object in slices of at most `chunkSize` bytes (no copy).
    static func read(_ contents: ByteBuffer, _ range: ClosedRange<Int64>, chunkSize: Int,
                     into body: (ByteBuffer) async throws -> Void) async throws {
        var offset = Int(range.lowerBound)
        while offset <= Int(range.upperBound) {
            let length = min(chunkSize, Int(range.upperBound) - offset + 1)
            try await body(contents.getSlice(at: offset, length: length)!)
            offset += length
        }
    }
}

/// Validates a storage key: relative, `/`-separated, no empty, `.` or `..` components.
func validateKey(_ key: String) throws(StorageError) {
    guard isPlainRelativePath(key) else { throw StorageError(key: key, "invalid key") }
}

/// Whether `path` is non-empty and none of its `/`-separated segments is empty, `.` or `..`
/// (one pass over the bytes: it runs for every object served).
func isPlainRelativePath(_ path: some StringProtocol) -> Bool {
    var segmentLength = 0
    var segmentDots = 0
    for byte in path.utf8 {
        if byte == UInt8(ascii: "/") {
            guard segmentLength > 0, segmentDots != segmentLength || segmentLength > 2 else { return false }
            segmentLength = 0
            segmentDots = 0
        } else {
            segmentLength += 1
            if byte == UInt8(ascii: ".") { segmentDots += 1 }
        }
    }
    return segmentLength > 0 && (segmentDots != segmentLength || segmentLength > 2)
}

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
            return errno == ENOENT || errno == ENOTDIR ? .success(nil) : .failure(StorageError(key: key, String(cString: strerror(errno))))
        }
        var status = stat()
        guard fstat(fd, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            Glibc.close(fd)
            return .success(nil)
        }
        let size = Int64(status.st_size)
        let modified = Date(timeIntervalSince1970: Double(status.st_mtim.tv_sec) + Double(status.st_mtim.tv_nsec) / 1e9)
        // Like nginx: size and modification time, in hex (objects are written once, by rename).
        let tag = String(status.st_mtim.tv_sec, radix: 16) + String(status.st_mtim.tv_nsec / 1000, radix: 16) + "-" + String(size, radix: 16)
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
