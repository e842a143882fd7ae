import Foundation
import Glibc
import HTTPTypes
import NIOCore
import NIOPosix
@testable import StreamHost
import Testing

/// The fast path shares open descriptors between responses (``OpenFileCache``): a file must be
/// opened once per time to live, never outlive what the storage wrote or deleted through it,
/// and close when nobody holds it.
@Suite("OpenFileCache: shared descriptors for sendfile")
struct OpenFileCacheTests {
    /// Stands for an event loop.
    private final class Loop {}
    private let loopObject = Loop()
    private var loop: ObjectIdentifier { ObjectIdentifier(loopObject) }

    private func storage() throws -> LocalDiskStorage {
        try LocalDiskStorage(root: NSTemporaryDirectory() + "open-files-\(UUID().uuidString)")
    }

    private func contents(_ file: OpenFileCache.File) -> String {
        var bytes = [UInt8](repeating: 0, count: Int(file.info.size))
        let count = try? file.handle.withUnsafeFileDescriptor { pread($0, &bytes, bytes.count, 0) }
        return String(decoding: bytes.prefix(count ?? 0), as: UTF8.self)
    }

    /// A cache of 8 files living 10 s, and the path of a file `seg.m4s` holding `contents`.
    private func cacheWithOneFile(_ contents: String) throws -> (OpenFileCache, String) {
        let path = try storage().root + "/seg.m4s"
        try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
        return (OpenFileCache(capacity: 8, timeToLive: .seconds(10)), path)
    }

    /// What the descriptor `fd` of this process names now (nil: closed).
    private func target(ofDescriptor fd: CInt) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)")
    }

    @Test("one open file per object while it lives; opened again after its time to live")
    func shared() throws {
        let cache = OpenFileCache(capacity: 8, timeToLive: .seconds(10))
        let disk = try storage()
        try FileManager.default.createDirectory(atPath: disk.root + "/a", withIntermediateDirectories: true)
        let path = disk.root + "/a/seg-1.m4s"
        try Data("first".utf8).write(to: URL(fileURLWithPath: path))
        let start = NIODeadline.now()
        let one = try #require(cache.file(path: path, key: "a/seg-1.m4s", loop: loop, now: start))
        let two = try #require(cache.file(path: path, key: "a/seg-1.m4s", loop: loop, now: start + .seconds(9)))
        #expect(one === two)
        #expect(one.info.size == 5)
        #expect(contents(one) == "first")
        let later = try #require(cache.file(path: path, key: "a/seg-1.m4s", loop: loop, now: start + .seconds(10)))
        #expect(later !== one)
        #expect(cache.file(path: disk.root + "/a/missing", key: "a/missing", loop: loop) == nil)
        #expect(cache.file(path: disk.root + "/a", key: "a", loop: loop) == nil, "a directory is not an object")
    }

    @Test("the storage's own overwrites and deletes are seen at once")
    func coherent() async throws {
        let disk = try storage()
        try await disk.put(Array("old".utf8), key: "tracks/t1/v1/seg-1.m4s")
        try await disk.put(Array("other".utf8), key: "tracks/t10/v1/seg-1.m4s")
        let old = try #require(disk.sharedFile("tracks/t1/v1/seg-1.m4s", loop: loop))
        #expect(disk.sharedFile("tracks/t1/v1/seg-1.m4s", loop: loop) === old)
        try await disk.put(Array("newer".utf8), key: "tracks/t1/v1/seg-1.m4s")
        let new = try #require(disk.sharedFile("tracks/t1/v1/seg-1.m4s", loop: loop))
        #expect(new !== old)
        #expect(contents(new) == "newer")
        #expect(contents(old) == "old", "a response already sending the old file keeps it whole")

        let staged = NSTemporaryDirectory() + "staged-\(UUID().uuidString)"
        try Data("moved".utf8).write(to: URL(fileURLWithPath: staged))
        try await disk.put(fileAt: staged, key: "tracks/t1/v1/seg-1.m4s")
        #expect(contents(try #require(disk.sharedFile("tracks/t1/v1/seg-1.m4s", loop: loop))) == "moved")

        let sibling = try #require(disk.sharedFile("tracks/t10/v1/seg-1.m4s", loop: loop))
        try await disk.delete(prefix: "tracks/t1")
        #expect(disk.sharedFile("tracks/t1/v1/seg-1.m4s", loop: loop) == nil)
        #expect(disk.sharedFile("tracks/t10/v1/seg-1.m4s", loop: loop) === sibling, "a track whose id extends the deleted one's is kept")
        #expect(disk.sharedFile("../etc/passwd", loop: loop) == nil)
    }

    @Test("a file closes when the cache and the last response let go of it")
    func closes() throws {
        let (cache, path) = try cacheWithOneFile("x")
        var descriptor: CInt = -1
        do {
            let file = try #require(cache.file(path: path, key: "seg.m4s", loop: loop))
            descriptor = try file.handle.withUnsafeFileDescriptor { $0 }
            #expect(target(ofDescriptor: descriptor) == path)
            cache.forget(path: path)
            withExtendedLifetime(file) {
                #expect(target(ofDescriptor: descriptor) == path, "a response still holds it")
            }
        }
        #expect(target(ofDescriptor: descriptor) != path)
    }

    @Test("each event loop has its own descriptor: two loops sending one file at once both succeed")
    func perLoop() async throws {
        let disk = try storage()
        try await disk.put(Array(repeating: 7, count: 1 << 20), key: "tracks/t/v1/big.m4a")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = [group.next(), group.next()]
        #expect(loops[0] !== loops[1])
        let files = loops.map { disk.sharedFile("tracks/t/v1/big.m4a", loop: ObjectIdentifier($0)) }
        #expect(files[0] != nil && files[1] != nil && files[0] !== files[1])
        // Each loop uses its handle many times while the other does: NIO throws EBUSY for a
        // handle in use on another thread.
        let sums = try await withThrowingTaskGroup(of: Int.self) { tasks in
            for (loop, file) in zip(loops, files) {
                tasks.addTask {
                    try await loop.submit {
                        var total = 0
                        var byte: UInt8 = 0
                        for offset in 0..<20_000 {
                            total += try file!.handle.withUnsafeFileDescriptor { pread($0, &byte, 1, off_t(offset * 50)) == 1 ? Int(byte) : 0 }
                        }
                        return total
                    }.get()
                }
            }
            return try await tasks.reduce(into: []) { $0.append($1) }
        }
        try await group.shutdownGracefully()
        #expect(sums == [140_000, 140_000])
    }

    @Test("a request without range or validators gets the file's kept 200 fields, the same as planned afresh")
    func unconditional() throws {
        let (cache, path) = try cacheWithOneFile("0123456789")
        let file = try #require(cache.file(path: path, key: "seg.m4s", loop: loop))
        let immutable = "public, max-age=31536000, immutable"
        func fields(_ plan: ObjectResponder.Plan) -> HTTPFields? {
            if case .full(let fields) = plan { return fields }
            return nil
        }
        let fresh = try #require(fields(ObjectResponder.plan(info: file.info, request: [:], contentType: "video/iso.segment", cacheControl: immutable)))
        #expect(fields(file.unconditionalPlan(contentType: "video/iso.segment", cacheControl: immutable)) == fresh)
        #expect(fields(file.unconditionalPlan(contentType: "video/iso.segment", cacheControl: immutable)) == fresh)
        #expect(fresh[.contentLength] == "10" && fresh[.eTag] != nil && fresh[.lastModified] != nil)
        let other = try #require(fields(file.unconditionalPlan(contentType: "audio/mp4", cacheControl: immutable)))
        #expect(other[.contentType] == "audio/mp4")

        #expect(ObjectResponder.isUnconditional([.accept: "*/*", .userAgent: "x"]))
        for field: HTTPField.Name in [.range, .ifRange, .ifNoneMatch, .ifModifiedSince] {
            #expect(!ObjectResponder.isUnconditional([field: "x"]), "\(field)")
        }
    }

    @Test("the number of open files is bounded")
    func bounded() throws {
        let cache = OpenFileCache(capacity: 4, timeToLive: .seconds(10))
        let disk = try storage()
        let start = NIODeadline.now()
        for index in 0..<50 {
            let path = disk.root + "/seg-\(index).m4s"
            try Data("x".utf8).write(to: URL(fileURLWithPath: path))
            _ = try #require(cache.file(path: path, key: "seg-\(index).m4s", loop: loop, now: start + .milliseconds(Int64(index))))
            #expect(cache.count <= 4)
        }
        // Expired entries go at the next open after their time to live.
        let path = disk.root + "/seg-0.m4s"
        _ = cache.file(path: path, key: "seg-0.m4s", loop: loop, now: start + .seconds(20))
        #expect(cache.count == 1)
    }
}
