internal import CFFmpeg

/// A raw FFmpeg result code (`int` returned by most libav* calls), kept inside
/// MediaCore. Negative values are errors; ``MediaError`` is what leaves the module.
struct AVResult: RawRepresentable, Hashable, Sendable {
    var rawValue: Int32
    init(rawValue: Int32) { self.rawValue = rawValue }
    init(_ rawValue: Int32) { self.rawValue = rawValue }

    static let eof = AVResult(veza_averror_eof())
    static let again = AVResult(veza_averror_eagain())
    static let invalidData = AVResult(veza_averror_invaliddata())
    static let exit = AVResult(veza_averror_exit())
    static let outOfMemory = AVResult(veza_averror_enomem())
    static let notFound = AVResult(veza_averror(ENOENT))
    static let permissionDenied = AVResult(veza_averror(EACCES))

    var isError: Bool { rawValue < 0 }

    /// FFmpeg's message for this code (what `av_err2str` gives in C).
    var message: String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
            veza_av_strerror(rawValue, buffer.baseAddress!, 256)
            return String(cString: buffer.baseAddress!)
        }
    }

    static func ~= (pattern: AVResult, value: AVResult) -> Bool { pattern == value }

    /// Maps the code to a public error with `context` prepended to FFmpeg's message.
    func error(_ context: String, default code: MediaError.Code = .invalidData) -> MediaError {
        let mapped: MediaError.Code
        switch self {
        case .notFound: mapped = .fileNotFound
        case .permissionDenied: mapped = .ioError
        case .exit: mapped = .timedOut
        case .outOfMemory: mapped = .internalFailure
        default: mapped = code
        }
        return MediaError(mapped, "\(context): \(message)", underlyingCode: rawValue)
    }
}

extension Int32 {
    /// Throws the FFmpeg error this return value carries, if it is negative.
    @discardableResult
    func check(_ context: @autoclosure () -> String, default code: MediaError.Code = .invalidData) throws(MediaError) -> Int32 {
        if self < 0 { throw AVResult(self).error(context(), default: code) }
        return self
    }
}

/// FFmpeg logs to stderr by default; a library must not. Done once per process.
enum FFmpegLogging {
    static let quiet: Void = { veza_av_log_quiet() }()
}
