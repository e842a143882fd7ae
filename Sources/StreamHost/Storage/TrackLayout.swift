/// Every storage key of one track (the storage layout of the design notes), the same on local
/// disk and in S3. The one place keys are spelled: intake, publish, delivery, purge and delete all
/// build them here.
///
/// ```
/// tracks/{id}/source/original.{ext}            the upload, kept for re-transcodes
/// tracks/{id}/v{n}/manifest.json               the published index, written last
/// tracks/{id}/v{n}/cmaf/{rendition}/init.mp4   CMAF init segment
/// tracks/{id}/v{n}/cmaf/{rendition}/seg-{k}.m4s
/// tracks/{id}/v{n}/progressive/{rendition}.{m4a|opus|mp3|flac}
/// tracks/{id}/v{n}/waveform.json, waveform.dat
/// ```
///
/// A version's objects are immutable (a re-transcode writes `v{n+1}`). Inside a version, the
/// names are the packager's (MediaCore's `LadderPackager` writes them relative to the version).
public struct TrackLayout: Sendable, Hashable {
    /// The track id.
    public let track: String

    /// The layout of track `track`.
    public init(track: String) {
        self.track = track
    }

    /// `tracks/`: every track's objects are under it; nothing else the host stores is.
    public static let root = "tracks/"

    /// `tracks/{id}/`: everything of the track (delete, purge).
    public var prefix: String { Self.root + track + "/" }

    /// `tracks/{id}/source/original.{ext}`.
    public func source(fileExtension: String) -> String { prefix + "source/original.\(fileExtension)" }

    /// The keys of published version `version`.
    public func version(_ version: Int) -> Version { Version(track: self, number: version) }

    /// The key of a path under the track as `/media/{id}/{path}` names it (`v1/cmaf/…`).
    public func object(_ path: some StringProtocol) -> String { prefix + path }

    /// The keys of one published version.
    public struct Version: Sendable, Hashable {
        /// The track.
        public let track: TrackLayout
        /// The version number (`v{n}`).
        public let number: Int

        /// `tracks/{id}/v{n}/`: everything of the version (with the slash, so that `v1` never
        /// names `v10`'s objects).
        public var prefix: String { track.prefix + "v\(number)/" }
        /// `v{n}/`: the version's part of a `/media/{id}/…` path.
        public var mediaPathPrefix: String { "v\(number)/" }
        /// `tracks/{id}/v{n}/manifest.json`.
        public var manifest: String { object(TrackLayout.manifestName) }
        /// `tracks/{id}/v{n}/waveform.json`.
        public var waveformJSON: String { object("waveform.json") }
        /// `tracks/{id}/v{n}/{relative}`: an object named as the packager names it.
        public func object(_ relative: String) -> String { prefix + relative }
        /// `tracks/{id}/v{n}/cmaf/{rendition}/init.mp4`.
        public func initSegment(rendition: String) -> String { object("cmaf/\(rendition)/init.mp4") }
        /// `tracks/{id}/v{n}/cmaf/{rendition}/seg-{number}.m4s`.
        public func segment(rendition: String, number: Int) -> String { object("cmaf/\(rendition)/seg-\(number).m4s") }
        /// The version-relative name of `key` (nil when `key` is not in this version).
        public func relative(_ key: String) -> Substring? {
            key.hasPrefix(prefix) ? key.dropFirst(prefix.count) : nil
        }
    }

    /// The file name of a version's published index, written last.
    public static let manifestName = "manifest.json"

    /// The template of media segment names relative to a version, as DASH and the media
    /// playlists expand it (`$RepresentationID$`, `$Number$`).
    public static let segmentTemplate = "cmaf/$RepresentationID$/seg-$Number$.m4s"

    /// Whether `key` is a version's published index (deleted first, so that a half-deleted
    /// version is never visible).
    public static func isManifest(_ key: String) -> Bool { key.hasSuffix("/" + manifestName) }
}
