import Foundation
import HTTPTypes
public import MediaCore
import StreamKit

/// `streamhost watermark detect`: traces a leaked recording to the playback session it was
/// served to.
///
/// For each watermarked track tried (the one named, else every watermarked track of the
/// catalog), the track's clear master is rebuilt from its kept source exactly as the ladder
/// made it (MediaCore's `LadderPackager.watermarkReference(source:configuration:)`), the recording is
/// decoded, downmixed and resampled to the watermark's rate, and MediaCore's detector places it
/// in the master and reads one value per segment it covers. The segment boundaries are the
/// published renditions' (one layout per distinct priming: AAC and Opus renditions start their
/// segments a few hundred samples apart). StreamKit's `WatermarkAccusation` then scores every
/// recorded session of the track, with every placement and layout tried counted in its bound.
public struct WatermarkDetection: Sendable {
    /// One session's standing against the recording.
    public struct Candidate: Sendable, Hashable, Codable {
        public var session: String
        /// The API token subject the session was issued to, when known.
        public var subject: String?
        /// The subject's tag in the session's token, when it had one.
        public var subjectTag: String?
        /// Segments read that agree with the session's code, of those decided.
        public var agreements: Int
        public var decided: Int
        /// The bound on an innocent session scoring this well: the confidence figure.
        public var falseAccusationChance: Double
        /// Whether the bound is within ``WatermarkDetection/Report/bound``.
        public var accused: Bool
    }

    /// What a detection found.
    public struct Report: Sendable, Hashable, Codable {
        /// The track the recording was placed in (nil: in none).
        public var track: String?
        /// Where the recording starts in the track, seconds, and how well it correlates (0–1).
        public var offsetSeconds: Double?
        public var alignment: Double?
        /// Segments the recording covers whole.
        public var segmentsRead: Int
        /// Sessions recorded for the track.
        public var candidates: Int
        /// The population the bound is taken over (at least the candidates).
        public var population: Int
        /// The false-accusation bound a session must meet to be named (10⁻⁶).
        public var bound: Double
        /// The sessions named (bound met), best first; empty when nobody is.
        public var accused: [Candidate]
        /// The best-scoring session that was not named, for the record.
        public var runnerUp: Candidate?
    }

    let catalog: any Catalog
    let storage: any ObjectStorage
    let watermarks: WatermarkService
    let ladder: LadderConfiguration
    let temporaryDirectory: String

    public init(catalog: any Catalog, storage: any ObjectStorage, watermarks: WatermarkService, ladder: LadderConfiguration,
                temporaryDirectory: String) {
        self.catalog = catalog
        self.storage = storage
        self.watermarks = watermarks
        self.ladder = ladder
        self.temporaryDirectory = temporaryDirectory
    }

    /// Detects the session behind `recording` (any file MediaCore decodes), in `track` or, when
    /// nil, in every watermarked track; `population` sets the bound's scale (default 1,000,000
    /// sessions, or the candidates when more).
    public func detect(recording: String, track: String? = nil, population: Int = 1_000_000) async throws -> Report {
        let tracks: [String]
        if let track {
            guard try await catalog.track(id: track) != nil else { throw APIError.notFound("no track \(track)") }
            guard try await watermarks.isWatermarked(track: track) else {
                throw APIError(.conflict, code: "not_watermarked", "track \(track) is not watermarked")
            }
            tracks = [track]
        } else {
            tracks = try await watermarkedTracks()
        }
        var best: Report?
        var recordingPCM: [Float]?
        for id in tracks {
            guard let (manifest, source, fetched) = try await published(id) else { continue }
            defer { if fetched { try? FileManager.default.removeItem(atPath: source) } }
            guard let watermark = manifest.watermark else { continue }
            if recordingPCM == nil { recordingPCM = try Self.decode(recording, rate: watermark.parameters.sampleRate) }
            let report = try await detect(recordingPCM!, track: id, manifest: manifest, watermark: watermark, source: source, population: population)
            if best == nil || (report.accused.count, report.alignment ?? 0) > (best!.accused.count, best!.alignment ?? 0) { best = report }
        }
        return best ?? Report(track: nil, offsetSeconds: nil, alignment: nil, segmentsRead: 0, candidates: 0, population: population,
                              bound: WatermarkAccusation.falseAccusationBound, accused: [], runnerUp: nil)
    }

    private func detect(_ recording: [Float], track: String, manifest: TrackManifest, watermark: PublishedWatermark, source: String,
                        population: Int) async throws -> Report {
        let rate = watermark.parameters.sampleRate
        var configuration = ladder
        configuration.lossySampleRate = rate
        let reference = try LadderPackager.watermarkReference(source: source, configuration: configuration)
        let key = try watermarks.key(track: track)
        // One boundary layout per distinct priming among the watermarked renditions.
        var layouts: [[Int]] = []
        for rendition in manifest.renditions where rendition.variantSegments != nil && !rendition.segments.isEmpty {
            let scale = Double(rate) / Double(rendition.timescale)
            let priming = rendition.priming ?? 0
            let starts = rendition.segments.map { max(0, Int((Double(Int($0.start) - priming) * scale).rounded())) }
            let last = rendition.segments[rendition.segments.count - 1]
            let layout = starts + [Int((Double(Int(last.start) + last.duration - priming) * scale).rounded())]
            if !layouts.contains(layout) { layouts.append(layout) }
        }
        var placements: [[(segment: Int, value: Double)]] = []
        var first: WatermarkReading?
        for layout in layouts {
            let readings = try WatermarkDetector.readings(recording: recording, reference: reference, key: key, segmentBoundaries: layout,
                                                          parameters: watermark.parameters)
            if first == nil || (readings.first?.alignment ?? 0) > first!.alignment { first = readings.first ?? first }
            placements += readings.map { $0.segments.map { (segment: $0.index, value: $0.value) } }
        }
        let sessions = try await catalog.watermarkSessions(track: track)
        let verdicts = WatermarkAccusation.rank(placements: placements, candidates: sessions.map(\.sessionID),
                                                key: try watermarks.codeKey(track: track), population: population)
        let bySession = Dictionary(sessions.map { ($0.sessionID, $0) }, uniquingKeysWith: { first, _ in first })
        let candidates = verdicts.map { verdict in
            Candidate(session: verdict.session, subject: bySession[verdict.session]?.subject, subjectTag: bySession[verdict.session]?.subjectTag,
                      agreements: verdict.agreements, decided: verdict.decided, falseAccusationChance: verdict.falseAccusationChance,
                      accused: verdict.accused)
        }
        return Report(track: track, offsetSeconds: first.map { Double($0.offset) / Double(rate) }, alignment: first?.alignment,
                      segmentsRead: first?.segments.count ?? 0, candidates: sessions.count,
                      population: max(population, sessions.count) * max(1, placements.count),
                      bound: WatermarkAccusation.falseAccusationBound, accused: candidates.filter(\.accused),
                      runnerUp: candidates.first { !$0.accused })
    }

    /// Every watermarked track of the catalog.
    private func watermarkedTracks() async throws -> [String] {
        var found: [String] = []
        var after: String?
        while true {
            let page = try await catalog.tracks(limit: 200, after: after)
            for record in page where record.status == .ready {
                if try await watermarks.isWatermarked(track: record.id) { found.append(record.id) }
            }
            guard page.count == 200, let last = page.last else { return found }
            after = last.id
        }
    }

    /// A ready track's manifest and a local path of its kept source (true: a temporary copy,
    /// fetched from object storage, for the caller to remove).
    private func published(_ id: String) async throws -> (TrackManifest, String, Bool)? {
        guard let record = try await catalog.track(id: id), record.status == .ready, let json = record.manifestJSON else { return nil }
        let manifest = try JSONDecoder().decode(TrackManifest.self, from: Data(json.utf8))
        if let local = storage.localPath(of: record.sourceKey) { return (manifest, local, false) }
        let path = temporaryDirectory + "/watermark-source-\(UUID().uuidString)"
        try await storage.fetch(record.sourceKey, to: path)
        return (manifest, path, true)
    }

    /// `path` decoded, downmixed to mono and resampled to `rate`.
    static func decode(_ path: String, rate: Int) throws -> [Float] {
        let decoder = try AudioDecoder(path: path, options: DecoderOptions(channelMode: .downmixToStereo(.bs775)))
        var resampler = decoder.sampleRate == rate ? nil : try Resampler(inputRate: decoder.sampleRate, outputRate: rate, channelCount: 1, quality: .high)
        var mono: [Float] = []
        while let block = try decoder.read() {
            let samples = WatermarkDetector.mono(block.samples, channelCount: block.channelCount)
            if resampler == nil {
                mono += samples
            } else {
                samples.withUnsafeBufferPointer { resampler!.process($0, appendingTo: &mono) }
            }
        }
        mono += resampler?.flush() ?? []
        return mono
    }
}
