#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A temporary file of interleaved Float32 PCM, removed when released.
final class Spool: @unchecked Sendable {  // safe: written only in pass 1 and read only in pass 2, by one task at a time
    private let descriptor: Int32
    private var written: Int64 = 0

    init() throws(MediaError) {
        let (fd, path) = try makeTemporaryFile("veza-spool")
        _ = unlink(path)  // gone from the directory once closed
        descriptor = fd
    }

    deinit { close(descriptor) }

    func append(_ samples: UnsafeBufferPointer<Float>) throws(MediaError) {
        let bytes = UnsafeRawBufferPointer(samples)
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(written) + off_t(done))
            guard n > 0 else { throw MediaError(.ioError, "writing the PCM spool failed (disk full?)") }
            done += n
        }
        written += Int64(bytes.count)
    }

    func read(frame: Int64, count: Int, channels: Int) throws(MediaError) -> [Float] {
        let total = count * channels
        var failed = false
        let samples = [Float](unsafeUninitializedCapacity: total) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            var done = 0
            let start = off_t(frame) * off_t(channels * 4)
            while done < raw.count {
                let n = pread(descriptor, raw.baseAddress! + done, raw.count - done, start + off_t(done))
                if n <= 0 { failed = true; break }
                done += n
            }
            initialized = failed ? 0 : total
        }
        if failed { throw MediaError(.ioError, "reading the PCM spool failed") }
        return samples
    }
}
