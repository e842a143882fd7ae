public import Hummingbird
public import Foundation
import Logging
public import MediaCore
import HTTPTypes
import NIOCore
import StreamKit

/// What `GET /v1/tracks/{id}` (and the upload's 202) answers.
public struct TrackResource: Codable, Sendable, ResponseEncodable {
    public struct RenditionSummary: Codable, Sendable {
        public var id: String
        public var codec: String
        public var codecs: String
        public var sampleRate: Int
        public var channelCount: Int
        public var targetBitrate: Int?
        public var segmentCount: Int
        /// Storage key of the progressive file.
        public var progressive: String?
        /// The HLS switching set of a CMAF rendition (`aac`, `opus`, `flac`): the key of its
        /// multivariant playlist in ``Playback/hlsByCodec``.
        public var switchingSet: String?
    }

    public var id: String
    public var jobId: String
    public var status: TrackStatus
    /// 0–100 while processing; 100 when ready.
    public var progress: Double
    public var createdAt: Date
    public var updatedAt: Date
    public var failureReason: String?
    /// Published version (`tracks/{id}/v{n}/`), once ready.
    public var version: Int?
    /// The upload's probe: format, duration, channels, tags (sanitised).
    public var metadata: MediaProbe?
    /// Source loudness (EBU R128), once analysed.
    public var loudness: LoudnessReport?
    /// Loudness of the normalised renditions.
    public var normalizedLoudness: LoudnessReport?
    public var gainDB: Double?
    public var renditions: [RenditionSummary]?
    /// How the segments are encrypted, once ready (absent: in the clear): the method and the
    /// key's id. The key itself is only ever served to a playback session (`/hls/{id}/key/{keyId}`).
    public var protection: PublishedProtection?
    /// True once a watermarked track is ready (absent otherwise): each playback session is
    /// served its own sequence of A/B segment variants (HLS and DASH).
    public var watermarked: Bool?
    /// Where to play the track (signed for the caller unless the host is public), once ready.
    public var playback: Playback?

    /// Playback URLs (paths on this host, with the signed token in their query).
    public struct Playback: Codable, Sendable {
        public struct ProgressiveFile: Codable, Sendable {
            public var rendition: String
            public var mimeType: String
            public var url: String
        }
        /// When the signed URLs stop working (absent in public mode).
        public var expires: Date?
        /// The multivariant playlist of the default switching set (AAC when the track has it):
        /// `/hls/{id}/master.m3u8`; absent for a track protected with `cenc` or `cbcs` (DASH only).
        public var hls: String?
        /// One multivariant playlist per switching set, by its id (`aac`, `opus`, `flac`):
        /// `/hls/{id}/master-{set}.m3u8`. Each lists renditions of one codec, sample rate and
        /// channel count, so a player's ABR can switch between all of them; changing codec means
        /// loading another playlist.
        public var hlsByCodec: [String: String]
        /// The DASH MPD; absent for a track protected with HLS AES-128 (DASH cannot decrypt it).
        public var dash: String?
        public var waveform: String
        public var progressive: [ProgressiveFile]
    }

    /// Adds ``playback`` for a ready track, every URL carrying `token`: one playback session's
    /// (``TrackOperations`` mints it for the caller's subject and records it when the track is
    /// watermarked).
    func withPlayback(auth: HostAuth, now: Date, token: String?) -> TrackResource {
        guard status == .ready, let version, let renditions else { return self }
        var copy = self
        let published = TrackLayout(track: id).version(version)
        copy.playback = Playback(
            expires: auth.isPublic ? nil : now.addingTimeInterval(auth.playbackTTL),
            hls: protection?.isCommonEncryption == true ? nil : auth.signedPath("/hls/\(id)/master.m3u8", token: token),
            hlsByCodec: protection?.isCommonEncryption == true ? [:] : Dictionary(renditions.compactMap(\.switchingSet).map { set in
                (set, auth.signedPath("/hls/\(id)/" + TrackManifest.masterPlaylistName(set), token: token))
            }, uniquingKeysWith: { first, _ in first }),
            dash: protection?.scheme == .aes128 ? nil : auth.signedPath("/dash/\(id)/manifest.mpd", token: token),
            waveform: auth.signedPath("/v1/tracks/\(id)/waveform.json", token: token),
            progressive: renditions.compactMap { rendition in
                guard let key = rendition.progressive, let relative = published.relative(key) else { return nil }
                return .init(rendition: rendition.id, mimeType: MediaContentType.forKey(key),
                             url: auth.signedPath("/media/\(id)/" + published.mediaPathPrefix + relative, token: token))
            })
        return copy
    }

    /// - Parameter manifest: the published manifest, for a ready track.
    init(_ record: TrackRecord, manifest: TrackManifest?) {
        id = record.id
        jobId = record.jobID
        status = record.status
        progress = (record.progress * 10).rounded() / 10
        createdAt = record.createdAt
        updatedAt = record.updatedAt
        failureReason = record.failureReason
        metadata = try? JSONDecoder().decode(MediaProbe.self, from: Data(record.probeJSON.utf8))
        if record.status == .ready, let manifest {
            let published = TrackLayout(track: record.id).version(record.version)
            version = record.version
            loudness = manifest.loudness
            normalizedLoudness = manifest.normalizedLoudness
            gainDB = manifest.gainDB
            protection = manifest.protection
            watermarked = manifest.watermark == nil ? nil : true
            var sets: [String: String] = [:]
            for set in manifest.hlsSwitchingSets {
                for rendition in set.renditions { sets[rendition.id] = set.id }
            }
            renditions = manifest.renditions.map {
                RenditionSummary(id: $0.id, codec: $0.codec, codecs: $0.codecs, sampleRate: $0.sampleRate, channelCount: $0.channelCount,
                                 targetBitrate: $0.targetBitrate, segmentCount: $0.segments.count,
                                 progressive: $0.progressive.map(published.object), switchingSet: sets[$0.id])
            }
        }
    }
}

/// The body of `POST /v1/tokens/revoke`.
struct Revocation: Decodable {
    /// An access token's id.
    var jti: String?
    /// The token's `exp` (seconds since 1970), so the entry can be forgotten after it.
    var exp: Double?
    /// Or a playback token (a signed URL's `token`): its session is revoked until it expires.
    var playbackToken: String?

    enum CodingKeys: String, CodingKey { case jti, exp, playbackToken }

    /// A field that is present must be a string: `null` is refused (400), not read as absent.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jti = container.contains(.jti) ? try container.decode(String.self, forKey: .jti) : nil
        playbackToken = container.contains(.playbackToken) ? try container.decode(String.self, forKey: .playbackToken) : nil
        exp = try container.decodeIfPresent(Double.self, forKey: .exp)
    }
}
