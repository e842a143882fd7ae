/// An error from MediaCore: what went wrong, in words a caller can show, plus a
/// stable ``Code`` to switch on.
///
/// Errors that come from FFmpeg carry FFmpeg's own message and its numeric
/// result code (``underlyingCode``), never an FFmpeg constant.
public struct MediaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, extensible classification of a ``MediaError``.
    public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The bytes are not one of the supported audio formats (the message names what was seen).
        public static let unsupportedFormat = Code(rawValue: "unsupported_format")
        /// The file does not exist or cannot be opened.
        public static let fileNotFound = Code(rawValue: "file_not_found")
        /// Reading the file failed (I/O error, permission).
        public static let ioError = Code(rawValue: "io_error")
        /// The container or bitstream is malformed beyond recovery.
        public static let invalidData = Code(rawValue: "invalid_data")
        /// The file holds no decodable audio stream.
        public static let noAudioStream = Code(rawValue: "no_audio_stream")
        /// The codec is recognised but cannot be decoded here.
        public static let unsupportedCodec = Code(rawValue: "unsupported_codec")
        /// The stream declares parameters outside the supported range (sample rate, channels).
        public static let unsupportedParameters = Code(rawValue: "unsupported_parameters")
        /// The operation went over its time limit.
        public static let timedOut = Code(rawValue: "timed_out")
        /// The task doing the work was cancelled (e.g. a host shutting down).
        public static let cancelled = Code(rawValue: "cancelled")
        /// A library call failed for another reason (out of memory, internal error).
        public static let internalFailure = Code(rawValue: "internal_failure")
    }

    /// What kind of failure this is.
    public var code: Code
    /// A human-readable explanation, safe to show to the uploader.
    public var message: String
    /// FFmpeg's raw (negative) result code when the failure came from FFmpeg.
    public var underlyingCode: Int32?

    public init(_ code: Code, _ message: String, underlyingCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.underlyingCode = underlyingCode
    }

    public var description: String { "\(code): \(message)" }
}
