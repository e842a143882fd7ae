public import Configuration
import Foundation

/// Listening analytics (`analytics.…`): sessions reconstructed from delivery and beacons,
/// rollups in the catalog database.
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
    }
}
