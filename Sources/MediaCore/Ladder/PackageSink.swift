#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Receives the files a packaging run makes, by path relative to the track's version folder
/// (`cmaf/aac-128/seg-1.m4s`, `progressive/flac.flac`, `waveform.json`). Called concurrently.
public protocol PackageSink: Sendable {
    /// Stores `bytes` as `relativePath` (segments, init segments, waveforms).
    func write(_ bytes: [UInt8], to relativePath: String) async throws(MediaError)
    /// Stores the file at `path`, a temporary file the packager has finished, as `relativePath`,
    /// and takes the file over: the sink moves it into place or removes it when done.
    /// Progressive files arrive this way, so a whole file never has to be held in memory. The
    /// default implementation reads the file into memory, calls ``write(_:to:)`` and removes it.
    func write(fileAt path: String, to relativePath: String) async throws(MediaError)
}

extension PackageSink {
    public func write(fileAt path: String, to relativePath: String) async throws(MediaError) {
        defer { _ = unlink(path) }
        try await write(try readWholeFile(path), to: relativePath)
    }
}

/// The bytes of the file at `path`.
func readWholeFile(_ path: String) throws(MediaError) -> [UInt8] {
    let file = try ReadOnlyFile(path: path)
    let bytes = file.read(at: 0, count: Int(file.size))
    guard bytes.count == file.size else { throw MediaError(.ioError, "cannot read \(path): short read") }
    return bytes
}
