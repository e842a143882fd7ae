import Foundation
import Glibc

/// A live show recorded as it goes: 16-bit PCM WAV at the ladder's rate, written to
/// `{data}/live/recordings/` while the show runs (the header's sizes are rewritten every few
/// seconds, so a host that crashes leaves a readable file behind). When the show ends the file
/// is cut back to the end of the last source's audio (the fallback after it is not part of the
/// show) and handed to the ingest pipeline as a normal upload.
///
/// The file is written with plain `write(2)` from the session's task: about 192 KB a second,
/// a few KiB at a time.
final class LiveRecording {
    let path: String
    let sampleRate: Int
    let channelCount: Int
    private let descriptor: Int32
    private(set) var frames: Int64 = 0
    private var framesAtLastHeader: Int64 = 0
    /// Frames of the show proper: up to the end of the last source's audio.
    var showFrames: Int64 = 0

    static let headerBytes = 44

    init(path: String, sampleRate: Int, channelCount: Int) throws {
        self.path = path
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        try writeHeader()
        lseek(descriptor, off_t(Self.headerBytes), SEEK_SET)
    }

    deinit { close(descriptor) }

    /// Appends interleaved samples (clipped to 16 bits, rounded).
    func append(_ interleaved: [Float]) throws {
        guard !interleaved.isEmpty else { return }
        var pcm = [Int16](repeating: 0, count: interleaved.count)
        for i in interleaved.indices {
            pcm[i] = Int16(max(-32768, min(32767, (interleaved[i] * 32768).rounded())))
        }
        try pcm.withUnsafeBytes { bytes in try Self.writeAll(descriptor, bytes, at: nil) }
        frames += Int64(interleaved.count / channelCount)
        if frames - framesAtLastHeader >= Int64(5 * sampleRate) { try writeHeader() }
    }

    /// Cuts the file to the show's frames and writes the final header.
    func finish() throws {
        frames = showFrames
        guard ftruncate(descriptor, off_t(Self.headerBytes) + off_t(frames) * off_t(2 * channelCount)) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        try writeHeader()
        fsync(descriptor)
    }

    private func writeHeader() throws {
        try Self.header(dataBytes: frames * Int64(2 * channelCount), sampleRate: sampleRate, channelCount: channelCount)
            .withUnsafeBytes { try Self.writeAll(descriptor, $0, at: 0) }
        framesAtLastHeader = frames
    }

    /// A canonical 44-byte PCM WAV header (sizes clamped to 4 GiB).
    static func header(dataBytes: Int64, sampleRate: Int, channelCount: Int) -> [UInt8] {
        func le(_ value: Int, _ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        let data = Int(min(dataBytes, Int64(UInt32.max) - 36))
        return Array("RIFF".utf8) + le(36 + data, 4) + Array("WAVEfmt ".utf8) + le(16, 4) + le(1, 2) + le(channelCount, 2)
            + le(sampleRate, 4) + le(sampleRate * 2 * channelCount, 4) + le(2 * channelCount, 2) + le(16, 2)
            + Array("data".utf8) + le(data, 4)
    }

    /// Rewrites the header of a recording a crashed host left behind, from the file's size.
    static func repair(path: String) throws -> Int64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        guard size > Int64(headerBytes), let handle = FileHandle(forUpdatingAtPath: path) else { return 0 }
        defer { try? handle.close() }
        let head = try handle.read(upToCount: headerBytes) ?? Data()
        guard head.count == headerBytes, head.prefix(4) == Data("RIFF".utf8) else { return 0 }
        let channels = Int(head[22]) | Int(head[23]) << 8
        let rate = Int(head[24]) | Int(head[25]) << 8 | Int(head[26]) << 16 | Int(head[27]) << 24
        guard channels > 0, rate > 0 else { return 0 }
        let frameBytes = Int64(2 * channels)
        let dataBytes = (size - Int64(headerBytes)) / frameBytes * frameBytes
        try handle.truncate(atOffset: UInt64(Int64(headerBytes) + dataBytes))
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: header(dataBytes: dataBytes, sampleRate: rate, channelCount: channels))
        return dataBytes / frameBytes
    }

    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: off_t?) throws {
        var done = 0
        while done < bytes.count {
            let base = bytes.baseAddress! + done
            let n = offset.map { pwrite(descriptor, base, bytes.count - done, $0 + off_t(done)) } ?? write(descriptor, base, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            done += n
        }
    }
}
