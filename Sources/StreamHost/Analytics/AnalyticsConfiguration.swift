public import Configuration
import Foundation

/// Listening analytics (`analytics.…`): sessions reconstructed from delivery and beacons,
/// rollups in the catalog database or in ClickHouse.
public struct AnalyticsConfiguration: Sendable, Hashable {
    /// Whether listening is counted at all (`analytics.enabled`). Default true.
    public var enabled = true
    /// Seconds without a request after which a session ends (`analytics.idleTimeoutSeconds`).
    /// A player paused for longer starts a new session when it resumes. Default 120.
    public var idleTimeoutSeconds: Double = 120
    /// Seconds of listening that make a play (`analytics.playThresholdSeconds`). A shorter
    /// track completed is a play too. Default 30.
    public var playThresholdSeconds: Double = 30
    /// Seconds between sweeps: sessions ended, listener counts, the live feed
    /// (`analytics.sweepSeconds`). Default 1.
    public var sweepSeconds: Double = 1
    /// Days sessions and minute rollups are kept (`analytics.retentionDays`); hour and day
    /// rollups hold no session and are kept ten times as long. Default 90.
    public var retentionDays: Double = 90
    /// What is kept of a listener's address (`analytics.clientNetworks`): `prefix` (the /24 of
    /// IPv4, the /48 of IPv6, never the address) or `none`. Default `prefix`.
    public var keepsClientNetworks = true
    /// Most events in one `POST /v1/events` (`analytics.maxBatchEvents`). Default 100.
    public var maxBatchEvents = 100
    /// A MaxMind-format database (GeoLite2-Country or -City, DB-IP, …) giving each session's
    /// country from its client address (`analytics.countryDatabase`). Default none.
    public var countryDatabase: String?

    /// Where finished sessions and rollups go (`analytics.backend`).
    public enum Backend: String, Sendable, Hashable {
        /// The catalog database when it keeps them (SQLite). The default.
        case catalog
        /// ClickHouse over HTTP (``ClickHouseAnalyticsStore``), buffered on disk.
        case clickhouse
    }

    /// Where finished sessions and rollups go (`analytics.backend`: `catalog` or `clickhouse`).
    public var backend = Backend.catalog
    /// ClickHouse's HTTP interface, `http://host:8123` (`analytics.clickhouse.url`).
    public var clickhouseURL: String?
    /// The ClickHouse database, created when missing (`analytics.clickhouse.database`). Default `veza`.
    public var clickhouseDatabase = "veza"
    /// The ClickHouse user (`analytics.clickhouse.user`); none sends no credentials.
    public var clickhouseUser: String?
    /// Its password (`analytics.clickhouse.password`, best from the environment:
    /// `VEZA_ANALYTICS_CLICKHOUSE_PASSWORD`).
    public var clickhousePassword: String?
    /// Where batches wait until ClickHouse takes them (`analytics.clickhouse.bufferDirectory`).
    /// Default `<data.directory>/analytics-buffer`.
    public var bufferDirectory: String?
    /// The most bytes waiting there (`analytics.clickhouse.bufferMaxBytes`); beyond it the oldest
    /// batches are dropped and logged. Default 1 GiB.
    public var bufferMaxBytes = 1 << 30
    /// What was wrong in the keys read (the host refuses to start with any).
    public var problems: [String] = []

    public init() {}

    /// Reads the `analytics.` keys.
    public init(reader: ConfigReader) {
        enabled = reader.bool(forKey: "analytics.enabled", default: enabled)
        idleTimeoutSeconds = max(1, reader.double(forKey: "analytics.idleTimeoutSeconds", default: idleTimeoutSeconds))
        playThresholdSeconds = max(0, reader.double(forKey: "analytics.playThresholdSeconds", default: playThresholdSeconds))
        sweepSeconds = min(60, max(0.05, reader.double(forKey: "analytics.sweepSeconds", default: sweepSeconds)))
        retentionDays = max(1, reader.double(forKey: "analytics.retentionDays", default: retentionDays))
        keepsClientNetworks = reader.string(forKey: "analytics.clientNetworks", default: "prefix") != "none"
        maxBatchEvents = min(10_000, max(1, reader.int(forKey: "analytics.maxBatchEvents", default: maxBatchEvents)))
        countryDatabase = reader.string(forKey: "analytics.countryDatabase").flatMap { $0.isEmpty ? nil : $0 }
        let backendName = reader.string(forKey: "analytics.backend", default: backend.rawValue)
        if let chosen = Backend(rawValue: backendName) {
            backend = chosen
        } else {
            problems.append("analytics.backend: '\(backendName)' is not catalog or clickhouse")
        }
        clickhouseURL = reader.string(forKey: "analytics.clickhouse.url").flatMap { $0.isEmpty ? nil : $0 }
        clickhouseDatabase = reader.string(forKey: "analytics.clickhouse.database", default: clickhouseDatabase)
        clickhouseUser = reader.string(forKey: "analytics.clickhouse.user").flatMap { $0.isEmpty ? nil : $0 }
        clickhousePassword = reader.string(forKey: "analytics.clickhouse.password", isSecret: true)
        bufferDirectory = reader.string(forKey: "analytics.clickhouse.bufferDirectory").flatMap { $0.isEmpty ? nil : $0 }
        bufferMaxBytes = max(1 << 20, reader.int(forKey: "analytics.clickhouse.bufferMaxBytes", default: bufferMaxBytes))
        if backend == .clickhouse, clickhouseURL == nil {
            problems.append("analytics.backend is clickhouse but analytics.clickhouse.url is not set")
        }
    }
}
