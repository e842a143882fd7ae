public import MediaCore

/// Why an upload was not accepted: a domain value (the API answers it through the one error
/// mapping, `streamhost ingest` through its exit codes).
public struct IntakeError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Sendable, Hashable {
        /// The bytes are not a format the host reads (sniffing failed).
        case unsupportedMedia
        /// A supported format that cannot be used: unreadable parameters, truncated, corrupt.
        case unusableMedia
        /// Larger than `upload.maxBytes`.
        case tooLarge(limit: Int)
        /// No bytes.
        case empty
        /// A `multipart/form-data` body without a boundary, malformed, or without a file part.
        case malformedBody
        /// The transcode queue holds `queue.maxDepth` jobs already.
        case queueFull
        /// The source could not be stored (object storage down): nothing was accepted.
        case storageUnavailable
        /// The host could not handle the file (a temporary file, a decoder failure).
        case internalFailure
    }

    /// What went wrong.
    public var kind: Kind
    /// Safe to show to the uploader.
    public var message: String

    /// An intake error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// A media error met while checking an upload: not a supported format, unusable, or (I/O,
    /// internal) the host's own failure.
    public init(media error: MediaError) {
        switch error.code {
        case .unsupportedFormat: self.init(.unsupportedMedia, error.message)
        case .ioError, .fileNotFound, .internalFailure: self.init(.internalFailure, error.message)
        default: self.init(.unusableMedia, error.message)
        }
    }

    public var description: String { "\(kind): \(message)" }
}
