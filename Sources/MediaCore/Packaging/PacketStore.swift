#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A packet's size and duration: all a container's index (seek table, `stsz`, `stts`, Ogg
/// lacing) needs, without its bytes.
struct PacketShape: Sendable, Hashable {
    var size: Int
    /// In the track's timescale.
    var duration: Int
}

/// Where a progressive-file writer reads packets from: an array in memory
/// (``PacketsInMemory``) or a spool file (``PacketSpool``), so one writer serves both.
protocol PacketPayloads {
    /// Every packet's size and duration, in order.
    var shapes: [PacketShape] { get }
    /// The bytes of packet `index`.
    func data(_ index: Int) -> [UInt8]
    /// Writes the payloads of `range`, back to back, to `out`.
    func copy(_ range: Range<Int>, to out: inout some ByteOutput)
}

/// Where a progressive-file writer puts bytes: a `[UInt8]` or a ``FileOutput``.
///
/// Not throwing, like `FILE *`: a file output remembers its first failure and its owner checks
/// it when done, so the writers stay simple and shared.
protocol ByteOutput {
    mutating func write(_ bytes: UnsafeRawBufferPointer)
}

extension ByteOutput {
    mutating func write(_ bytes: [UInt8]) { bytes.withUnsafeBytes { write($0) } }
}

extension Array: ByteOutput where Element == UInt8 {
    mutating func write(_ bytes: UnsafeRawBufferPointer) { append(contentsOf: bytes) }
}

/// Packets kept in memory (the public `file(packets:)` writers).
struct PacketsInMemory: PacketPayloads {
    let packets: [EncodedPacket]
    let shapes: [PacketShape]

    init(_ packets: [EncodedPacket]) {
        self.packets = packets
        shapes = packets.map { PacketShape(size: $0.data.count, duration: $0.duration) }
    }

    func data(_ index: Int) -> [UInt8] { packets[index].data }

    func copy(_ range: Range<Int>, to out: inout some ByteOutput) {
        for index in range { out.write(packets[index].data) }
    }
}

/// Creates a temporary file under `$TMPDIR` (else `/tmp`); returns its descriptor and path.
func makeTemporaryFile(_ prefix: String) throws(MediaError) -> (descriptor: Int32, path: String) {
    let directory = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array("\(directory)/\(prefix)-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw MediaError(.ioError, "cannot create a temporary file in \(directory): \(String(cString: strerror(errno)))") }
    let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    return (fd, path)
}

/// Reads `count` bytes at `offset` of `descriptor` into `buffer`; false on error or end of file.
private func preadFully(_ descriptor: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int64) -> Bool {
    var done = 0
    while done < buffer.count {
        let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

/// Writes all of `bytes` to `descriptor` at its current position; false on error.
private func writeFully(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = write(descriptor, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        done += n
    }
    return true
}

/// One rendition's encoded packets, spooled to an unlinked temporary file as they are made,
/// with only their sizes and durations in memory: a progressive file needs every packet
/// (its index comes first), and keeping them as `[[UInt8]]` until the end held most of a
/// packaging run's memory (the FLAC rendition of 5 minutes alone is about 50 MiB).
final class PacketSpool: PacketPayloads, @unchecked Sendable {  // safe: single owner, the rendition's encode task, which appends and then reads
    private let descriptor: Int32
    private(set) var shapes: [PacketShape] = []
    /// Byte position of each packet in the file, and the end.
    private var starts: [Int64] = [0]
    /// The first read or write error; checked by the owner when done.
    private(set) var failure: MediaError?

    init() throws(MediaError) {
        let (fd, path) = try makeTemporaryFile("veza-packets")
        _ = unlink(path)  // gone from the directory; the space is freed when closed
        descriptor = fd
    }

    deinit { close(descriptor) }

    var count: Int { shapes.count }

    func append(_ packets: [EncodedPacket]) {
        for packet in packets {
            if failure == nil {
                let ok = packet.data.withUnsafeBytes { bytes in
                    var done = 0
                    while done < bytes.count {
                        let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(starts[starts.count - 1]) + off_t(done))
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { return false }
                        done += n
                    }
                    return true
                }
                if !ok { failure = MediaError(.ioError, "writing the packet spool failed (disk full?)") }
            }
            shapes.append(PacketShape(size: packet.data.count, duration: packet.duration))
            starts.append(starts[starts.count - 1] + Int64(packet.data.count))
        }
    }

    func data(_ index: Int) -> [UInt8] {
        let size = shapes[index].size
        var ok = true
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            ok = preadFully(descriptor, UnsafeMutableRawBufferPointer(buffer), at: starts[index])
            initialized = size
        }
        if !ok {
            if failure == nil { failure = MediaError(.ioError, "reading the packet spool failed") }
            return [UInt8](repeating: 0, count: size)
        }
        return bytes
    }

    /// The packets of `range`, read back.
    func packets(_ range: Range<Int>) -> [EncodedPacket] {
        range.map { EncodedPacket(data: data($0), duration: shapes[$0].duration) }
    }

    func copy(_ range: Range<Int>, to out: inout some ByteOutput) {
        guard !range.isEmpty else { return }
        var offset = starts[range.lowerBound]
        let end = starts[range.upperBound]
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        while offset < end {
            let part = UnsafeMutableRawBufferPointer(rebasing: chunk[..<Int(min(Int64(chunk.count), end - offset))])
            guard preadFully(descriptor, part, at: offset) else {
                if failure == nil { failure = MediaError(.ioError, "reading the packet spool failed") }
                return
            }
            out.write(UnsafeRawBufferPointer(part))
            offset += Int64(part.count)
        }
    }
}

/// A new temporary file written through a 256 KiB buffer; ``finish()`` flushes and closes
/// it and reports the first error. The caller owns the file at ``path`` afterwards.
final class FileOutput: ByteOutput {
    let path: String
    private var descriptor: Int32
    private var buffer: [UInt8] = []
    private(set) var byteCount = 0
    private var failure: MediaError?
    private static let capacity = 1 << 18

    init(_ prefix: String) throws(MediaError) {
        (descriptor, path) = try makeTemporaryFile(prefix)
        buffer.reserveCapacity(Self.capacity)
    }

    deinit {
        if descriptor >= 0 {
            close(descriptor)
            _ = unlink(path)  // never finished: not handed to anyone
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) {
        byteCount += bytes.count
        guard failure == nil else { return }
        if buffer.count + bytes.count > Self.capacity { flush() }
        if bytes.count >= Self.capacity {
            if !writeFully(descriptor, bytes) { failure = MediaError(.ioError, "writing \(path) failed (disk full?)") }
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    private func flush() {
        guard !buffer.isEmpty, failure == nil else { return }
        if !buffer.withUnsafeBytes({ writeFully(descriptor, $0) }) { failure = MediaError(.ioError, "writing \(path) failed (disk full?)") }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes the file; throws the first write error (and removes the file).
    func finish() throws(MediaError) {
        flush()
        let closed = close(descriptor) == 0
        descriptor = -1
        if let failure {
            _ = unlink(path)
            throw failure
        }
        guard closed else {
            _ = unlink(path)
            throw MediaError(.ioError, "closing \(path) failed")
        }
    }
}
