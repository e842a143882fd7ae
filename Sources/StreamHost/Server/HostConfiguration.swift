public import Configuration
public import Foundation
public import MediaCore
import SystemPackage

/// Everything a host needs to start: where it listens, where it keeps data, and the limits
/// that protect it.
///
/// Built from a `ConfigReader` (``init(reader:)``) so that `streamhost serve` layers a
/// JSON file, then `VEZA_…` environment variables, then flags (see ``HostConfiguration/reader(file:flags:environment:)``).
/// Every key has a default, so an empty configuration is the embedded default: `./data` on
/// local disk with SQLite.
public struct HostConfiguration: Sendable {
    /// Address to bind (`host`). Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Port to bind (`port`); 0 picks a free port (printed at start-up). Default 8080.
    public var port: Int = 8080
    /// Event-loop threads answering connections (`server.eventLoops`); 0 (default) shares
    /// SwiftNIO's singleton group, one thread per core. Like nginx's `worker_processes`: on a
    /// machine shared with other work, fewer loops batch more events per wake-up.
    public var eventLoops: Int = 0
    /// Reverse proxies, load balancers and CDN edges whose forwarding headers are believed
    /// (`server.trustedProxies`: addresses and CIDR ranges, IPv4 and IPv6; in the environment
    /// comma-separated, `VEZA_SERVER_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8`). For a connection from
    /// one of them the client address (rate limits, connection caps, logs) comes from
    /// `Forwarded`, else `X-Forwarded-For`, else `X-Real-IP` (see ``ClientAddressResolver``);
    /// from any other peer those headers are ignored. Default none.
    public var trustedProxies: [IPRange] = []
    /// Values that could not be read (for example a `server.trustedProxies` entry that is not an
    /// address or range). `streamhost serve` refuses to start while there is any.
    public var problems: [String] = []
    /// Data directory (`data.directory`): `objects/` (storage), `catalog.sqlite`, `tmp/`,
    /// `staging/`. Default `./data`.
    public var dataDirectory: String = "data"
    /// Largest accepted upload in bytes (`upload.maxBytes`). Default 1 GiB.
    public var maxUploadBytes: Int = 1 << 30
    /// Seconds an upload may stall between two body chunks before it is dropped
    /// (`upload.idleTimeout`). Default 30.
    public var uploadIdleTimeout: Double = 30
    /// Whether an upload is decoded in full before it is accepted (`upload.validate`), so that
    /// truncated or corrupt files get 422 at once instead of a failed or damaged track later.
    /// Default true.
    public var validateUploadsByDecoding = true
    /// Worker tasks running jobs (`workers.count`). Default: the number of cores.
    public var workerCount: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Jobs queued or running beyond which uploads get 503 + Retry-After (`queue.maxDepth`).
    public var maxQueueDepth: Int = 1000
    /// Lease length in seconds (`queue.leaseSeconds`): a job whose worker stops
    /// heartbeating for this long runs again elsewhere. Default 30.
    public var leaseSeconds: Double = 30
    /// Attempts before a job is dead-lettered (`queue.maxAttempts`). Default 3.
    public var maxAttempts: Int = 3
    /// First retry delay in seconds, doubled per attempt (`queue.retryBaseSeconds`). Default 2.
    public var retryBaseSeconds: Double = 2
    /// How long an idle worker waits before polling the queue again (`queue.pollSeconds`).
    public var pollSeconds: Double = 0.5
    /// The ladder each job packages.
    public var ladder = LadderConfiguration()
    /// Access tokens, signed playback URLs, public mode.
    public var auth = AuthConfiguration()
    /// Rate limits, connection caps and header deadlines.
    public var limits = LimitsConfiguration()
    /// Live mounts: sources, listeners (`live.…`).
    public var live = LiveConfiguration()
    /// Webhook delivery: retries, timeouts, allowed targets (`webhooks.…`).
    public var webhooks = WebhookConfiguration()
    /// Listening analytics: sessions, plays, rollups (`analytics.…`).
    public var analytics = AnalyticsConfiguration()
    /// Content protection: encrypted tracks, the key-encryption key, key delivery (`protection.…`).
    public var protection = ProtectionConfiguration()
    /// Object storage (`storage.backend`: `local` (default, under the data directory) or `s3`
    /// with the `s3.*` keys).
    public var s3: S3Configuration?
    /// The catalog and job queue (`catalog.backend`: `sqlite` (default) or `postgres` with
    /// `postgres.url`).
    public var postgresURL: String?
    /// How `/media` objects reach clients from S3 (`delivery.redirect`): false proxies the bytes
    /// through the host (default); true answers 302 to a presigned URL, or to `cdn.baseURL` + the
    /// path when a CDN is configured.
    public var redirectMedia = false
    /// A CDN in front of the host (`cdn.baseURL`): playlists then point media URIs at it.
    public var cdnBaseURL: String?
    /// Where to send cache invalidations when a track is deleted (`cdn.purgeURL`, e.g. a Varnish
    /// address): a `BAN` with `X-Ban-Prefix: /media/{id}/` (and `/hls/`, `/dash/`).
    public var cdnPurgeURL: String?
    /// `Cache-Control` max-age in seconds of playlists and MPDs (`delivery.playlistMaxAge`),
    /// which can change when a track is replaced or deleted. Published media objects are
    /// immutable and always cached for a year. Default 10.
    public var playlistMaxAge: Int = 10
    /// Bytes of small published objects (segments, init segments) kept in memory for
    /// delivery (`delivery.cacheMegabytes`, in MiB; 0 turns the cache off). Default 64 MiB.
    public var objectCacheBytes: Int = 64 << 20
    /// Progressive files are paced (`delivery.pacing.multiple`, 0: off): after a burst of
    /// `delivery.pacing.burstSeconds` of audio they go at this multiple of their bitrate, so a
    /// listener who skips after 30 s has not pulled the whole file. Default 4×, burst 10 s.
    public var pacingMultiple: Double = 4
    public var pacingBurstSeconds: Double = 10

    /// The defaults.
    public init() {}

    /// Reads every key from `reader`, keeping the default for any key it lacks.
    public init(reader: ConfigReader) {
        host = reader.string(forKey: "host", default: host)
        port = reader.int(forKey: "port", default: port)
        dataDirectory = reader.string(forKey: "data.directory", default: dataDirectory)
        eventLoops = max(0, reader.int(forKey: "server.eventLoops", default: eventLoops))
        for entry in reader.stringArray(forKey: "server.trustedProxies", default: []) {
            let trimmed = entry.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            if let range = IPRange(trimmed) {
                trustedProxies.append(range)
            } else {
                problems.append("server.trustedProxies: '\(entry)' is not an IP address or CIDR range")
            }
        }
        maxUploadBytes = reader.int(forKey: "upload.maxBytes", default: maxUploadBytes)
        validateUploadsByDecoding = reader.bool(forKey: "upload.validate", default: validateUploadsByDecoding)
        uploadIdleTimeout = reader.double(forKey: "upload.idleTimeout", default: uploadIdleTimeout)
        workerCount = max(0, reader.int(forKey: "workers.count", default: workerCount))
        maxQueueDepth = max(1, reader.int(forKey: "queue.maxDepth", default: maxQueueDepth))
        leaseSeconds = max(1, reader.double(forKey: "queue.leaseSeconds", default: leaseSeconds))
        maxAttempts = max(1, reader.int(forKey: "queue.maxAttempts", default: maxAttempts))
        retryBaseSeconds = max(0, reader.double(forKey: "queue.retryBaseSeconds", default: retryBaseSeconds))
        pollSeconds = max(0.01, reader.double(forKey: "queue.pollSeconds", default: pollSeconds))
        ladder.segmentDuration = reader.double(forKey: "ladder.segmentSeconds", default: ladder.segmentDuration)
        ladder.normalization.targetLoudness = reader.double(forKey: "ladder.targetLUFS", default: ladder.normalization.targetLoudness)
        playlistMaxAge = max(0, reader.int(forKey: "delivery.playlistMaxAge", default: playlistMaxAge))
        objectCacheBytes = max(0, reader.int(forKey: "delivery.cacheMegabytes", default: objectCacheBytes >> 20)) << 20
        pacingMultiple = max(0, reader.double(forKey: "delivery.pacing.multiple", default: pacingMultiple))
        pacingBurstSeconds = max(0, reader.double(forKey: "delivery.pacing.burstSeconds", default: pacingBurstSeconds))
        auth = AuthConfiguration(reader: reader)
        limits = LimitsConfiguration(reader: reader)
        live = LiveConfiguration(reader: reader)
        webhooks = WebhookConfiguration(reader: reader)
        analytics = AnalyticsConfiguration(reader: reader)
        protection = ProtectionConfiguration(reader: reader)
        problems += live.problems + analytics.problems + protection.problems
        if reader.string(forKey: "storage.backend", default: "local") == "s3" {
            var s3 = S3Configuration(
                endpoint: reader.string(forKey: "s3.endpoint", default: "https://s3.amazonaws.com"),
                bucket: reader.string(forKey: "s3.bucket", default: ""),
                region: reader.string(forKey: "s3.region", default: "us-east-1"),
                accessKeyID: reader.string(forKey: "s3.accessKey", default: ""),
                secretAccessKey: reader.string(forKey: "s3.secretKey", isSecret: true) ?? "")
            // S3's minimum part is 5 MiB (except the last).
            s3.multipartThreshold = max(5 << 20, reader.int(forKey: "s3.multipartThreshold", default: s3.multipartThreshold))
            s3.partSize = max(5 << 20, reader.int(forKey: "s3.partSize", default: s3.partSize))
            self.s3 = s3
        }
        if reader.string(forKey: "catalog.backend", default: "sqlite") == "postgres" {
            postgresURL = reader.string(forKey: "postgres.url", isSecret: true) ?? "postgres://veza@127.0.0.1:5432/veza"
        }
        redirectMedia = reader.bool(forKey: "delivery.redirect", default: redirectMedia)
        cdnBaseURL = reader.string(forKey: "cdn.baseURL")
        cdnPurgeURL = reader.string(forKey: "cdn.purgeURL")
    }

    /// The layered reader `streamhost` uses: `flags` (highest), then the environment's
    /// `VEZA_…` variables (`VEZA_PORT`, `VEZA_DATA_DIRECTORY`, `VEZA_UPLOAD_MAX_BYTES`, …: dots and camelCase
    /// word boundaries become underscores),
    /// then the JSON `file` if given (keys nested by their dots: `{"upload": {"maxBytes": 1}}`).
    public static func reader(file: String?, flags: [String: ConfigContent] = [:], environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> ConfigReader {
        var providers: [any ConfigProvider] = []
        if !flags.isEmpty {
            var values: [AbsoluteConfigKey: ConfigValue] = [:]
            for (key, value) in flags {
                values[AbsoluteConfigKey(key.split(separator: ".").map(String.init))] = ConfigValue(value, isSecret: false)
            }
            providers.append(InMemoryProvider(name: "flags", values: values))
        }
        // Only VEZA_-prefixed variables count: `port` reads VEZA_PORT, not PORT.
        let veza = environment.filter { $0.key.hasPrefix("VEZA_") }
        providers.append(KeyMappingProvider(upstream: EnvironmentVariablesProvider(environmentVariables: veza)) { key in
            key.prepending(["veza"])
        })
        if let file {
            providers.append(try await FileProvider<JSONSnapshot>(filePath: .init(file)))
        }
        return ConfigReader(providers: providers)
    }
}
