public import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

/// A file's bytes in `range` as an async sequence of buffers, read with `pread` on NIO's
/// blocking-I/O pool, 1 MiB at a time: request bodies streamed from disk (uploads to S3,
/// `streamhost ingest --server`) without reading the file into memory. Errors are
/// ``StorageError``s naming the path.
public struct FileChunks: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    /// The file.
    public let path: String
    /// The bytes to read.
    public let range: Range<Int64>
    static let chunk = 1 << 20

    /// The bytes of `path` in `range`.
    public init(path: String, range: Range<Int64>) {
        self.path = path
        self.range = range
    }

    /// Closes the file when the iterator goes away, also when the consumer stops early.
    final class Descriptor: Sendable {
        let fd: CInt
        init(_ fd: CInt) { self.fd = fd }
        deinit { close(fd) }
    }

    /// Reads the next chunk.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let path: String
        var offset: Int64
        let end: Int64
        var descriptor: Descriptor?

        public mutating func next() async throws -> ByteBuffer? {
            guard offset < end else {
                descriptor = nil
                return nil
            }
            if descriptor == nil {
                let fd = open(path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw StorageError(key: path, String(cString: strerror(errno))) }
                descriptor = Descriptor(fd)
            }
            let length = Int(Swift.min(Int64(FileChunks.chunk), end - offset))
            let file = descriptor!
            let start = offset
            let path = self.path
            let buffer = try await NIOThreadPool.singleton.runIfActive { () throws -> ByteBuffer in
                guard let buffer = StoredObjects.preadFully(file.fd, length: length, offset: start) else { throw StorageError(key: path, "short read") }
                return buffer
            }
            offset += Int64(length)
            if offset >= end { descriptor = nil }
            return buffer
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(path: path, offset: range.lowerBound, end: range.upperBound, descriptor: nil) }
}
