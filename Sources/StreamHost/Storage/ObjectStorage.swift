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
