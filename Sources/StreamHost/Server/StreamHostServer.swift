public import Hummingbird
import HummingbirdCore
public import Logging
import Foundation
import NIOCore
import NIOPosix
import HTTPTypes
import Prometheus
public import ServiceLifecycle
import UnixSignals

/// The embedded host: local-disk storage and a SQLite catalog under the data directory, the
/// worker pool, and the HTTP API, assembled from a ``HostConfiguration``.
///
/// ```swift
/// let host = try await StreamHostServer(configuration: HostConfiguration())
/// try await host.application().runService()   // SIGTERM/SIGINT shut it down gracefully
/// ```
///
/// To embed the API in another Hummingbird app, call ``register(on:)`` on its router and add
/// ``services`` to its services.
public struct StreamHostServer: Sendable {
    public let configuration: HostConfiguration
    public let storage: any ObjectStorage
    public let catalog: any Catalog
    public let workers: WorkerPool
    public let logger: Logger
    /// Access tokens and signed playback URLs.
    public let auth: HostAuth
    /// The metrics `/metrics` serves.
    public let metrics: HostMetrics
    let temporaryDirectory: String
    /// Published objects recently served (shared by the routes and the fast path).
    let objectCache: ObjectCache
    /// Published manifests, and which tracks were recently ready.
    let manifests: ManifestCache
    /// Per-address and per-subject rate limits.
    let rateLimits: RateLimitPolicy
    /// Live mounts: their sources and listeners.
    let live: LiveMounts
    /// Sends the catalog's outbox to webhook endpoints.
    public let webhooks: WebhookDispatcher
    /// Listening analytics (nil when `analytics.enabled` is false): sessions from delivery and
    /// beacons, written to the catalog when it keeps them (``AnalyticsStore``).
    public let analytics: ListeningAnalytics?
    /// Content keys of protected tracks (``KeyService``).
    public let keys: KeyService
    /// Forensic watermarking's keys and playback sessions (``WatermarkService``).
    public let watermarks: WatermarkService

    /// Opens the configured backends (the embedded default: `objects/` and `catalog.sqlite` under
    /// `configuration.dataDirectory`; S3 and PostgreSQL when configured) with `tmp/` (uploads
    /// being received) and `staging/` (jobs being packaged) under the data directory.
    /// Leftovers of a previous run in `tmp/` and `staging/` are removed: nothing there was
    /// accepted or published.
    public init(configuration: HostConfiguration, logger: Logger = Logger(label: "veza.streamhost"),
                metrics: HostMetrics = HostMetrics()) async throws {
        let data = configuration.dataDirectory
        let temporary = data + "/tmp"
        let staging = data + "/staging"
        for directory in [temporary, staging] {
            try? FileManager.default.removeItem(atPath: directory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let storage: any ObjectStorage = try configuration.s3.map { try S3Storage(configuration: $0) }
            ?? LocalDiskStorage(root: data + "/objects")
        let catalog: any Catalog = if let url = configuration.postgresURL {
            try PostgresCatalog(url: url, logger: logger)
        } else {
            try SQLiteCatalog(path: data + "/catalog.sqlite")
        }
        let auth = try await HostAuth(configuration: configuration.auth, secrets: try HostSecrets.loadOrCreate(dataDirectory: data),
                                      catalog: catalog)
        let analyticsStore: (any AnalyticsStore)? = switch configuration.analytics.backend {
        case .catalog: nil
        case .clickhouse:
            try ClickHouseAnalyticsStore(configuration: configuration.analytics, dataDirectory: data,
                                         node: "\(ProcessInfo.processInfo.hostName):\(configuration.port)", logger: logger)
        }
        self.init(configuration: configuration, storage: storage, catalog: catalog, auth: auth, metrics: metrics,
                  temporaryDirectory: temporary, stagingDirectory: staging, logger: logger, analyticsStore: analyticsStore)
        // A KEK rotation under way: move every content key to the current KEK before serving.
        if !configuration.protection.previousKeks.isEmpty { try await keys.rewrapAll() }
    }

    /// Assembles a host over any storage and catalog (S3, PostgreSQL, …); listening analytics go
    /// to `analyticsStore`, or to the catalog when it is one (``SQLiteCatalog``).
    public init(configuration: HostConfiguration, storage: any ObjectStorage, catalog: any Catalog, auth: HostAuth,
                metrics: HostMetrics, temporaryDirectory: String, stagingDirectory: String, logger: Logger,
                analyticsStore: (any AnalyticsStore)? = nil) {
        self.configuration = configuration
        rateLimits = RateLimitPolicy(limits: configuration.limits, metrics: metrics)
        var auth = auth
        auth.rateLimits = rateLimits
        self.auth = auth
        self.metrics = metrics
        objectCache = ObjectCache(capacityBytes: configuration.objectCacheBytes)
        manifests = ManifestCache()
        self.storage = storage
        self.catalog = catalog
        self.logger = logger
        self.temporaryDirectory = temporaryDirectory
        let keys = KeyService(catalog: catalog, configuration: configuration.protection, dataDirectory: configuration.dataDirectory,
                              metrics: metrics, logger: logger)
        self.keys = keys
        let watermarks = WatermarkService(catalog: catalog, configuration: configuration.protection, dataDirectory: configuration.dataDirectory,
                                          logger: logger)
        self.watermarks = watermarks
        let pipeline = IngestPipeline(storage: storage, stagingDirectory: stagingDirectory, ladder: configuration.ladder, keys: keys,
                                      watermarks: watermarks)
        let workers = WorkerPool(catalog: catalog, pipeline: pipeline, configuration: configuration, logger: logger, metrics: metrics)
        self.workers = workers
        let webhooks = WebhookDispatcher(catalog: catalog, configuration: configuration.webhooks, logger: logger, metrics: metrics)
        self.webhooks = webhooks
        // A show's start and end are not catalog changes: they are written to the outbox as they happen.
        let liveEvent: @Sendable (HostEvent.Kind, LiveSession) -> Void = { kind, session in
            let event = HostEvent.live(kind, mount: session.mountName, session: session.id)
            Task {
                do {
                    try await catalog.appendEvent(event)
                    webhooks.notify()
                } catch {
                    logger.error("cannot record a live event", metadata: ["event": "\(kind.rawValue)", "error": "\(error)"])
                }
            }
        }
        // A live show's recording becomes a track through the same intake as an upload.
        let intake = TrackIntake(catalog: catalog, storage: storage, configuration: configuration, keys: keys, onEnqueue: { workers.notify() })
        live = LiveMounts(configuration: configuration.live, context: LiveSession.Context(
            live: configuration.live, metrics: metrics, logger: logger,
            recordingDirectory: configuration.live.record || configuration.live.mounts.contains(where: \.record)
                ? configuration.dataDirectory + "/live/recordings" : nil,
            archive: { path, key in
                let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0
                let track = try await intake.accept(file: path, byteCount: size, idempotencyKey: "live-" + key, priority: .interactive)
                try? FileManager.default.removeItem(atPath: path)
                return track.id
            },
            onStart: { liveEvent(.liveStarted, $0) },
            onEnd: { liveEvent(.liveEnded, $0) },
            trackAudio: { [temporaryDirectory] id in
                try await Self.fallbackAudio(track: id, catalog: catalog, storage: storage, temporaryDirectory: temporaryDirectory)
            }), catalog: catalog)
        let live = self.live
        if configuration.analytics.enabled {
            let timings = TrackTimings(manifests: manifests)
            var countries: MaxMindDatabase?
            if let path = configuration.analytics.countryDatabase {
                do {
                    countries = try MaxMindDatabase(path: path)
                } catch {
                    logger.error("analytics.countryDatabase cannot be read; sessions get no country", metadata: ["error": "\(error)"])
                }
            }
            let tracker = ListeningTracker(configuration: configuration.analytics, countries: countries, timing: { timings.timing($0) })
            live.listening.connect { tracker.recordLive($0) }
            analytics = ListeningAnalytics(
                tracker: tracker, store: analyticsStore ?? catalog as? any AnalyticsStore, metrics: metrics, logger: logger,
                mountListeners: { live.listenerCounts() })
        } else {
            analytics = nil
        }
    }

    /// A local file of a ready track's audio for a live fallback: its best progressive
    /// rendition (FLAC when there is one, else the highest bitrate), fetched from the object
    /// store once per version when storage is not a local disk.
    static func fallbackAudio(track id: String, catalog: any Catalog, storage: any ObjectStorage, temporaryDirectory: String) async throws -> String {
        guard let record = try await catalog.track(id: id) else { throw APIError.notFound("no track \(id)") }
        guard record.status == .ready, let json = record.manifestJSON else {
            throw APIError(.conflict, code: "not_ready", "track \(id) is \(record.status.rawValue), not ready")
        }
        let manifest = try JSONDecoder().decode(TrackManifest.self, from: Data(json.utf8))
        guard let best = manifest.renditions.filter({ $0.progressive != nil })
            .max(by: { ($0.codec == "flac" ? Int.max : $0.targetBitrate ?? 0) < ($1.codec == "flac" ? Int.max : $1.targetBitrate ?? 0) }),
              let file = best.progressive else { throw APIError.notFound("track \(id) has no progressive file to play") }
        let key = TrackLayout(track: id).version(record.version).object(file)
        if let local = storage.localPath(of: key) { return local }
        let path = temporaryDirectory + "/live-fallback-\(id)-v\(record.version)-" + (file.split(separator: "/").last.map(String.init) ?? "audio")
        if !FileManager.default.fileExists(atPath: path) { try await storage.fetch(key, to: path) }
        return path
    }

    /// What runs beside the listener, in start-up order (a `ServiceGroup` stops them in
    /// reverse): the catalog when it is a service (``PostgresCatalog`` runs its pool, migrations
    /// and job notifications), then the ``workers``, then the live mounts (which archive the
    /// recordings a crash left behind, and end every show when the host stops).
    public var services: [any Service] {
        var services: [any Service] = []
        if let catalog = catalog as? any Service { services.append(catalog) }
        services.append(workers)
        services.append(live)
        services.append(webhooks)
        if let analytics { services.append(analytics) }
        return services
    }

    /// Runs ``services`` (without a listener) while `body` runs, then shuts them down gracefully
    /// (running jobs give their leases back): for jobs and tools that use the host's catalog and
    /// workers in process, such as `streamhost ingest` without `--server`.
    public func withServices<T>(_ body: () async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try result.get()
        }
    }

    /// Adds every route of the host to `router` (a `Router` or a group of one, in another
    /// Hummingbird application too). The routes answer the host's domain errors through its one
    /// error mapping (``APIError/init(mapping:)``), whatever middleware the router has.
    public func register<Context: RequestContext>(on parent: some RouterMethods<Context>) {
        let router = parent.group().add(middleware: ErrorMappingMiddleware<Context>())
        LiveRoutes(mounts: live, auth: auth, metrics: metrics).register(on: router)
        let webhooks = self.webhooks
        WebhookRoutes(catalog: catalog, auth: auth, configuration: configuration.webhooks, onRetry: { webhooks.notify() }).register(on: router)
        TrackRoutes(operations: tracks).register(on: router)
        KeyRoutes(keys: keys, auth: auth, catalog: catalog, metrics: metrics).register(on: router)
        if let analytics { AnalyticsRoutes(analytics: analytics, auth: auth).register(on: router) }
        deliveryRoutes().register(on: router)
        let metrics = self.metrics
        router.get("/metrics") { _, _ -> Response in
            if let depth = try? await catalog.activeJobCount() { metrics.queueDepth.set(Double(depth)) }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.render())))
        }
        router.get("/openapi.json") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                     body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_json)))
        }
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/readyz") { _, _ -> Response in
            var problems: [String] = []
            do { try await catalog.check() } catch { problems.append("catalog: \(error)") }
            do { try await storage.check() } catch { problems.append("storage: \(error)") }
            if configuration.workerCount > 0 && workers.isStopped { problems.append("workers: stopped") }
            guard problems.isEmpty else {
                throw APIError(.serviceUnavailable, code: "not_ready", problems.joined(separator: "; "), retryAfter: 5)
            }
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
        }
    }

    /// The track API's operations (create from storage, read, list, delete), for transports
    /// other than the host's HTTP routes (`StreamRPC`'s gRPC services): a job enqueued wakes the
    /// workers, a deletion drops cached objects and purges the CDN, exactly as over HTTP.
    public var tracks: TrackOperations {
        let workers = self.workers
        let cache = objectCache
        let manifests = self.manifests
        let purger = configuration.cdnPurgeURL.map { CDNPurger(endpoint: $0, logger: logger) }
        let webhooks = self.webhooks
        var operations = TrackOperations(catalog: catalog, storage: storage, configuration: configuration, temporaryDirectory: temporaryDirectory,
                               auth: auth, manifests: manifests, onEnqueue: { workers.notify(); webhooks.notify() }, onDelete: { id in
                                   webhooks.notify()
                                   manifests.forget(id)
                                   cache.removeTrack(id)
                                   await purger?.purge(track: id)
                               })
        operations.keys = keys
        operations.watermarks = watermarks
        return operations
    }

    /// Traces leaked recordings of this host's watermarked tracks (`streamhost watermark detect`).
    public var watermarkDetection: WatermarkDetection {
        WatermarkDetection(catalog: catalog, storage: storage, watermarks: watermarks, ladder: configuration.ladder,
                           temporaryDirectory: temporaryDirectory)
    }

    func deliveryRoutes() -> DeliveryRoutes {
        var routes = DeliveryRoutes(catalog: catalog, storage: storage, auth: auth, configuration: configuration, metrics: metrics,
                                    cache: objectCache, manifests: manifests)
        routes.analytics = analytics?.tracker
        routes.watermarks = watermarks
        return routes
    }

    /// The Hummingbird application: the routes, the worker pool as a service, HTTP/1.1 with
    /// an idle timeout that drops stalled uploads.
    ///
    /// - Parameters:
    ///   - additionalServices: services that run and stop with the host, after ``services``
    ///     (`streamhost serve` adds the gRPC server here).
    ///   - onListening: called with the bound port once the server accepts connections
    ///     (useful with port 0).
    public func application(additionalServices: [any Service] = [],
                            onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: HostRequestContext.self)
        let clientAddresses = ClientAddressResolver(trustedProxies: configuration.trustedProxies)
        router.add(middleware: ClientAddressMiddleware(resolver: clientAddresses, metrics: metrics))
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        router.add(middleware: RateLimitMiddleware(policy: rateLimits))
        // Browser players on other origins: reads with Range, uploads with a bearer token.
        router.add(middleware: CORSMiddleware(
            allowOrigin: .all,
            allowHeaders: [.accept, .authorization, .contentType, .range, .ifRange, .ifNoneMatch, .ifModifiedSince,
                           HTTPField.Name("Idempotency-Key")!],
            allowMethods: [.get, .head, .post, .delete, .options],
            exposedHeaders: [ExposeHeadersMiddleware<HostRequestContext>.exposed],
            maxAge: .seconds(600)))
        router.add(middleware: ExposeHeadersMiddleware())
        // Innermost: Hummingbird's own errors, a request no route matches among them, answer
        // with the host's typed JSON error like every route's.
        router.add(middleware: ErrorMappingMiddleware())
        register(on: router)
        let connections = ConnectionGuard.Counter()
        let limits = configuration.limits
        let uploadIdleTimeout = configuration.uploadIdleTimeout
        let makeGuard: @Sendable () -> ConnectionGuard = {
            ConnectionGuard(counter: connections, cap: limits.connectionsPerClient, clientAddresses: clientAddresses,
                            headerTimeout: .milliseconds(Int64(limits.headerTimeout * 1000)),
                            keepAliveTimeout: .milliseconds(Int64(limits.keepAliveTimeout * 1000)),
                            sendTimeout: .milliseconds(Int64(limits.sendTimeout * 1000)),
                            bodyTimeout: .milliseconds(Int64(uploadIdleTimeout * 1000)))
        }
        let http1 = HTTP1Channel.Configuration(
            additionalChannelHandlers: [ContinueHandler(maxBodyBytes: configuration.maxUploadBytes)],
            // No idle timeout of Hummingbird's: ConnectionGuard keeps every deadline of the
            // connection (head, keep-alive, stalled body, full socket) with one timer; a second
            // timer per connection doubled the event loop's timer heap.
            idleTimeout: nil)
        let serverName = "veza-stream"
        let liveSources = LiveSourceHandler.Dependencies(mounts: live, auth: auth, metrics: metrics, logger: logger)
        let fastPath = PlaybackFastPath(delivery: deliveryRoutes(), cache: objectCache, manifests: manifests, policy: rateLimits,
                                        clientAddresses: clientAddresses, metrics: metrics, logger: logger, serverName: serverName)
        return Application(
            router: router,
            // HTTP/1.1, with hot playback requests answered on the event loop (PlaybackFastPath).
            server: HTTPServerBuilder { responder in
                PlaybackHTTP1Channel(http1: HTTP1Channel(responder: responder, configuration: http1), fastPath: fastPath,
                                     makeGuard: makeGuard, sendBuffer: limits.sendBuffer, liveSources: liveSources)
            },
            // A deep accept queue: thousands of listeners connect within seconds of a release (the
            // kernel caps it at net.core.somaxconn).
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: serverName, backlog: 4096),
            services: services + additionalServices,
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            eventLoopGroupProvider: configuration.eventLoops > 0
                ? .shared(MultiThreadedEventLoopGroup(numberOfThreads: configuration.eventLoops)) : .singleton,
            logger: logger
        )
    }

    /// Runs ``services`` (the worker pool and the catalog, no listener) until SIGTERM or SIGINT,
    /// which give running jobs back to the queue: the body of `streamhost worker`.
    public func runWorkers() async throws {
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Runs the host until SIGTERM or SIGINT, then shuts down gracefully: the listener stops
    /// accepting, in-flight requests finish, running jobs give their leases back.
    public func run(additionalServices: [any Service] = [], onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await application(additionalServices: additionalServices, onListening: onListening).runService()
    }
}

