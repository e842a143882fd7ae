import Foundation
import MediaCore
import Synchronization

/// A published track's timing, as the listening tracker needs it: each rendition's segments
/// (media start and duration, in seconds, by segment number) and progressive files (size).
final class TrackTiming: Sendable {
    struct Span: Sendable, Hashable {
        var start: Double
        var duration: Double
    }

    let track: String
    let version: Int
    let durationSeconds: Double
    /// Rendition id → segments by number (numbers start at 1; index 0 is unused).
    let segments: [String: [Span]]
    /// `progressive/{file}` → (rendition id, size in bytes).
    let progressive: [String: (rendition: String, bytes: Int64)]
    /// Rendition id → codec (`aac`, `opus`, `mp3`, `flac`).
    let codecs: [String: String]
    /// The longest segment of any rendition (seconds).
    let longestSegment: Double
    /// The highest segment number of any rendition.
    let lastSegment: Int

    convenience init(track: String, version: Int, manifest: TrackManifest) {
        self.init(track: track, version: version, durationSeconds: manifest.durationSeconds, renditions: manifest.renditions)
    }

    init(track: String, version: Int, durationSeconds: Double, renditions: [PublishedRendition]) {
        self.track = track
        self.version = version
        self.durationSeconds = durationSeconds
        var segments: [String: [Span]] = [:]
        var progressive: [String: (String, Int64)] = [:]
        var codecs: [String: String] = [:]
        var longest = 0.0
        var last = 0
        for rendition in renditions {
            codecs[rendition.id] = rendition.codec
            if let file = rendition.progressive, let size = rendition.progressiveByteSize {
                progressive[file] = (rendition.id, Int64(size))
            }
            guard !rendition.segments.isEmpty, rendition.timescale > 0 else { continue }
            let scale = Double(rendition.timescale)
            let top = rendition.segments.map(\.number).max() ?? 0
            guard top <= 1_000_000 else { continue }
            var spans = [Span](repeating: Span(start: 0, duration: 0), count: top + 1)
            for segment in rendition.segments where segment.number >= 1 {
                let span = Span(start: Double(segment.start) / scale, duration: Double(segment.duration) / scale)
                spans[segment.number] = span
                longest = max(longest, span.duration)
            }
            last = max(last, top)
            segments[rendition.id] = spans
        }
        self.segments = segments
        self.progressive = progressive
        self.codecs = codecs
        longestSegment = longest
        lastSegment = last
    }
}

/// Track timings made from the manifests of ready tracks, kept per track and version.
final class TrackTimings: Sendable {
    private let manifests: ManifestCache
    private let cache = Mutex<[String: TrackTiming]>([:])

    init(manifests: ManifestCache) { self.manifests = manifests }

    /// The timing of `track`'s ready version (nil when the host has not seen it ready lately).
    func timing(_ track: String) -> TrackTiming? {
        guard let ready = manifests.peekReady(track) else { return nil }
        if let known = cache.withLock({ $0[track] }), known.version == ready.version { return known }
        let made = TrackTiming(track: track, version: ready.version, manifest: ready.manifest)
        cache.withLock { cache in
            if cache.count >= 10_000 { cache.removeAll(keepingCapacity: true) }
            cache[track] = made
        }
        return made
    }
}
