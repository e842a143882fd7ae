import ArgumentParser
import Foundation
import MediaCore
import StreamHost

/// The CLI's side of the one error mapping (the API's is `APIError(mapping:)`): the same domain
/// errors, as exit codes.
///
/// | code | meaning |
/// | --- | --- |
/// | 0 | success |
/// | 1 | anything else |
/// | 2 | usage (ArgumentParser) |
/// | 3 | unsupported, invalid or refused media (`MediaError`, `IntakeError` media, too large, empty) |
/// | 4 | I/O: a file not found or not readable |
/// | 5 | timed out |
/// | 6 | a service unavailable: catalog, object storage, or the queue full (retry later) |
func exitCode(for error: any Error) -> ExitCode {
    switch error {
    case let error as MediaError:
        switch error.code {
        case .fileNotFound, .ioError: ExitCode(4)
        case .timedOut: ExitCode(5)
        default: ExitCode(3)
        }
    case let error as IntakeError:
        switch error.kind {
        case .unsupportedMedia, .unusableMedia, .tooLarge, .empty, .malformedBody: ExitCode(3)
        case .queueFull, .storageUnavailable: ExitCode(6)
        case .internalFailure: ExitCode(1)
        }
    case is CatalogError, is StorageError: ExitCode(6)
    default: ExitCode(1)
    }
}

/// What to tell the user about `error`: the domain error's own message.
func errorMessage(_ error: any Error) -> String {
    switch error {
    case let error as MediaError: error.message
    case let error as IntakeError: error.message
    case let error as CatalogError: "catalog: \(error.message)"
    case let error as StorageError: error.description
    default: "\(error)"
    }
}

/// Prints `error` and returns its exit code.
func fail(_ error: any Error) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(errorMessage(error))\n".utf8))
    return exitCode(for: error)
}
