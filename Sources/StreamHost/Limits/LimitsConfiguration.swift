import Foundation
public import Configuration
import NIOHTTP1
import Hummingbird
import HTTPTypes
import NIOCore
import Synchronization

/// The limits of the host (`limits.*` keys).
public struct LimitsConfiguration: Sendable {
    /// API calls per client address (`limits.api.rate`, `limits.api.burst`). Default 50/s, burst 100.
    public var api = RateLimit(rate: 50, burst: 100)
    /// Uploads per client address and per token subject (`limits.upload.*`). Default 2/s, burst 10.
    public var upload = RateLimit(rate: 2, burst: 10)
    /// Playlist, segment and file requests per client address (`limits.media.*`). Default 500/s,
    /// burst 1000: a listener asks for a segment every few seconds; one address may be a NAT.
    public var media = RateLimit(rate: 500, burst: 1000)
    /// Open connections per client address (`limits.connectionsPerClient`, 0: no cap). Default 256.
    public var connectionsPerClient = 256
    /// Seconds a connection may take to send a complete request head (`limits.headerTimeout`):
    /// slowloris connections that trickle headers are closed after it. Default 10.
    public var headerTimeout: Double = 10
    /// Seconds from the end of a response to the next complete request head on a kept-alive
    /// connection (`limits.keepAliveTimeout`). Default 60.
    public var keepAliveTimeout: Double = 60
    /// Seconds a response may wait for a client that reads nothing (`limits.sendTimeout`): the
    /// connection is closed when its socket stays full that long, as nginx's `send_timeout`.
    /// A player that reads at real-time pace drains its socket within seconds. Default 30.
    public var sendTimeout: Double = 30
    /// Bytes of kernel send buffer per connection (`limits.sendBuffer`, SO_SNDBUF; 0: the
    /// kernel's autotuning). Autotuning grows it to `net.ipv4.tcp_wmem`'s maximum (4 MiB), which
    /// a client that stops reading pins for minutes of paced audio before the send timeout can
    /// even start. 256 KiB carries 20 Mbit/s at 100 ms round trip. Default 262,144.
    public var sendBuffer = 262_144
    /// Keys the limiter remembers at once (`limits.trackedClients`). Default 65,536.
    public var trackedClients = 65_536

    public init() {}

    /// Reads the `limits.*` keys, keeping defaults for those missing.
    public init(reader: ConfigReader) {
        func limit(_ name: String, _ fallback: RateLimit) -> RateLimit {
            RateLimit(rate: max(0, reader.double(forKey: ConfigKey("limits.\(name).rate"), default: fallback.rate)),
                      burst: reader.double(forKey: ConfigKey("limits.\(name).burst"), default: fallback.burst))
        }
        api = limit("api", api)
        upload = limit("upload", upload)
        media = limit("media", media)
        connectionsPerClient = max(0, reader.int(forKey: "limits.connectionsPerClient", default: connectionsPerClient))
        headerTimeout = max(0.5, reader.double(forKey: "limits.headerTimeout", default: headerTimeout))
        keepAliveTimeout = max(1, reader.double(forKey: "limits.keepAliveTimeout", default: keepAliveTimeout))
        sendTimeout = max(1, reader.double(forKey: "limits.sendTimeout", default: sendTimeout))
        sendBuffer = max(0, reader.int(forKey: "limits.sendBuffer", default: sendBuffer))
        trackedClients = max(1024, reader.int(forKey: "limits.trackedClients", default: trackedClients))
    }
}
