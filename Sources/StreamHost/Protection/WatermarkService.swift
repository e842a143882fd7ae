import Crypto
import Foundation
public import Logging
public import MediaCore
import StreamKit
import Synchronization

/// Forensic A/B watermarking in the host: which tracks are watermarked, each track's keys, the
/// playback sessions a leaked copy can be traced to, and each session's code.
///
/// - **Keys.** Every key derives from one host secret (``ProtectionConfiguration/watermarkSecret``,
///   a file, or the embedded `{dataDirectory}/watermark.b64`) by HMAC-SHA256 with the track id:
///   the embedding key (MediaCore's `WatermarkKey`: the chips and the variants' path tags) and,
///   apart, the key of the sessions' codes (StreamKit's `WatermarkSessionCode`). Nothing about
///   them is stored in the catalog, so nothing there can leak them; the secret must stay the
///   same for as long as a track's leaks should be traced.
/// - **Sessions.** Each playback session of a watermarked track is recorded once (its id, the
///   token subject it was issued to or that subject's tag) before a playlist of it is served:
///   the detector's candidates.
public struct WatermarkService: Sendable {
    let catalog: any Catalog
    let configuration: ProtectionConfiguration
    let dataDirectory: String
    let logger: Logger
    private let state = WatermarkServiceState()

    public init(catalog: any Catalog, configuration: ProtectionConfiguration, dataDirectory: String, logger: Logger) {
        self.catalog = catalog
        self.configuration = configuration
        self.dataDirectory = dataDirectory
        self.logger = logger
    }

    /// The host secret, read (or, for the embedded default, created) on first use.
    func secret() throws(ProtectionError) -> SymmetricKey {
        if let known = state.secret.withLock({ $0 }) { return known }
        let bytes = try loadSecretKey(configured: configuration.watermarkSecret, file: configuration.watermarkSecretFile,
                                      defaultPath: dataDirectory + "/watermark.b64",
                                      names: ("protection.watermarkSecret", "the watermark secret file"))
        let key = SymmetricKey(data: bytes)
        state.secret.withLock { $0 = key }
        return key
    }

    private func derive(_ label: String, track: String) throws(ProtectionError) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array("\(label)\n\(track)".utf8), using: try secret()))
    }

    /// The embedding key of `track`.
    public func key(track: String) throws(ProtectionError) -> WatermarkKey {
        WatermarkKey(bytes: try derive("veza-watermark-embedding-v1", track: track))!
    }

    /// The key of `track`'s session codes (a different key from the embedding's).
    public func codeKey(track: String) throws(ProtectionError) -> [UInt8] {
        try derive("veza-watermark-sessions-v1", track: track)
    }

    /// The A/B sequence of playback session `session` of `track`: variant B of segment `k`
    /// (from 0) where bit `k` is set.
    public func variants(track: String, session: String, count: Int) throws(ProtectionError) -> [Bool] {
        WatermarkSessionCode(key: try codeKey(track: track), session: session).bits(count: count)
    }

    /// How the packager watermarks `track`, or nil when it is not watermarked.
    public func packaging(track: String) async throws -> WatermarkPackaging? {
        guard try await isWatermarked(track: track) else { return nil }
        return WatermarkPackaging(key: try key(track: track))
    }

    /// Whether `track` is watermarked. A track is marked before its catalog row exists and the
    /// mark never changes, so answers are kept (a bounded number).
    public func isWatermarked(track: String) async throws(CatalogError) -> Bool {
        if let known = state.marks.withLock({ $0[track] }) { return known }
        let marked = try await catalog.isWatermarked(track: track)
        state.marks.withLock { marks in
            if marks.count >= 10_000 { marks.removeAll(keepingCapacity: true) }
            marks[track] = marked
        }
        return marked
    }

    /// Records playback session `session` of the watermarked `track`, issued to `subject` when
    /// known, unless this host recorded it already. Returns once the catalog has it, so a session
    /// is a candidate before it is served a single segment.
    public func register(track: String, session: PlaybackSessionLabel, subject: String?) async throws(CatalogError) {
        let key = track + "/" + session.id
        let known = state.registered.withLock { registered -> Bool in
            // With a subject, a session known only by its tag is recorded again (it gains the subject).
            if registered[key] == true || (registered[key] == false && subject == nil) { return true }
            return false
        }
        if known { return }
        try await catalog.recordWatermarkSession(WatermarkSessionRecord(trackID: track, sessionID: session.id, subject: subject,
                                                                        subjectTag: session.subjectTag, createdAt: Date()))
        state.registered.withLock { registered in
            if registered.count >= 100_000 { registered.removeAll(keepingCapacity: true) }
            registered[key] = subject != nil
        }
    }
}

/// What a ``WatermarkService`` keeps between calls.
final class WatermarkServiceState: Sendable {
    let secret = Mutex<SymmetricKey?>(nil)
    /// Track id → watermarked.
    let marks = Mutex<[String: Bool]>([:])
    /// `track/session` → recorded with a subject.
    let registered = Mutex<[String: Bool]>([:])
}
