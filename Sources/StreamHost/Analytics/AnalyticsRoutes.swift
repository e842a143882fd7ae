public import Hummingbird
import Foundation
import HTTPTypes
import NIOCore
import StreamKit

/// Listening analytics over HTTP:
/// - `POST /v1/events?token=…`: a player's beacons, authenticated by its playback token (the
///   session and track come from the token);
/// - `GET /v1/analytics/tracks/{id}`, `GET /v1/analytics/top`: rollups (admin scope);
/// - `GET /v1/analytics/live`: listeners now, as server-sent events (or one JSON object for
///   `Accept: application/json`) (admin scope);
/// - `DELETE /v1/analytics/subjects/{subject}`: forget a token subject's listening (admin scope).
public struct AnalyticsRoutes: Sendable {
    let analytics: ListeningAnalytics
    let auth: HostAuth

    /// Largest beacon batch body.
    static let maximumBodyBytes = 64 << 10
    /// Most buckets one rollup query returns.
    static let maximumBuckets: Int64 = 10_000

    init(analytics: ListeningAnalytics, auth: HostAuth) {
        self.analytics = analytics
        self.auth = auth
    }

    /// Adds the routes to `router`.
    public func register<Context: RequestContext>(on router: some RouterMethods<Context>) {
        router.post("/v1/events") { request, context -> Response in
            try await self.events(request, client: DeliveryRoutes.client(context))
        }
        router.get("/v1/analytics/tracks/:id") { request, context -> Response in
            try await self.auth.require(.admin, request)
            return try await self.trackReport(id: try context.parameters.require("id"), request: request)
        }
        router.get("/v1/analytics/top") { request, _ -> Response in
            try await self.auth.require(.admin, request)
            return try await self.top(request)
        }
        router.get("/v1/analytics/live") { request, _ -> Response in
            try await self.auth.require(.admin, request)
            return self.live(request)
        }
        router.delete("/v1/analytics/subjects/:subject") { request, context -> Response in
            try await self.auth.require(.admin, request)
            let subject = try context.parameters.require("subject")
            guard (1...256).contains(subject.utf8.count) else {
                throw APIError(.badRequest, code: "bad_request", "subject must be 1–256 bytes")
            }
            let tag = self.auth.subjectTag(subject)
            let open = self.analytics.tracker.forget(subjectTag: tag)
            let stored = try await self.store().deleteListening(subjectTag: tag)
            return try Response.json(SubjectDeletion(subject: subject, deletedSessions: stored + open))
        }
    }

    private func store() throws(APIError) -> any AnalyticsStore {
        guard let store = analytics.store else {
            throw APIError(.notImplemented, code: "analytics_unavailable",
                           "listening history is kept in the embedded catalog (SQLite) or in ClickHouse (analytics.backend = clickhouse); this host has neither")
        }
        return store
    }

    // MARK: Beacons

    private func events(_ request: Request, client: IPAddress?) async throws -> Response {
        guard analytics.configuration.enabled else {
            throw APIError(.notFound, code: "analytics_disabled", "listening analytics are off on this host (analytics.enabled)")
        }
        guard let token = request.uri.queryParameters.get(HostAuth.tokenParameter) else {
            throw APIError.unauthorized("beacons need the session's playback token (?token=)", error: "invalid_request")
        }
        // The grant the delivery path already verified (its MAC checked once), else checked here.
        let grant: URLSigner.Grant
        if let known = auth.grants.grant(String(token)) {
            grant = known
        } else {
            switch auth.signer.grant(for: String(token)) {
            case .success(let granted): grant = granted
            case .failure: throw APIError.unauthorized("invalid playback token")
            }
        }
        // The token's track: the one whose HLS prefix it opens, checked like a playback request.
        guard let prefix = grant.prefixes.first(where: { $0.hasPrefix("/hls/") && $0.hasSuffix("/") }) else {
            throw APIError.forbidden("the token is not a track's playback token")
        }
        let track = String(prefix.dropFirst(5).dropLast())
        _ = try auth.verifySignedPath(prefix, token: String(token), now: Date(), client: client)
        guard let label = grant.session.flatMap(PlaybackSessionLabel.init) else {
            throw APIError(.badRequest, code: "no_session", "the playback token carries no session; get a new playback URL")
        }
        let body = try await request.body.collect(upTo: Self.maximumBodyBytes)
        let batch: BeaconBatch
        do {
            batch = try JSONDecoder().decode(BeaconBatch.self, from: Data(body.readableBytesView))
        } catch {
            throw APIError(.badRequest, code: "bad_request", "the body must be {\"events\": [...]}")
        }
        guard batch.events.count <= analytics.configuration.maxBatchEvents else {
            analytics.metrics.listeningEvents("too_many", count: batch.events.count)
            throw APIError(.contentTooLarge, code: "payload_too_large", "at most \(analytics.configuration.maxBatchEvents) events per batch")
        }
        let now = Date().timeIntervalSince1970
        var receipt = BeaconReceipt()
        var checked: [PlaybackBeacon] = []
        for event in batch.events {
            switch event.value.map({ $0.checked(track: track, session: label.id, now: now) }) ?? .dropped("malformed") {
            case .beacon(let beacon): checked.append(beacon)
            case .dropped(let reason): receipt.dropped[reason, default: 0] += 1
            }
        }
        let taken = analytics.tracker.receive(checked, label: label, track: track, client: client,
                                              userAgent: request.headers[.userAgent], at: now)
        receipt.accepted = taken.accepted
        receipt.dropped.merge(taken.dropped, uniquingKeysWith: +)
        analytics.metrics.listeningEvents("accepted", count: receipt.accepted)
        for (reason, count) in receipt.dropped { analytics.metrics.listeningEvents(reason, count: count) }
        return try Response.json(receipt, status: .accepted)
    }

    // MARK: Reports

    /// `from`/`to` (ISO 8601 or seconds since 1970) and `interval`, checked.
    private func range(_ request: Request, defaultInterval: RollupInterval) throws(APIError) -> (from: Int64, to: Int64, interval: RollupInterval) {
        var interval = defaultInterval
        if let text = request.uri.queryParameters.get("interval") {
            guard let parsed = RollupInterval(rawValue: String(text)) else {
                throw APIError(.badRequest, code: "bad_request", "interval must be minute, hour or day")
            }
            interval = parsed
        }
        let now = Date().timeIntervalSince1970
        let to = try Self.time(request, "to") ?? now
        let from = try Self.time(request, "from") ?? to - Double(interval.seconds) * 24
        guard from < to else { throw APIError(.badRequest, code: "bad_request", "from must be before to") }
        let first = interval.bucket(from)
        let end = interval.bucket(to) + (Double(interval.bucket(to)) < to ? interval.seconds : 0)
        guard (end - first) / interval.seconds <= Self.maximumBuckets else {
            throw APIError(.badRequest, code: "bad_request", "at most \(Self.maximumBuckets) buckets per query; choose a coarser interval")
        }
        return (first, end, interval)
    }

    private static func time(_ request: Request, _ name: String) throws(APIError) -> Double? {
        guard let text = request.uri.queryParameters.get(name) else { return nil }
        if let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds < 1e11 { return seconds }
        if let date = try? Date(String(text), strategy: .iso8601) { return date.timeIntervalSince1970 }
        throw APIError(.badRequest, code: "bad_request", "\(name) must be an ISO 8601 time or seconds since 1970")
    }

    private func trackReport(id: String, request: Request) async throws -> Response {
        let (from, to, interval) = try range(request, defaultInterval: .hour)
        let store = try store()
        let rows = try await store.rollups(track: id, interval: interval, from: from, to: to)
        let total = try await store.totals(track: id, interval: interval, from: from, to: to).first
            ?? RollupRow(track: id, interval: interval, bucket: from)
        var breakdowns: [String: [BreakdownEntry]] = [:]
        for dimension in ["codec", "rendition", "client_type", "country"] {
            breakdowns[dimension] = try await store.breakdown(track: id, dimension: dimension, from: Double(from), to: Double(to))
        }
        let report = TrackListeningReport(
            track: id, interval: interval, from: Date(timeIntervalSince1970: Double(from)), to: Date(timeIntervalSince1970: Double(to)),
            totals: ListeningFigures(total), buckets: rows.map { ListeningBucket(start: Date(timeIntervalSince1970: Double($0.bucket)), figures: ListeningFigures($0)) },
            codecs: breakdowns["codec"] ?? [], renditions: breakdowns["rendition"] ?? [], clients: breakdowns["client_type"] ?? [],
            countries: breakdowns["country"] ?? [], listenersNow: analytics.latest?.tracks[id] ?? 0)
        return try Response.json(report)
    }

    private func top(_ request: Request) async throws -> Response {
        let (from, to, interval) = try range(request, defaultInterval: .hour)
        let limit = try request.integerQuery("limit", default: 10, range: 1...100)
        let by = request.uri.queryParameters.get("by").map { String($0) } ?? "plays"
        guard ["plays", "listeners", "listenedSeconds"].contains(by) else {
            throw APIError(.badRequest, code: "bad_request", "by must be plays, listeners or listenedSeconds")
        }
        let tracks = try await store().totals(track: nil, interval: interval, from: from, to: to)
        let ranked = tracks.map { TopTrack(track: $0.track, figures: ListeningFigures($0)) }.sorted { a, b in
            let (x, y): (Double, Double) = switch by {
            case "listeners": (Double(a.figures.uniqueListeners), Double(b.figures.uniqueListeners))
            case "listenedSeconds": (a.figures.listenedSeconds, b.figures.listenedSeconds)
            default: (Double(a.figures.plays), Double(b.figures.plays))
            }
            return x != y ? x > y : a.track < b.track
        }
        return try Response.json(TopTracks(from: Date(timeIntervalSince1970: Double(from)), to: Date(timeIntervalSince1970: Double(to)),
                                           by: by, tracks: Array(ranked.prefix(limit))))
    }

    private func live(_ request: Request) -> Response {
        let empty = ListenersNow(time: Date().timeIntervalSince1970, listeners: 0, tracks: [:], mounts: [:], playsLastMinute: 0, openSessions: 0)
        if request.headers[.accept]?.contains("application/json") == true, request.headers[.accept]?.contains("text/event-stream") != true {
            return (try? Response.json(analytics.latest ?? empty)) ?? Response(status: .internalServerError)
        }
        let stream = analytics.subscribe()
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"], body: ResponseBody { writer in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            for await snapshot in stream {
                guard let json = try? encoder.encode(snapshot) else { continue }
                try await writer.write(ByteBuffer(string: "event: listeners\ndata: " + String(decoding: json, as: UTF8.self) + "\n\n"))
            }
            try await writer.finish(nil)
        })
    }
}

/// The body of `POST /v1/events`.
struct BeaconBatch: Decodable {
    var events: [Lenient<RawBeacon>]
}

/// Decodes `T`, or nil for an element that is not one (so one bad event does not refuse the batch).
struct Lenient<T: Decodable>: Decodable {
    var value: T?

    init(from decoder: any Decoder) throws {
        value = try? T(from: decoder)
    }
}

/// An event as a player sends it (times in milliseconds since 1970, positions in seconds).
struct RawBeacon: Decodable {
    var id: String
    var type: String
    var position: Double
    var to: Double?
    var clientTime: Double
    var rendition: String?
    var session: String?
    var track: String?

    /// A checked event: the beacon, or why it is dropped.
    enum Checked {
        case beacon(PlaybackBeacon)
        case dropped(String)
    }

    /// The event checked for `track` and `session` at `now`.
    func checked(track expected: String, session expectedSession: String, now: Double) -> Checked {
        guard (1...64).contains(id.utf8.count), id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }),
              let kind = PlaybackBeacon.Kind(rawValue: type),
              position.isFinite, position >= 0, position < 86_400 * 7,
              to.map({ $0.isFinite && $0 >= 0 && $0 < 86_400 * 7 }) ?? true,
              clientTime.isFinite, rendition.map({ $0.utf8.count <= 64 }) ?? true else { return .dropped("malformed") }
        if let track, track != expected { return .dropped("other_track") }
        if let session, session != expectedSession { return .dropped("other_session") }
        let seconds = clientTime / 1000
        if seconds > now + 300 { return .dropped("future") }
        if seconds < now - 86_400 { return .dropped("stale") }
        return .beacon(PlaybackBeacon(id: id, kind: kind, position: position, to: to, clientTime: seconds, rendition: rendition))
    }
}

/// Counts and rates of a bucket or a range.
struct ListeningFigures: Codable, Sendable, Hashable {
    var sessions: Int
    var plays: Int
    /// HyperLogLog estimate: relative standard error ``uniqueListenersError``.
    var uniqueListeners: Int
    var uniqueListenersError: Double
    var listenedSeconds: Double
    var averageListenedSeconds: Double
    var completions: Int
    var skips: Int
    var abandons: Int
    var completionRate: Double
    var skipRate: Double
    var stalls: Int
    var stallsPerHour: Double
    var peakListeners: Int
    /// Bots and sessions that fetched playlists but no media: not counted above.
    var excludedSessions: Int

    init(_ row: RollupRow) {
        sessions = row.sessions
        plays = row.plays
        uniqueListeners = row.uniqueListeners
        uniqueListenersError = (row.uniqueListenersError * 10_000).rounded() / 10_000
        listenedSeconds = (row.listenedSeconds * 1000).rounded() / 1000
        averageListenedSeconds = row.sessions > 0 ? (row.listenedSeconds / Double(row.sessions) * 1000).rounded() / 1000 : 0
        completions = row.completions
        skips = row.skips
        abandons = row.abandons
        completionRate = row.sessions > 0 ? Double(row.completions) / Double(row.sessions) : 0
        skipRate = row.sessions > 0 ? Double(row.skips) / Double(row.sessions) : 0
        stalls = row.stalls
        stallsPerHour = row.listenedSeconds > 0 ? Double(row.stalls) / (row.listenedSeconds / 3600) : 0
        peakListeners = row.peakListeners
        excludedSessions = row.bots
    }
}

struct ListeningBucket: Codable, Sendable, Hashable {
    var start: Date
    var figures: ListeningFigures
}

/// `GET /v1/analytics/tracks/{id}`.
struct TrackListeningReport: Codable, Sendable {
    var track: String
    var interval: RollupInterval
    var from: Date
    var to: Date
    var totals: ListeningFigures
    /// The buckets with any session or listener (empty ones are left out).
    var buckets: [ListeningBucket]
    var codecs: [BreakdownEntry]
    var renditions: [BreakdownEntry]
    var clients: [BreakdownEntry]
    var countries: [BreakdownEntry]
    var listenersNow: Int
}

struct TopTrack: Codable, Sendable {
    var track: String
    var figures: ListeningFigures
}

/// `GET /v1/analytics/top`.
struct TopTracks: Codable, Sendable {
    var from: Date
    var to: Date
    var by: String
    var tracks: [TopTrack]
}

struct SubjectDeletion: Codable, Sendable {
    var subject: String
    var deletedSessions: Int
}
