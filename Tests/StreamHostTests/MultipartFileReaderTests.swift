import Foundation
@testable import StreamHost
import Testing

/// The upload's multipart reader as a pure value: every way a body can be cut into pieces, and
/// the bodies it must refuse with a typed error (one of them stopped the process under
/// multipart-kit 4.7.1; the fuzz harness found it).
@Suite("Multipart uploads: the first file part of a multipart/form-data body, read in pieces")
struct MultipartFileReaderTests {
    static let body = Array(("preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nA title\r\n"
        + "--XyZ  \r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").utf8)
        + Array("\r\n--XyQ, --XyZ without a line break before it, \r\n-XyZ and \r\n--Xy\r\n".utf8) + (0..<600).map { UInt8($0 % 256) }
        + Array("\r\n--XyZ\r\nContent-Disposition: form-data; name=\"other\"; filename=\"b\"\r\n\r\nsecond\r\n--XyZ--\r\nepilogue".utf8)
    static let content = Array("\r\n--XyQ, --XyZ without a line break before it, \r\n-XyZ and \r\n--Xy\r\n".utf8) + (0..<600).map { UInt8($0 % 256) }

    static func read(_ body: [UInt8], boundary: String = "XyZ", pieces: Int) throws(IntakeError) -> [UInt8] {
        var reader = try MultipartFileReader(boundary: boundary)
        var file: [UInt8] = []
        var start = 0
        let size = max(1, body.count / pieces)
        while start < body.count {
            let end = min(body.count, start + size)
            try reader.push(body[start..<end]) { (bytes) throws(IntakeError) in file += bytes }
            start = end
        }
        try reader.finish()
        guard reader.fileComplete else { throw IntakeError(.malformedBody, "no file part") }
        return file
    }

    @Test("The first file part's bytes exactly, however the body is cut (one piece to one byte a piece)")
    func everySplit() throws {
        for pieces in [1, 2, 3, 7, 64, Self.body.count] {
            #expect(try Self.read(Self.body, pieces: pieces) == Self.content, "\(pieces) pieces")
        }
        // Every place of a cut into two pieces (a delimiter or a header split anywhere).
        for cut in 1..<Self.body.count {
            var reader = try MultipartFileReader(boundary: "XyZ")
            var file: [UInt8] = []
            try reader.push(Self.body[..<cut]) { (bytes) throws(IntakeError) in file += bytes }
            try reader.push(Self.body[cut...]) { (bytes) throws(IntakeError) in file += bytes }
            try reader.finish()
            #expect(file == Self.content && reader.fileComplete, "cut at \(cut)")
        }
        // A body that starts with its delimiter, a part with no header fields before the file.
        let bare = Array("--b\r\n\r\nignored\r\n--b\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n\r\n--b--".utf8)
        #expect(try Self.read(bare, boundary: "b", pieces: 5) == [])
    }

    @Test("Refused with malformed_body, never a crash", arguments: [
        // A header name with bytes over 0x7F: multipart-kit 4.7.1 indexed a 128-entry table with them.
        "--a b\r\nContent-Dis\u{E9}\u{E9}position: form-data; name=\"file\"; filename=\"x\"\r\n\r\n0123\r\n--a b--\r\n",
        "--XyZ\r\nno colon here\r\n\r\ndata\r\n--XyZ--",
        "--XyZ\r\n: empty name\r\n\r\ndata\r\n--XyZ--",
        "--XyZ junk\r\n\r\n",
        "--XyZ\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\ncut short",
        "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nno file\r\n--XyZ--",
        "no delimiter at all",
    ])
    func refused(_ text: String) {
        let boundary = text.hasPrefix("--a b") ? "a b" : "XyZ"
        #expect(throws: IntakeError.self) { try Self.read(Array(text.utf8), boundary: boundary, pieces: 3) }
    }

    @Test("Headers over 16 KiB, padding over 64 bytes and boundaries outside 1–70 characters are refused")
    func limits() {
        let long = "--XyZ\r\nX-Long: " + String(repeating: "a", count: 17 << 10) + "\r\n\r\n"
        #expect(throws: IntakeError.self) { try Self.read(Array(long.utf8), pieces: 40) }
        let padded = "--XyZ" + String(repeating: " ", count: 65) + "\r\n\r\n"
        #expect(throws: IntakeError.self) { try Self.read(Array(padded.utf8), pieces: 1) }
        #expect(throws: IntakeError.self) { try MultipartFileReader(boundary: "") }
        #expect(throws: IntakeError.self) { try MultipartFileReader(boundary: String(repeating: "b", count: 71)) }
    }
}
