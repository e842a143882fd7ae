import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import MediaCore
import NIOCore
import NIOHTTP1
import StreamKit

/// `POST /v1/live`'s body.
struct NewMount: Decodable, Sendable {
    var name: String
    var sourcePassword: String
    var takeover: Bool?
    var record: Bool?
    /// Listening without a signed URL or token (as on Icecast).
    var openListening: Bool?
    /// The mount's ladder: rung names (`aac-128`, `opus-48` …).
    var rungs: [String]?
    var dvrSeconds: Double?
    var loudnessTarget: Double?
    /// What plays while the source is away: `{"mount": "other"}` or `{"tracks": ["trk_…"]}` (default: silence).
    var fallback: Fallback?

    struct Fallback: Decodable, Sendable {
        var mount: String?
        var tracks: [String]?
    }

    /// The mount this body asks for, or 400 with the reason.
    func configuration(defaults: LiveConfiguration) throws -> LiveMountConfiguration {
        func refuse(_ message: String) -> APIError { APIError(.badRequest, code: "bad_request", message) }
        guard LiveMountConfiguration.isValidName(name) else { throw refuse("a mount name is 1–64 letters, digits, - _ or .") }
        // Characters are Unicode scalars, as JSON Schema's minLength counts them (not UTF-8 bytes:
        // "ééé…" is 4 characters but 8 bytes; not grapheme clusters either).
        guard sourcePassword.unicodeScalars.count >= 8 || sourcePassword.isEmpty else {
            throw refuse("a source password has at least 8 characters (or none: token sources only)")
        }
        if let rungs {
            guard (1...8).contains(rungs.count), Set(rungs).count == rungs.count else { throw refuse("rungs: 1–8 distinct rung names") }
            for rung in rungs where LiveRung(name: rung) == nil {
                throw refuse("rungs: '\(rung.prefix(40))' is not aac-KBPS (16–320), opus-KBPS (6–510) or mp3-KBPS (32–320)")
            }
            guard rungs.contains(where: { !$0.hasPrefix("mp3-") }) else {
                throw refuse("rungs: at least one AAC or Opus rung (LL-HLS and DASH); MP3 rungs are ICY streams only")
            }
        }
        if let dvrSeconds, !(30...(4 * 3600)).contains(dvrSeconds) { throw refuse("dvrSeconds is 30–14400") }
        if let loudnessTarget, !(-40 ... -5).contains(loudnessTarget) { throw refuse("loudnessTarget is -40 to -5 LUFS") }
        if let fallback {
            guard (fallback.mount == nil) != (fallback.tracks == nil) else { throw refuse("fallback is {\"mount\": NAME} or {\"tracks\": [IDS]}") }
            if let mount = fallback.mount, !LiveMountConfiguration.isValidName(mount) || mount == name {
                throw refuse("fallback.mount must name another mount")
            }
            if let tracks = fallback.tracks, !(1...100).contains(tracks.count) || tracks.contains(where: { $0.isEmpty || $0.utf8.count > 64 }) {
                throw refuse("fallback.tracks: 1–100 track ids")
            }
        }
        return LiveMountConfiguration(name: name, sourcePassword: sourcePassword, takeover: takeover ?? false, record: record ?? defaults.record,
                                      openListening: openListening ?? defaults.openListening, rungs: rungs, dvrSeconds: dvrSeconds,
                                      loudnessTarget: loudnessTarget, fallbackMount: fallback?.mount, fallbackTracks: fallback?.tracks)
    }
}

/// A live mount as the API shows it (never its source password).
struct MountResource: ResponseEncodable, Sendable {
    struct Source: Codable, Sendable {
        var format: String
        var contentType: String
        var name: String?
        var genre: String?
        var description: String?
        var isPublic: Bool
        var userAgent: String?
        var connectedAt: Date
    }

    /// The show: from the first source's connection until no source came back within the grace period.
    struct Show: Codable, Sendable {
        var id: String
        var startedAt: Date
        var ended: Bool
        /// Seconds of fallback audio (silence) played while the source was away or stalled.
        var fallbackSeconds: Double
        var sourceReconnects: Int
        /// The live loudness stage's gain now (dB), when the stage runs.
        var loudnessGain: Double?
        /// What plays while the source is away (`mount:NAME`, `tracks:N`); nil: silence.
        var fallback: String?
        /// The track the show's recording became, once the show has ended.
        var recordingTrack: String?
        var recordingError: String?
    }

    var name: String
    /// `live` while a source is connected, `fallback` while the show waits for its source to
    /// come back, else `idle`.
    var state: String
    var source: Source?
    var title: String?
    var listeners: [String: Int]
    var droppedListeners: Int
    var bytesIn: Int
    var mediaSeconds: Double
    var takeover: Bool
    var record: Bool
    /// Whether listening needs no signed URL or token.
    var openListening: Bool
    /// The mount's ladder.
    var rungs: [String]
    /// The show now, or the last one.
    var show: Show?
    /// Where listeners listen.
    var urls: [String: String]
    /// How far behind the source listeners are, while a show runs.
    var latency: Latency?

    struct Latency: Codable, Sendable {
        /// The LL-HLS part (and DASH chunk) duration.
        var partSeconds: Double
        /// How far behind the live edge LL-HLS players stay (`PART-HOLD-BACK`, three parts)
        /// and DASH players aim (`ServiceDescription` latency).
        var playerTargetSeconds: Double
        /// From the arrival of the audio completing the last part to its publication.
        var lastPartPublishSeconds: Double?
    }
    /// Why the live ladder (LL-HLS) is not running for this source, when it is not.
    var ladderError: String?

    /// - Parameters:
    ///   - auth: signs the listening URLs (unless the mount is open or the host public).
    ///   - webRTC: the host's WebRTC sessions (counted per mount).
    ///   - now: when the signatures start.
    init(_ mount: LiveMount, auth: HostAuth, webRTC: LiveWebRTC?, now: Date) {
        let status = mount.status
        name = mount.name
        let show = status.session
        state = status.source != nil ? "live" : (show.map { !$0.ended } ?? false) ? "fallback" : "idle"
        self.show = show.map {
            Show(id: $0.id, startedAt: $0.startedAt, ended: $0.ended, fallbackSeconds: $0.fallbackSeconds, sourceReconnects: $0.reconnects,
                 loudnessGain: $0.loudnessGain, fallback: $0.fallback, recordingTrack: $0.recordingTrack, recordingError: $0.recordingError)
        }
        record = mount.configuration.record
        source = status.source.map {
            Source(format: $0.format.rawValue, contentType: $0.format.contentType, name: $0.name, genre: $0.genre,
                   description: $0.description, isPublic: $0.isPublic, userAgent: $0.userAgent, connectedAt: $0.connectedAt)
        }
        title = status.title
        let audience = mount.audience.counts()
        listeners = ["icy": status.listeners, "icyLadder": show?.rungListeners ?? 0, "webSocket": show?.webSocketListeners ?? 0,
                     "webRTC": webRTC?.sessionCount(mount: mount.name) ?? 0, "hls": audience[.hls] ?? 0, "dash": audience[.dash] ?? 0]
        droppedListeners = status.droppedListeners
        bytesIn = status.bytesIn
        mediaSeconds = (status.mediaSeconds * 1000).rounded() / 1000
        takeover = mount.configuration.takeover
        urls = ["icy": "/live/\(mount.name)", "hls": "/live/\(mount.name)/master.m3u8", "hlsOpus": "/live/\(mount.name)/master-opus.m3u8",
                "dash": "/live/\(mount.name)/manifest.mpd", "webSocket": "/ws/live/\(mount.name)",
                "whep": "/whep/\(mount.name)"]
        for stream in mount.session?.rungStreams.values.sorted(by: { $0.rung < $1.rung }) ?? [] {
            urls["icy:" + stream.rung] = "/live/\(mount.name)/\(stream.rung).\(stream.fileExtension)"
        }
        if !mount.configuration.openListening {
            urls = urls.mapValues { auth.signedLivePath($0, mount: mount.name, now: now) }
        }
        openListening = mount.configuration.openListening
        rungs = mount.configuration.applied(to: mount.live).rungs.map(\.id)
        ladderError = status.ladderError
        if let presentation = mount.hls, show.map({ !$0.ended }) ?? false {
            latency = Latency(partSeconds: presentation.partSeconds, playerTargetSeconds: (presentation.partSeconds * 3 * 1000).rounded() / 1000,
                              lastPartPublishSeconds: show?.lastPublishSeconds)
        }
    }
}

struct MountList: ResponseEncodable, Sendable {
    var mounts: [MountResource]
}
