import AsyncHTTPClient
import ArgumentParser
import Configuration
import Foundation
import Logging
import StreamHost
import StreamKit
import StreamRPC
import Synchronization

/// Host options shared by `serve` and `ingest`: each overrides the configuration file and
/// the `VEZA_…` environment.
struct HostOptions: ParsableArguments {
    @Option(help: "JSON configuration file (keys: host, port, data.directory, upload.maxBytes, workers.count, queue.maxDepth, …).")
    var config: String?
    @Option(help: "Data directory (objects, catalog, temporary files). Default ./data.") var dataDirectory: String?
    @Option(help: "Worker tasks running jobs. Default: the number of cores.") var workers: Int?

    func flags(extra: [String: ConfigContent] = [:]) -> [String: ConfigContent] {
        var flags = extra
        if let dataDirectory { flags["data.directory"] = .string(dataDirectory) }
        if let workers { flags["workers.count"] = .int(workers) }
        return flags
    }

    func reader(extra: [String: ConfigContent] = [:]) async throws -> ConfigReader {
        do {
            return try await HostConfiguration.reader(file: config, flags: flags(extra: extra))
        } catch {
            throw ValidationError("cannot read the configuration: \(error)")
        }
    }

    func load(extra: [String: ConfigContent] = [:]) async throws -> HostConfiguration {
        HostConfiguration(reader: try await reader(extra: extra))
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the host: HTTP API and worker pool on the embedded default (local disk + SQLite).",
        discussion: "Configuration: --config FILE, then VEZA_… environment variables (VEZA_PORT, VEZA_DATA_DIRECTORY, …), then flags. SIGTERM or SIGINT stops it gracefully."
    )

    @OptionGroup var options: HostOptions
    @Option(help: "Address to bind. Default 127.0.0.1.") var host: String?
    @Option(help: "Port (0: any free port). Default 8080.") var port: Int?
    @Option(help: "Serve the gRPC API (Protos/veza/v1/veza.proto) on this port too (grpc.port, VEZA_GRPC_PORT; 0: any free port). Default: off.")
    var grpcPort: Int?
    @Option(help: "Largest upload in bytes. Default 1 GiB.") var maxUploadBytes: Int?
    @Option(name: .customLong("trusted-proxy"),
            help: "A reverse proxy, load balancer or CDN edge (address or CIDR range) whose Forwarded / X-Forwarded-For / X-Real-IP headers name the client (server.trustedProxies). Repeatable.")
    var trustedProxies: [String] = []
    @Flag(help: "Public mode: no token needed anywhere, playback URLs unsigned (auth.public). For demos only.")
    var `public` = false
    @Option(help: "Log format: text or json (log.format, VEZA_LOG_FORMAT). Default text on a terminal, json otherwise.")
    var logFormat: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error (log.level). Default info.")
    var logLevel: String?

    func run() async throws {
        var extra: [String: ConfigContent] = [:]
        if let host { extra["host"] = .string(host) }
        if let port { extra["port"] = .int(port) }
        if let grpcPort { extra["grpc.port"] = .int(grpcPort) }
        if let maxUploadBytes { extra["upload.maxBytes"] = .int(maxUploadBytes) }
        if !trustedProxies.isEmpty { extra["server.trustedProxies"] = .stringArray(trustedProxies) }
        if `public` { extra["auth.public"] = .bool(true) }
        if let logFormat { extra["log.format"] = .string(logFormat) }
        if let logLevel { extra["log.level"] = .string(logLevel) }
        let reader = try await options.reader(extra: extra)
        let configuration = HostConfiguration(reader: reader)
        guard configuration.problems.isEmpty else {
            throw ValidationError("invalid configuration:\n" + configuration.problems.joined(separator: "\n"))
        }
        try bootstrapLogging(reader)
        let server = try await StreamHostServer(configuration: configuration)
        if configuration.auth.isPublic {
            server.logger.warning("public mode: every route is open and playback URLs are unsigned (auth.public)")
        }
        let grpc = reader.int(forKey: "grpc.port").map { port in
            VezaGRPCServer(server: server, port: port) { bound in
                FileHandle.standardOutput.write(Data("streamhost gRPC listening on \(configuration.host):\(bound)\n".utf8))
            }
        }
        try await server.run(additionalServices: grpc.map { [$0] } ?? []) { port in
            FileHandle.standardOutput.write(Data("streamhost listening on http://\(configuration.host):\(port) (data: \(configuration.dataDirectory))\n".utf8))
        }
    }
}

/// Logging from `log.format` (text or json; default json off a terminal) and `log.level`.
func bootstrapLogging(_ reader: ConfigReader) throws {
    let format = reader.string(forKey: "log.format", default: isatty(2) != 0 ? "text" : "json")
    guard let level = Logger.Level(rawValue: reader.string(forKey: "log.level", default: "info")) else {
        throw ValidationError("log.level must be one of trace, debug, info, notice, warning, error, critical")
    }
    switch format {
    case "json": LoggingSystem.bootstrap { label in
        var handler = JSONLogHandler(label: label)
        handler.logLevel = level
        return handler
    }
    case "text": LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    default: throw ValidationError("log.format must be text or json")
    }
}

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run jobs only: a worker process sharing the catalog's queue (PostgreSQL) and the object storage (S3) with any number of others.",
        discussion: "Needs catalog.backend=postgres and storage.backend=s3 to share work across machines (VEZA_CATALOG_BACKEND, VEZA_POSTGRES_URL, VEZA_STORAGE_BACKEND, VEZA_S3_…). SIGTERM or SIGINT gives running jobs back to the queue."
    )

    @OptionGroup var options: HostOptions
    @Option(help: "Log format: text or json. Default text on a terminal, json otherwise.") var logFormat: String?

    func run() async throws {
        var extra: [String: ConfigContent] = [:]
        if let logFormat { extra["log.format"] = .string(logFormat) }
        let reader = try await options.reader(extra: extra)
        let configuration = HostConfiguration(reader: reader)
        try bootstrapLogging(reader)
        let host = try await StreamHostServer(configuration: configuration)
        if configuration.postgresURL == nil || configuration.s3 == nil {
            host.logger.warning("worker on the embedded default: it shares work only with processes on this machine and data directory")
        }
        FileHandle.standardOutput.write(Data("streamhost worker \(host.workers.instance) running \(configuration.workerCount) job slots (data: \(configuration.dataDirectory))\n".utf8))
        try await host.runWorkers()
    }
}

struct Ingest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit files for packaging, to a running host (--server) or in this process, with a progress bar per file."
    )

    @Argument(help: "Audio files.") var files: [String]
    @Option(help: "A running host, e.g. http://127.0.0.1:8080. Without it the files are packaged in this process.")
    var server: String?
    @Option(help: "Access token with scope upload for --server (default: $VEZA_TOKEN; see `streamhost token`).")
    var token: String?
    @OptionGroup var options: HostOptions

    func run() async throws {
        let display = ProgressDisplay(labels: files.map { ($0 as NSString).lastPathComponent })
        let failures: Int
        if let server {
            failures = try await remote(server: server, display: display)
        } else {
            failures = try await local(display: display)
        }
        if failures > 0 { throw ExitCode(3) }
    }

    /// Uploads each file (streamed from disk), then polls the tracks until each is ready or failed.
    private func remote(server: String, display: ProgressDisplay) async throws -> Int {
        guard URL(string: server)?.host != nil else { throw ValidationError("--server must be a URL such as http://127.0.0.1:8080") }
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            let failures = try await remote(client: APIClient(base: server, token: token ?? ProcessInfo.processInfo.environment["VEZA_TOKEN"], http: http),
                                            display: display)
            try await http.shutdown()
            return failures
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    private func remote(client: APIClient, display: ProgressDisplay) async throws -> Int {
        var ids: [Int: String] = [:]
        for (index, file) in files.enumerated() {
            do {
                ids[index] = try await client.upload(file: file).id
                display.update(index, fraction: 0, status: "queued")
            } catch {
                display.update(index, fraction: 0, status: "refused: \(error)", done: true)
            }
        }
        var failures = files.count - ids.count
        while !ids.isEmpty {
            try await Task.sleep(for: .milliseconds(500))
            for (index, id) in ids {
                guard let track = try? await client.track(id) else { continue }
                switch track.status {
                case .ready:
                    display.update(index, fraction: 1, status: "ready \(id)", done: true)
                    ids[index] = nil
                case .failed:
                    display.update(index, fraction: track.progress / 100, status: "failed: \(track.failureReason ?? "")", done: true)
                    ids[index] = nil
                    failures += 1
                default:
                    display.update(index, fraction: track.progress / 100, status: track.status.rawValue)
                }
            }
        }
        return failures
    }

    /// Opens the data directory, accepts each file, and runs the worker pool until every one
    /// of them is ready or failed.
    private func local(display: ProgressDisplay) async throws -> Int {
        let configuration = try await options.load()
        let host = try await StreamHostServer(configuration: configuration)
        // The catalog (PostgreSQL runs as a service) and the workers run while the files are
        // accepted and packaged, and stop gracefully afterwards.
        return try await host.withServices {
            let intake = TrackIntake(catalog: host.catalog, storage: host.storage, configuration: configuration, onEnqueue: { host.workers.notify() })
            var ids: [Int: String] = [:]
            var failures = 0
            for (index, file) in files.enumerated() {
                // Intake consumes its file: hand it a copy.
                let copy = configuration.dataDirectory + "/tmp/ingest-\(UUID().uuidString)"
                do {
                    try FileManager.default.copyItem(atPath: file, toPath: copy)
                    let size = (try FileManager.default.attributesOfItem(atPath: copy)[.size] as? Int) ?? 0
                    let record = try await intake.accept(file: copy, byteCount: size, idempotencyKey: nil, priority: .interactive)
                    ids[index] = record.id
                    display.update(index, fraction: 0, status: "queued")
                } catch {
                    // The same domain errors the API maps to statuses (IntakeError, CatalogError, …).
                    try? FileManager.default.removeItem(atPath: copy)
                    display.update(index, fraction: 0, status: "refused: \(errorMessage(error))", done: true)
                    failures += 1
                }
            }
            while !ids.isEmpty {
                try await Task.sleep(for: .milliseconds(250))
                for (index, id) in ids {
                    guard let record = try? await host.catalog.track(id: id) else { continue }
                    switch record.status {
                    case .ready:
                        display.update(index, fraction: 1, status: "ready \(id)", done: true)
                        ids[index] = nil
                    case .failed:
                        display.update(index, fraction: record.progress / 100, status: "failed: \(record.failureReason ?? "")", done: true)
                        ids[index] = nil
                        failures += 1
                    default:
                        display.update(index, fraction: record.progress / 100, status: record.status.rawValue)
                    }
                }
            }
            return failures
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint an access token (JWT) for operators and scripts, with the host's keys.",
        discussion: "Uses the configuration (--config, VEZA_…) and the data directory's secrets.json, like `serve`. Prints the token on standard output and its claims on standard error."
    )

    @Option(parsing: .upToNextOption, help: "Scopes: upload, stream, admin, live. Default stream.") var scope: [String] = ["stream"]
    @Option(help: "Lifetime, e.g. 90s, 15m, 1h, 7d. Default 1h.") var ttl: String = "1h"
    @Option(help: "Subject (sub). Default: operator.") var subject: String = "operator"
    @Option(help: "Restrict the token to one track (trk claim).") var track: String?
    @Option(help: "Signing key: hs256 (default), es256 or rs256 (needs the private key configured).") var key: String = "hs256"
    @Option(help: "Token id (jti), for revocation. Default: random.") var id: String?
    @OptionGroup var options: HostOptions

    func run() async throws {
        let configuration = try await options.load()
        guard let seconds = parseDuration(ttl) else { throw ValidationError("--ttl must look like 90s, 15m, 1h or 7d") }
        let auth = try await HostAuth(configuration: configuration.auth,
                                      secrets: try HostSecrets.loadOrCreate(dataDirectory: configuration.dataDirectory), catalog: nil)
        let scopes = try scope.map { word in
            guard let scope = AccessScope(rawValue: word) else { throw ValidationError("unknown scope \(word): use upload, stream, admin or live") }
            return scope
        }
        let now = Date()
        let claims = AccessClaims(subject: subject, audience: configuration.auth.audience, scopes: scopes, issuedAt: now,
                                  expires: now.addingTimeInterval(seconds), id: id ?? UUID().uuidString.lowercased(), track: track)
        let token = try await auth.mint(claims, keyID: key)
        print(token)
        FileHandle.standardError.write(Data("jti=\(claims.tokenID) scope=\(claims.scope) exp=\(Int(claims.expiresAt.timeIntervalSince1970))\n".utf8))
    }
}

struct Sign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign a playback URL path (e.g. /hls/TRACK/master.m3u8) with the host's URL-signing key.",
        discussion: "The token opens every playback path of the track: /hls/TRACK/, /dash/TRACK/, /media/TRACK/ and its waveform."
    )

    @Argument(help: "Path on the host, e.g. /hls/t_abc/master.m3u8.") var path: String
    @Option(help: "Lifetime, e.g. 90s, 15m, 1h, 7d. Default 1h.") var ttl: String = "1h"
    @Option(help: "How many URLs to print, each a playback session of its own (1–1,000,000). Default 1.") var count: Int = 1
    @Option(help: "The listener the sessions are counted for (analytics; only a keyed hash is kept). Default: none.") var listener: String?
    @Option(help: "A file of listeners, one per line: one URL per line, each a session of that line's listener (instead of --count and --listener).")
    var listenersFile: String?
    @OptionGroup var options: HostOptions

    func run() async throws {
        let configuration = try await options.load()
        guard let seconds = parseDuration(ttl) else { throw ValidationError("--ttl must look like 90s, 15m, 1h or 7d") }
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be 1–1,000,000") }
        var subjects: [String?] = Array(repeating: listener, count: count)
        if let listenersFile {
            guard let text = try? String(contentsOfFile: listenersFile, encoding: .utf8) else {
                throw ValidationError("--listeners-file \(listenersFile): cannot read it")
            }
            subjects = text.split(whereSeparator: \.isNewline).map { String($0) }
            guard (1...1_000_000).contains(subjects.count) else { throw ValidationError("--listeners-file must name 1–1,000,000 listeners") }
        }
        let parts = path.split(separator: "/")
        guard parts.count >= 2, ["hls", "dash", "media"].contains(parts[0]) || (parts[0] == "v1" && parts.count >= 3) else {
            throw ValidationError("the path must start with /hls/TRACK, /dash/TRACK or /media/TRACK")
        }
        let track = parts[0] == "v1" ? String(parts[2]) : String(parts[1])
        var auth = configuration.auth
        auth.isPublic = false
        auth.playbackTTL = seconds
        let signer = try await HostAuth(configuration: auth,
                                        secrets: try HostSecrets.loadOrCreate(dataDirectory: configuration.dataDirectory), catalog: nil)
        let now = Date()
        var lines = ""
        for subject in subjects { lines += signer.signedPath(path, track: track, now: now, subject: subject) + "\n" }
        print(lines, terminator: "")
    }
}

/// `90s`, `15m`, `1h`, `7d` or plain seconds.
func parseDuration(_ text: String) -> Double? {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    if let unit = text.last, let scale = units[unit], let value = Double(text.dropLast()), value > 0 { return value * scale }
    if let value = Double(text), value > 0 { return value }
    return nil
}

struct Watermark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Forensic watermarks: trace a leaked recording to the playback session it was served to.",
        subcommands: [WatermarkDetect.self]
    )
}

struct WatermarkDetect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detect",
        abstract: "Name the playback session (and its token subject) behind a leaked recording of a watermarked track.",
        discussion: """
            Reads the catalog and storage of the configuration (--config, VEZA_…), like `serve`, and the track's kept source. \
            The recording may be any length from about two minutes, start anywhere, and be in any format the host decodes. \
            A session is named only when the chance that an innocent one scores as well is at most 1e-6 over --population sessions. \
            Exit status 0 whether or not a session is named (see the output); 1 on errors.
            """
    )

    @Argument(help: "The leaked recording.") var file: String
    @Option(help: "The track it is a copy of (default: every watermarked track is tried).") var track: String?
    @Option(help: "Sessions the false-accusation bound is taken over (at least those recorded). Default 1000000.")
    var population: Int = 1_000_000
    @Flag(help: "Print the report as JSON.") var json = false
    @OptionGroup var options: HostOptions

    func run() async throws {
        guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let configuration = try await options.load(extra: ["workers.count": .int(0)])
        let host = try await StreamHostServer(configuration: configuration)
        let report = try await host.withServices {
            try await host.watermarkDetection.detect(recording: file, track: track, population: population)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        guard let track = report.track else {
            print("not placed in any watermarked track")
            return
        }
        print("track \(track) from " + String(format: "%.1f s (alignment %.2f)", report.offsetSeconds ?? 0, report.alignment ?? 0)
              + ", \(report.segmentsRead) segments read, \(report.candidates) sessions recorded")
        func line(_ candidate: WatermarkDetection.Candidate) -> String {
            let who = candidate.subject.map { "subject \($0)" } ?? candidate.subjectTag.map { "subject tag \($0)" } ?? "no subject"
            return "session \(candidate.session) (\(who)): \(candidate.agreements) of \(candidate.decided) segments agree, "
                + String(format: "false-accusation bound %.2g", candidate.falseAccusationChance)
        }
        if report.accused.isEmpty {
            print("no session named (bound \(report.bound) over \(report.population) session-placements)")
            if let runnerUp = report.runnerUp { print("best: " + line(runnerUp)) }
        }
        for candidate in report.accused { print("NAMED " + line(candidate)) }
    }
}
