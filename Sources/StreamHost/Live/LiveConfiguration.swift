public import Configuration
public import MediaCore

/// One live mount: where a source client connects (`PUT /live/{name}`, or Icecast's legacy
/// `SOURCE /{name}`) and listeners listen (`GET /live/{name}`).
public struct LiveMountConfiguration: Sendable, Hashable, Codable {
    /// The mount's name: letters, digits, `-`, `_` and `.`, 1–64 characters.
    public var name: String
    /// The password a source gives with HTTP basic auth (any user name, as Icecast: usually
    /// `source`). Empty: only a bearer token with the `live` scope opens the mount.
    public var sourcePassword: String
    /// Whether a second source takes the mount over (the first is disconnected) instead of
    /// being refused with 409.
    public var takeover: Bool
    /// Whether each show is recorded and becomes a track when it ends.
    public var record: Bool
    /// Whether anyone may listen without a signed URL or token, as on an Icecast server;
    /// otherwise listening is authorised as VOD playback is (``HostAuth/authorizeLive(_:mount:relay:now:client:)``).
    public var openListening: Bool
    /// The mount's own ladder (rung names, `aac-128`, `opus-48` …), or nil for `live.rungs`.
    public var rungs: [String]?
    /// The mount's own DVR window in seconds, or nil for `live.dvrSeconds`.
    public var dvrSeconds: Double?
    /// The mount's own loudness target in LUFS, or nil for `live.loudnessTarget`.
    public var loudnessTarget: Double?
    /// Another mount whose show this one plays while its source is away (instead of silence).
    public var fallbackMount: String?
    /// Catalog tracks this mount plays in turn while its source is away (instead of silence).
    public var fallbackTracks: [String]?

    /// - Parameters:
    ///   - name: the mount's name (see ``isValidName(_:)``).
    ///   - sourcePassword: the source's basic-auth password; empty for token sources only.
    ///   - takeover: whether a second source takes over instead of being refused.
    ///   - record: whether shows are recorded and archived as tracks.
    ///   - openListening: whether listening needs no signed URL or token.
    ///   - rungs: the mount's ladder (nil: the host's).
    ///   - dvrSeconds: the mount's DVR window (nil: the host's).
    ///   - loudnessTarget: the mount's loudness target (nil: the host's).
    ///   - fallbackMount: a mount to play while the source is away.
    ///   - fallbackTracks: catalog tracks to play while the source is away.
    public init(name: String, sourcePassword: String, takeover: Bool = false, record: Bool = true, openListening: Bool = false,
                rungs: [String]? = nil, dvrSeconds: Double? = nil, loudnessTarget: Double? = nil,
                fallbackMount: String? = nil, fallbackTracks: [String]? = nil) {
        self.name = name
        self.sourcePassword = sourcePassword
        self.takeover = takeover
        self.record = record
        self.openListening = openListening
        self.rungs = rungs
        self.dvrSeconds = dvrSeconds
        self.loudnessTarget = loudnessTarget
        self.fallbackMount = fallbackMount
        self.fallbackTracks = fallbackTracks
    }

    /// The host's live settings with this mount's own ladder, DVR window and loudness target.
    public func applied(to live: LiveConfiguration) -> LiveConfiguration {
        var live = live
        if let rungs {
            let parsed = rungs.compactMap(LiveRung.init(name:))
            if !parsed.isEmpty { live.rungs = parsed }
        }
        if let dvrSeconds { live.dvrSeconds = dvrSeconds }
        if let loudnessTarget { live.loudnessTarget = loudnessTarget }
        return live
    }

    /// Whether `name` is a usable mount name.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
            && !name.hasPrefix(".")
    }
}

/// Live ingest and listener mounts (`live.…` keys).
public struct LiveConfiguration: Sendable, Hashable {
    /// The mounts known at start-up (`live.mounts`: `name:password` entries, `name:password:takeover`
    /// for a mount a new source takes over; `VEZA_LIVE_MOUNTS="radio:secret,talk:other"`).
    public var mounts: [LiveMountConfiguration] = []
    /// Bytes of the most recent audio sent to a listener at once on connect, so that playback
    /// starts without waiting (Icecast's `burst-size`, 64 KiB by default).
    public var burstBytes: Int = 64 << 10
    /// How far a listener may fall behind the live edge, in bytes queued for it, before it is
    /// disconnected (never buffered without bound).
    public var listenerLagBytes: Int = 512 << 10
    /// How far ahead of real time a source may send, in seconds of audio, before it is slowed by
    /// back-pressure (the socket is not read until real time catches up).
    public var sourceBurstSeconds: Double = 4
    /// A source that sends nothing for this long is disconnected (Icecast's `source-timeout`).
    public var sourceTimeout: Double = 10
    /// Bytes of audio between two ICY metadata blocks for listeners who ask for them.
    public var icyMetaInterval: Int = 16_000
    /// Most bytes a source may send before its first whole frame is found: past it, the stream
    /// is refused as not being the declared format.
    public var maxUnsyncedBytes: Int = 64 << 10

    /// Whether a source holding a token with the `live` scope creates an unknown mount by
    /// connecting to it (`live.createMountsOnConnect`); otherwise it gets 404.
    public var createMountsOnConnect = false

    /// Whether each source is transcoded to the live ladder (AAC 128 and 64 kb/s, Opus 96 kb/s)
    /// and served as LL-HLS (`live.ladder`).
    public var ladderEnabled = true
    /// Seconds of the ladder kept for players (the DVR window, in memory: about 36 KiB per
    /// second for the default ladder, so 10 minutes ≈ 21 MiB per mount).
    public var dvrSeconds: Double = 600

    /// The live ladder (`live.rungs`: `aac-128,aac-64,opus-96,opus-48`, codec and kb/s each).
    public var rungs: [LiveRung] = LiveRung.defaults
    /// The live loudness stage's target in LUFS (`live.loudnessTarget`), or nil (the default) for
    /// sources that are already mastered: no gain, no limiter.
    public var loudnessTarget: Double?
    /// How long a show goes on with the fallback (silence, in real time) after its source
    /// leaves, waiting for it to come back (`live.graceSeconds`). Listeners keep playing; past
    /// it, the show ends (playlists get `EXT-X-ENDLIST`) and its recording is archived.
    public var graceSeconds: Double = 30
    /// A connected source that sends nothing for this long is bridged with silence in the
    /// ladder so that players do not stall (`live.stallSeconds`); its late audio follows.
    public var stallSeconds: Double = 3
    /// The duration of an LL-HLS part and of a DASH chunk (`live.partSeconds`): 0.32 (the
    /// default: about 1 s behind the source in an LL-HLS player), 0.64 or 0.96 s: whole 0.32 s
    /// blocks, which hold whole AAC and Opus frames. Players stay about three parts behind the
    /// live edge (`PART-HOLD-BACK`): shorter parts, lower latency, more requests. Segments stay
    /// about 3.84 s long.
    public var partSeconds: Double = 0.32
    /// Whether mounts record their shows by default (`live.record`).
    public var record = true
    /// Whether the mounts of `live.mounts` and mounts created on connect may be listened to
    /// without a signed URL or token, as on an Icecast server (`live.openListening`; default
    /// false: listening is authorised as VOD playback is, except in public mode).
    public var openListening = false

    /// This host's URL as the other hosts on the catalog reach it (`live.advertiseURL`, for
    /// example `http://10.0.0.5:8080`). Set, the host claims in the catalog the mounts whose
    /// shows it runs, and answers listeners of a mount whose show runs on another host by
    /// proxying them to it. Nil: each host serves only the shows of its own sources.
    public var advertiseURL: String?

    /// WebRTC playback (WHEP): the first UDP port (`live.webrtc.port`). The host opens one
    /// socket per event loop (per core) on consecutive ports from it, and gives sessions to them
    /// in turn. 0, the default, takes free ports when the first session starts; set a fixed one,
    /// such as 8189, to open the range in a firewall.
    public var webRTCPort: Int = 0
    /// The addresses WebRTC answers offer as host candidates (`live.webrtc.addresses`,
    /// comma-separated IPs: the host's public ones behind NAT). Empty: the address the
    /// WHEP request reached.
    public var webRTCAddresses: [String] = []
    /// At most this many WebRTC sessions at once (`live.webrtc.maxSessions`; more get 503).
    public var webRTCMaxSessions: Int = 2000

    /// Entries of `live.mounts` that could not be read.
    public var problems: [String] = []

    public init() {}

    public init(reader: ConfigReader) {
        for entry in reader.stringArray(forKey: "live.mounts", default: []) {
            let parts = entry.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 2, LiveMountConfiguration.isValidName(parts[0]) else {
                problems.append("live.mounts: '\(entry.prefix(80))' is not name:password (name of letters, digits, - _ .)")
                continue
            }
            mounts.append(LiveMountConfiguration(name: parts[0], sourcePassword: parts[1], takeover: parts.count == 3 && parts[2] == "takeover"))
        }
        record = reader.bool(forKey: "live.record", default: record)
        openListening = reader.bool(forKey: "live.openListening", default: openListening)
        for index in mounts.indices {
            mounts[index].record = record
            mounts[index].openListening = openListening
        }
        let rungNames = reader.stringArray(forKey: "live.rungs", default: [])
        if !rungNames.isEmpty {
            var parsed: [LiveRung] = []
            for name in rungNames {
                if let rung = LiveRung(name: name) { parsed.append(rung) } else {
                    problems.append("live.rungs: '\(name.prefix(40))' is not aac-KBPS, opus-KBPS or mp3-KBPS")
                }
            }
            if parsed.contains(where: { $0.settings.codec != .mp3 }) { rungs = parsed } else if !parsed.isEmpty {
                problems.append("live.rungs: at least one AAC or Opus rung (LL-HLS and DASH); MP3 rungs are ICY streams only")
            }
        }
        loudnessTarget = reader.double(forKey: "live.loudnessTarget").map { min(max($0, -40), -5) }
        partSeconds = Double(min(max(1, Int((reader.double(forKey: "live.partSeconds", default: partSeconds) / 0.32).rounded())), 3)) * 0.32
        graceSeconds = min(max(0, reader.double(forKey: "live.graceSeconds", default: graceSeconds)), 3600)
        stallSeconds = min(max(1, reader.double(forKey: "live.stallSeconds", default: stallSeconds)), 60)
        ladderEnabled = reader.bool(forKey: "live.ladder", default: ladderEnabled)
        dvrSeconds = min(max(30, reader.double(forKey: "live.dvrSeconds", default: dvrSeconds)), 4 * 3600)
        createMountsOnConnect = reader.bool(forKey: "live.createMountsOnConnect", default: createMountsOnConnect)
        burstBytes = max(0, reader.int(forKey: "live.burstBytes", default: burstBytes))
        listenerLagBytes = max(16 << 10, reader.int(forKey: "live.listenerLagBytes", default: listenerLagBytes))
        sourceBurstSeconds = max(0.5, reader.double(forKey: "live.sourceBurstSeconds", default: sourceBurstSeconds))
        sourceTimeout = max(1, reader.double(forKey: "live.sourceTimeout", default: sourceTimeout))
        icyMetaInterval = min(max(256, reader.int(forKey: "live.icyMetaInterval", default: icyMetaInterval)), 65_536)
        webRTCPort = min(max(0, reader.int(forKey: "live.webrtc.port", default: webRTCPort)), 65_535)
        webRTCAddresses = reader.stringArray(forKey: "live.webrtc.addresses", default: []).filter { !$0.isEmpty }
        webRTCMaxSessions = max(1, reader.int(forKey: "live.webrtc.maxSessions", default: webRTCMaxSessions))
        if let url = reader.string(forKey: "live.advertiseURL"), !url.isEmpty {
            if url.hasPrefix("http://") || url.hasPrefix("https://") { advertiseURL = url } else {
                problems.append("live.advertiseURL: '\(url.prefix(80))' is not an http(s) URL")
            }
        }
    }
}

extension UInt8 {
    var isASCIIAlphanumeric: Bool {
        (0x30...0x39).contains(self) || (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self)
    }
}
