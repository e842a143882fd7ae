import Hummingbird
public import Logging
import Foundation
import StreamKit
import NIOCore
import Synchronization
import HTTPTypes
import NIOHTTPTypes
import CoreFoundation

/// One JSON object per line on standard error: `ts`, `level`, `logger`, `msg`, the metadata
/// (merged, string values), `source`. swift-log ships no JSON handler, hence this small one.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    private static let output = Mutex<Void>(())

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var object: [String: Any] = [
            "ts": Self.timestamp(),
            "level": event.level.rawValue,
            "logger": label,
            "msg": event.message.description,
            "source": event.source,
        ]
        for (key, value) in merged where object[key] == nil { object[key] = Self.plain(value) }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        line.append(0x0A)
        Self.output.withLock { _ in
            line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
        }
    }

    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): values.map(plain)
        case .dictionary(let values): values.mapValues(plain)
        }
    }

    /// `2026-12-04T15:04:05.123Z`, from the wall clock, by StreamKit's calendar arithmetic:
    /// reading C's `timespec` and `tm` fields breaks debug builds that see those structs through
    /// NIO's CNIOLinux module, and a date formatter costs more.
    static func timestamp(_ now: Date = Date()) -> String {
        Timestamp(millisecondsSince1970: Int64((now.timeIntervalSince1970 * 1000).rounded(.down))).iso8601WithMilliseconds
    }
}
