/// Reads a `multipart/form-data` body (RFC 7578 over RFC 2046 §5.1.1) as its bytes arrive, in
/// pieces of any size, and hands out the content of its first file part (the first part whose
/// `Content-Disposition` has a `filename`) without holding it in memory: at most a delimiter's
/// length of it is kept back between pieces. The other parts are read and dropped.
///
/// Hand-written rather than multipart-kit's parser: multipart-kit 4.7.1 (the version here)
/// stops the process on a header name with a byte over 0x7F (its character table has 128
/// entries); the multipart fuzz harness found it in seconds (Fuzz/Regressions/multipart).
struct MultipartFileReader {
    /// The most bytes a part's header section may have.
    static let maximumHeaderBytes = 16 << 10
    /// The most transport padding (spaces, tabs) accepted after a delimiter.
    static let maximumPadding = 64

    private enum State: Equatable {
        case preamble
        case afterDelimiter
        case headers
        case body(isFile: Bool)
        case epilogue
    }

    /// `CRLF--boundary`: every delimiter, the first included (the body is read as if it began
    /// with a CRLF).
    private let delimiter: [UInt8]
    private var pending: [UInt8] = [13, 10]
    private var state = State.preamble
    /// Whether the file part has been read to its end.
    private(set) var fileComplete = false

    /// - Throws: ``IntakeError`` (`malformedBody`) for a boundary outside 1 to 70 characters.
    init(boundary: String) throws(IntakeError) {
        guard (1...70).contains(boundary.utf8.count) else {
            throw IntakeError(.malformedBody, "the multipart boundary must have 1 to 70 characters")
        }
        delimiter = Array("\r\n--".utf8) + Array(boundary.utf8)
    }

    /// Reads the next piece of the body; `write` gets the file part's content, in order.
    ///
    /// - Throws: ``IntakeError`` (`malformedBody`) for a body that breaks the syntax, or what
    ///   `write` throws.
    mutating func push(_ bytes: some Collection<UInt8>, file write: (ArraySlice<UInt8>) throws(IntakeError) -> Void) throws(IntakeError) {
        pending.append(contentsOf: bytes)
        var start = 0
        defer { pending.removeFirst(start) }
        while true {
            switch state {
            case .preamble, .body:
                let isFile = state == .body(isFile: true)
                if let found = Self.find(delimiter, in: pending, from: start) {
                    if isFile {
                        try write(pending[start..<found])
                        fileComplete = true
                    }
                    start = found + delimiter.count
                    state = .afterDelimiter
                } else {
                    // The end may be the start of a delimiter: keep it for the next piece.
                    let keep = max(start, pending.count - (delimiter.count - 1))
                    if isFile, keep > start { try write(pending[start..<keep]) }
                    start = keep
                    return
                }
            case .afterDelimiter:
                // `--` closes the body; otherwise transport padding, then CRLF and the part's headers.
                guard pending.count - start >= 2 else { return }
                if pending[start] == UInt8(ascii: "-"), pending[start + 1] == UInt8(ascii: "-") {
                    state = .epilogue
                    continue
                }
                var index = start
                while index < pending.count, pending[index] == 32 || pending[index] == 9 { index += 1 }
                guard index - start <= Self.maximumPadding else { throw Self.malformed("a delimiter is followed by too much padding") }
                guard pending.count - index >= 2 else { return }
                guard pending[index] == 13, pending[index + 1] == 10 else {
                    throw Self.malformed("a delimiter line has other characters after the boundary")
                }
                start = index + 2
                state = .headers
            case .headers:
                let end: Int
                if pending.count - start >= 2, pending[start] == 13, pending[start + 1] == 10 {
                    end = start // no header fields
                } else if let found = Self.find([13, 10, 13, 10], in: pending, from: start) {
                    end = found + 2
                } else {
                    guard pending.count - start <= Self.maximumHeaderBytes else { throw Self.malformed("a part's headers are over 16 KiB") }
                    return
                }
                guard end - start <= Self.maximumHeaderBytes else { throw Self.malformed("a part's headers are over 16 KiB") }
                var isFile = false
                for line in pending[start..<end].split(separator: 13, omittingEmptySubsequences: true) {
                    let line = line.first == 10 ? line.dropFirst() : line
                    guard !line.isEmpty else { continue }
                    guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                          line[..<colon].allSatisfy(Self.isTokenCharacter) else {
                        throw Self.malformed("a part has a malformed header field")
                    }
                    let name = String(decoding: line[..<colon], as: UTF8.self).lowercased()
                    let value = String(decoding: line[(colon + 1)...], as: UTF8.self)
                    if name == "content-disposition", value.contains("filename"), !fileComplete { isFile = true }
                }
                start = end + 2
                state = .body(isFile: isFile)
            case .epilogue:
                start = pending.count
                return
            }
        }
    }

    /// Ends the body.
    ///
    /// - Throws: ``IntakeError`` (`malformedBody`) when it ends inside the file part (the upload
    ///   was cut short).
    func finish() throws(IntakeError) {
        if state == .body(isFile: true) { throw Self.malformed("the multipart body ends inside the file part") }
    }

    private static func malformed(_ reason: String) -> IntakeError {
        IntakeError(.malformedBody, "the multipart body is malformed: \(reason)")
    }

    /// RFC 9110 `tchar`.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): true
        default: Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
        }
    }

    /// The index of the first occurrence of `needle` in `haystack` at or after `from`.
    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard let first = needle.first, haystack.count - from >= needle.count else { return nil }
        var index = from
        let last = haystack.count - needle.count
        while index <= last {
            guard let candidate = haystack[index...last].firstIndex(of: first) else { return nil }
            if haystack[candidate..<(candidate + needle.count)].elementsEqual(needle) { return candidate }
            index = candidate + 1
        }
        return nil
    }
}
