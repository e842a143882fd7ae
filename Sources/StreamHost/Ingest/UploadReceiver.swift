import Foundation
import Glibc
import NIOCore

/// Receives an upload's body into a temporary file: the raw body, or the first file part of
/// `multipart/form-data`, streamed chunk by chunk (never whole in memory), with the size cap
/// (`upload.maxBytes`) enforced as bytes arrive, so an oversized upload is refused (413) before
/// it is read to the end.
struct UploadReceiver: Sendable {
    /// Largest accepted upload in bytes.
    let limit: Int

    /// Refuses a declared `Content-Length` over the limit before any byte is read.
    func checkDeclared(length: Int) throws(IntakeError) {
        guard length <= limit else { throw IntakeError(.tooLarge(limit: limit), "the upload is \(length) bytes; the limit is \(limit)") }
    }

    /// Streams `body` to a new file at `path`; returns the byte count (never 0: an empty upload
    /// is an error).
    func receive<Body: AsyncSequence>(_ body: Body, contentType: String, to path: String) async throws -> Int where Body.Element == ByteBuffer {
        let file = UploadFile(path: path, limit: limit)
        guard file.descriptor >= 0 else {
            throw IntakeError(.internalFailure, "cannot create a temporary file: \(String(cString: strerror(errno)))")
        }
        defer { file.close() }
        if contentType.lowercased().hasPrefix("multipart/form-data") {
            guard let boundary = Self.boundary(contentType) else {
                throw IntakeError(.malformedBody, "multipart/form-data without a boundary")
            }
            var reader = try MultipartFileReader(boundary: boundary)
            for try await chunk in body {
                try reader.push(chunk.readableBytesView) { (bytes) throws(IntakeError) in try file.write(bytes) }
            }
            try reader.finish()
            guard reader.fileComplete else {
                throw IntakeError(.malformedBody, "the multipart body has no file part")
            }
        } else {
            for try await chunk in body {
                try file.write(chunk.readableBytesView)
            }
        }
        guard file.written > 0 else { throw IntakeError(.empty, "the upload has no bytes") }
        return file.written
    }

    /// The `boundary` parameter of a `multipart/form-data` content type.
    static func boundary(_ contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
        }
        return nil
    }
}

/// A temporary upload file written with POSIX calls (small appends to local disk; the
/// descriptor never leaves the receiving task). Enforces the size cap.
private final class UploadFile {
    let descriptor: Int32
    let limit: Int
    private(set) var written = 0

    init(path: String, limit: Int) {
        descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        self.limit = limit
    }

    func write(_ bytes: some Collection<UInt8>) throws(IntakeError) {
        written += bytes.count
        guard written <= limit else {
            throw IntakeError(.tooLarge(limit: limit), "the upload exceeds the limit of \(limit) bytes")
        }
        func writeAll(_ buffer: UnsafeBufferPointer<UInt8>) -> Bool {
            var offset = 0
            while offset < buffer.count {
                let result = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                guard result > 0 else { return true }
                offset += result
            }
            return false
        }
        let failed = bytes.withContiguousStorageIfAvailable(writeAll) ?? Array(bytes).withUnsafeBufferPointer(writeAll)
        if failed == true {
            throw IntakeError(.internalFailure, "cannot write the upload: \(String(cString: strerror(errno)))")
        }
    }

    func close() { _ = Glibc.close(descriptor) }
}
