import Foundation

/// What one delivery request fetched, as the listening tracker counts it.
enum DeliveredObject: Sendable, Hashable {
    /// A multivariant or media playlist, or the MPD.
    case playlist
    /// A rendition's init segment.
    case initSegment(rendition: String)
    /// Segment `number` (from 1) of a rendition.
    case segment(rendition: String, number: Int)
    /// Bytes `range` of a progressive file (`progressive/{file}`).
    case progressive(file: String, range: Range<Int64>)
    /// Anything else under the track's token (the waveform).
    case other

    /// The object under `/media/{id}/` at `rest` (`v{n}/cmaf/{rendition}/seg-{k}.m4s`, …), and
    /// the version it belongs to.
    init(mediaPath rest: Substring, range: Range<Int64>?) {
        let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2 else { self = .other; return }
        if parts.count == 4, parts[1] == "cmaf" {
            let file = parts[3]
            if file == "init.mp4" {
                self = .initSegment(rendition: String(parts[2]))
            } else if file.hasPrefix("seg-"), file.hasSuffix(".m4s"),
                      // `seg-{k}.m4s`, or a watermark variant's `seg-{k}-{tag}.m4s`
                      let number = Int(file.dropFirst(4).dropLast(4).prefix { $0 != "-" }) {
                self = .segment(rendition: String(parts[2]), number: number)
            } else {
                self = .other
            }
        } else if parts.count == 3, parts[1] == "progressive" {
            self = .progressive(file: "progressive/" + parts[2], range: range ?? 0..<Int64.max)
        } else {
            self = .other
        }
    }

    var isMedia: Bool {
        switch self {
        case .segment, .progressive: true
        default: false
        }
    }
}

/// One playback event a player reported (`POST /v1/events`), checked.
struct PlaybackBeacon: Sendable, Hashable {
    enum Kind: String, Sendable, Hashable, CaseIterable {
        case play, pause, resume, seek, skip, complete, stall
        case qualityChange = "quality_change"
        case error
    }

    var id: String
    var kind: Kind
    /// Media position (seconds) when it happened; for `seek`, the position left.
    var position: Double
    /// `seek`: the position sought to.
    var to: Double?
    /// The client's clock (seconds since 1970).
    var clientTime: Double
    /// `quality_change`: the rendition now playing.
    var rendition: String?
}
