import Hummingbird
import Prometheus
import Foundation
import HTTPTypes
import NIOCore
import StreamKit
import Synchronization

/// Content types of the objects and documents the host serves.
enum MediaContentType {
    static let hlsPlaylist = "application/vnd.apple.mpegurl"
    static let dashManifest = "application/dash+xml"

    static func forKey(_ key: String) -> String {
        let dot = key.utf8.lastIndex(of: UInt8(ascii: "."))
        return switch dot.map({ key[key.utf8.index(after: $0)...].lowercased() }) ?? "" {
        case "mp4", "m4s", "m4a": "audio/mp4"
        case "mp3": "audio/mpeg"
        case "opus", "ogg": "audio/ogg"
        case "flac": "audio/flac"
        case "json": "application/json"
        case "m3u8": hlsPlaylist
        case "mpd": dashManifest
        default: "application/octet-stream"
        }
    }
}
