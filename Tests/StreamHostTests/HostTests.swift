import Foundation
import MediaCore
import Testing
import TestSupport

/// A real `streamhost serve` process on a loopback port, with its own data directory.
final class HostProcess {
    let dataDirectory: String
    /// The host's environment; a test may change it between a ``stop()`` and the next ``start(workers:port:)``.
    var environment: [String: String]
    private(set) var process: Process?
    private(set) var port = 0
    /// The gRPC port, when the host was started with `--grpc-port`.
    private(set) var grpcPort = 0
    /// An admin token minted with `streamhost token` before start; ``curl(_:timeLimit:authenticated:)``
    /// sends it unless told not to.
    private(set) var adminToken = ""

    /// Extra arguments for `serve` and `token` (e.g. `--config FILE`).
    let arguments: [String]
    /// The host's standard error (its JSON log lines).
    let logPath: String

    init(name: String, environment: [String: String] = [:], arguments: [String] = []) {
        dataDirectory = Fixtures.directory + "/host-\(name)-\(UUID().uuidString.prefix(6))"
        logPath = dataDirectory + ".log"
        var environment = environment
        // The suites drive one host from one address much faster than any client would: rate
        // limits are off unless a test sets them (LimitsTests does).
        for key in ["VEZA_LIMITS_API_RATE", "VEZA_LIMITS_UPLOAD_RATE", "VEZA_LIMITS_MEDIA_RATE"] where environment[key] == nil {
            environment[key] = "0"
        }
        // Against PostgreSQL (make test-scale) each host gets a database of its own, as each
        // embedded host gets its own SQLite file: the suites assume a fresh catalog.
        if let base = Self.postgresBaseURL, environment["VEZA_POSTGRES_URL"] == nil {
            let name = "veza_\(UUID().uuidString.prefix(8).lowercased())"
            var admin = URLComponents(string: base)
            let owner = admin?.user ?? "veza"
            admin?.user = "postgres"
            admin?.password = nil
            admin?.path = "/postgres"
            _ = try? Subprocess.run("psql", [admin?.string ?? base, "-c", "CREATE DATABASE \(name) OWNER \(owner)"])
            environment["VEZA_POSTGRES_URL"] = base.replacingOccurrences(of: #"/[^/]*$"#, with: "/" + name, options: .regularExpression)
        }
        self.environment = environment
        self.arguments = arguments
    }

    /// The test database server when the suites run against PostgreSQL.
    static var postgresBaseURL: String? {
        let env = ProcessInfo.processInfo.environment
        return env["VEZA_CATALOG_BACKEND"] == "postgres" ? env["VEZA_POSTGRES_URL"] : nil
    }

    var base: String { "http://127.0.0.1:\(port)" }
    var pid: Int32 { process?.processIdentifier ?? 0 }

    /// Starts the host and waits for its "listening" line.
    func start(workers: Int = 2, port requestedPort: Int = 0) throws {
        if adminToken.isEmpty { adminToken = try mint(["--scope", "admin", "--ttl", "2h"]) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Fixtures.builtProduct("streamhost"))
        process.arguments = ["serve", "--port", "\(requestedPort)", "--data-directory", dataDirectory, "--workers", "\(workers)"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["LOG_LEVEL"] = "warning"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(30)
        var text = ""
        while Date() < deadline {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            let expectsGRPC = environment["VEZA_GRPC_PORT"] != nil
            if let range = text.range(of: #"http://127\.0\.0\.1:(\d+)"#, options: .regularExpression),
               !expectsGRPC || text.contains("gRPC listening on 127.0.0.1:") {
                port = Int(text[range].split(separator: ":").last!)!
                if let grpc = text.range(of: #"gRPC listening on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    grpcPort = Int(text[grpc].split(separator: ":").last!)!
                }
                // Keep draining stdout so the host never blocks on a full pipe.
                pipe.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
                return
            }
        }
        throw TestError.failed("the host did not report a listening port: \(text)")
    }

    /// Runs `streamhost token` on this host's data directory; returns the token.
    func mint(_ arguments: [String]) throws -> String {
        let variables = environment.map { "\($0.key)=\($0.value)" }
        let result = try Subprocess.run("env", variables + [try Fixtures.builtProduct("streamhost"), "token", "--data-directory", dataDirectory] + self.arguments + arguments)
        guard result.succeeded else { throw TestError.failed("streamhost token failed: \(result.stderr)") }
        return String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// SIGTERM and wait (graceful shutdown).
    func stop() {
        guard let process, process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }

    /// SIGKILL: the crash.
    func kill9() {
        guard let process, process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: dataDirectory)
        try? FileManager.default.removeItem(atPath: logPath)
    }

    /// `curl` with `arguments`; returns (status, body, headers).
    func curl(_ arguments: [String], timeLimit: Double = 120, authenticated: Bool = true) throws -> (status: Int, body: String, headers: String) {
        let headersPath = Fixtures.directory + "/curl-\(UUID().uuidString).h"
        defer { try? FileManager.default.removeItem(atPath: headersPath) }
        let auth = authenticated && !adminToken.isEmpty ? ["-H", "Authorization: Bearer \(adminToken)"] : []
        let result = try Subprocess.run("curl", ["-sS", "--noproxy", "*", "-D", headersPath, "-o", "-", "-w", "\n%{http_code}"] + auth + arguments, timeLimit: timeLimit)
        let output = String(decoding: result.stdout, as: UTF8.self)
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.last ?? "") ?? 0
        let headers = (try? String(contentsOfFile: headersPath, encoding: .utf8)) ?? ""
        return (status, lines.dropLast().joined(separator: "\n"), headers)
    }

    func upload(_ file: String, contentType: String = "application/octet-stream", extra: [String] = []) throws -> (status: Int, json: [String: Any], headers: String) {
        let reply = try curl(["-X", "POST", "-H", "Content-Type: \(contentType)", "--data-binary", "@" + file] + extra + [base + "/v1/tracks"])
        return (reply.status, (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]) ?? [:], reply.headers)
    }

    func track(_ id: String) throws -> [String: Any] {
        let reply = try curl([base + "/v1/tracks/\(id)"])
        return (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]) ?? [:]
    }

    /// Polls until the track is ready or failed; `check` sees every intermediate state.
    func waitForTrack(_ id: String, timeLimit: Double = 300, check: ([String: Any]) throws -> Void = { _ in }) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeLimit)
        while Date() < deadline {
            let track = try track(id)
            try check(track)
            if let status = track["status"] as? String, status == "ready" || status == "failed" { return track }
            Thread.sleep(forTimeInterval: 0.3)
        }
        throw TestError.failed("track \(id) did not finish in \(timeLimit) s")
    }

    /// Files left in `tmp/` (uploads being received) and `staging/`.
    func temporaryFiles() -> [String] {
        ["tmp", "staging"].flatMap { directory in
            (FileManager.default.enumerator(atPath: dataDirectory + "/" + directory)?.allObjects as? [String] ?? []).map { directory + "/" + $0 }
        }
    }

    /// Every object a published version's manifest names exists (or there is no manifest).
    func publishedConsistently(_ id: String) throws -> Bool {
        let prefix = "tracks/\(id)/v1"
        let keys = try objectKeys(prefix: prefix + "/")
        guard keys.contains(prefix + "/manifest.json"), let data = try object(prefix + "/manifest.json") else { return true }
        let manifest = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        for rendition in manifest["renditions"] as? [[String: Any]] ?? [] {
            var paths = (rendition["segments"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }
            paths += [rendition["initSegment"] as? String, rendition["progressive"] as? String].compactMap { $0 }
            for path in paths where !keys.contains(prefix + "/" + path) { return false }
        }
        return true
    }

    // MARK: Objects, on whichever storage the host runs with

    /// The S3 settings when the suite runs against S3 (`VEZA_STORAGE_BACKEND=s3`, as `make test-scale` sets).
    static var s3: (endpoint: String, bucket: String, environment: [String])? {
        let env = ProcessInfo.processInfo.environment
        guard env["VEZA_STORAGE_BACKEND"] == "s3", let endpoint = env["VEZA_S3_ENDPOINT"], let bucket = env["VEZA_S3_BUCKET"] else { return nil }
        return (endpoint, bucket, ["AWS_ACCESS_KEY_ID=\(env["VEZA_S3_ACCESS_KEY"] ?? "")", "AWS_SECRET_ACCESS_KEY=\(env["VEZA_S3_SECRET_KEY"] ?? "")",
                                   "AWS_DEFAULT_REGION=\(env["VEZA_S3_REGION"] ?? "us-east-1")", "AWS_EC2_METADATA_DISABLED=true"])
    }

    /// `aws` against the test store, without the environment's proxy.
    static func aws(_ arguments: [String]) throws -> ProcessResult {
        guard let s3 else { throw TestError.failed("not running against S3") }
        return try Subprocess.run("env", ["-u", "http_proxy", "-u", "https_proxy", "-u", "HTTP_PROXY", "-u", "HTTPS_PROXY"] + s3.environment
                                  + [try Subprocess.locate("aws"), "--endpoint-url", s3.endpoint] + arguments)
    }

    /// Keys under `prefix` in the host's storage.
    func objectKeys(prefix: String) throws -> Set<String> {
        if let s3 = Self.s3 {
            let result = try Self.aws(["s3", "ls", "--recursive", "s3://\(s3.bucket)/\(prefix)"])
            // Lines: "2026-11-30 21:00:00     1234 tracks/…/file"
            return Set(String(decoding: result.stdout, as: UTF8.self).split(separator: "\n").compactMap { line in
                line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true).last.map(String.init)
            })
        }
        let root = dataDirectory + "/objects/"
        let base = root + prefix
        let entries = FileManager.default.enumerator(atPath: base)?.allObjects as? [String] ?? []
        return Set(entries.filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: base + name, isDirectory: &isDirectory) && !isDirectory.boolValue && !name.contains(".part-")
        }.map { prefix + $0 })
    }

    /// An object's bytes, or nil.
    func object(_ key: String) throws -> Data? {
        if let s3 = Self.s3 {
            let result = try Self.aws(["s3", "cp", "s3://\(s3.bucket)/\(key)", "-"])
            return result.succeeded ? result.stdout : nil
        }
        return FileManager.default.contents(atPath: dataDirectory + "/objects/" + key)
    }

    /// Puts a file into the host's storage under `key` (as a platform stages an object for
    /// gRPC's CreateTrack): into the bucket against S3, under `objects/` on local disk.
    func putObject(file: String, key: String) throws {
        if let s3 = Self.s3 {
            let result = try Self.aws(["s3", "cp", file, "s3://\(s3.bucket)/\(key)"])
            guard result.succeeded else { throw TestError.failed("aws s3 cp: \(result.stderr)") }
            return
        }
        let path = dataDirectory + "/objects/" + key
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: file, toPath: path)
    }

    func objectExists(_ key: String) throws -> Bool {
        if Self.s3 != nil { return try objectKeys(prefix: key).contains(key) }
        return FileManager.default.fileExists(atPath: dataDirectory + "/objects/" + key)
    }
}

/// The default ladder's rendition ids.
let ladderIDs = LadderRendition.defaultLadder.map(\.id)

@Suite("streamhost serve: upload, queue, pipeline", .serialized)
struct HostTests {
    @Test("uploads of MP3, FLAC, WAV, Vorbis, Opus and M4A (raw and multipart) reach ready with the whole ladder published")
    func formatsReachReady() throws {
        let host = HostProcess(name: "formats")
        try host.start()
        let source = Fixtures.sourceArguments(seconds: 4) + Fixtures.tagArguments
        let files: [(String, [String], String)] = [
            ("up.mp3", ["-c:a", "libmp3lame", "-b:a", "192k"], "audio/mpeg"),
            ("up.flac", ["-c:a", "flac"], "audio/flac"),
            ("up.wav", ["-c:a", "pcm_s24le"], "audio/wav"),
            ("up.ogg", ["-c:a", "libvorbis"], "audio/ogg"),
            ("up.opus", ["-c:a", "libopus"], "audio/opus"),
            ("up.m4a", ["-c:a", "aac", "-b:a", "160k"], "audio/mp4"),
        ]
        var ids: [(String, String)] = []
        for (index, (name, encode, type)) in files.enumerated() {
            let path = try Fixtures.make("host-" + name, source: source, encode)
            // Every other upload as multipart/form-data, the rest as a raw body.
            let reply = index % 2 == 0
                ? try host.upload(path, contentType: type)
                : try { () throws -> (status: Int, json: [String: Any], headers: String) in
                    let r = try host.curl(["-F", "file=@\(path);type=\(type)", host.base + "/v1/tracks"])
                    return (r.status, (try? JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]) ?? [:], r.headers)
                }()
            #expect(reply.status == 202, "\(name): \(reply.json)")
            let id = try #require(reply.json["id"] as? String)
            #expect(reply.json["jobId"] is String)
            #expect(reply.json["status"] as? String == "queued")
            ids.append((name, id))
        }
        for (name, id) in ids {
            let track = try host.waitForTrack(id) { state in
                if state["status"] as? String != "ready" { #expect(state["renditions"] == nil, "\(name): renditions listed before ready") }
            }
            #expect(track["status"] as? String == "ready", "\(name): \(track["failureReason"] ?? "")")
            let renditions = track["renditions"] as? [[String: Any]] ?? []
            #expect(renditions.compactMap { $0["id"] as? String } == ladderIDs, "\(name)")
            #expect(try host.publishedConsistently(id))
            #expect(try host.objectExists("tracks/\(id)/v1/manifest.json"))
            let metadata = track["metadata"] as? [String: Any]
            #expect((metadata?["tags"] as? [String: Any])?["title"] as? String == "Fixture Tone", "\(name)")
            #expect(track["loudness"] is [String: Any])
        }
        // Listing, pagination and delete.
        let page = try host.curl([host.base + "/v1/tracks?limit=4"])
        let json = try JSONSerialization.jsonObject(with: Data(page.body.utf8)) as? [String: Any] ?? [:]
        #expect((json["tracks"] as? [Any])?.count == 4)
        let next = try #require(json["next"] as? String)
        let second = try host.curl([host.base + "/v1/tracks?limit=4&after=\(next)"])
        let secondJSON = try JSONSerialization.jsonObject(with: Data(second.body.utf8)) as? [String: Any] ?? [:]
        #expect((secondJSON["tracks"] as? [Any])?.count == 2)
        #expect(secondJSON["next"] == nil)
        let (_, deleted) = ids[0]
        #expect(try host.curl(["-X", "DELETE", host.base + "/v1/tracks/\(deleted)"]).status == 204)
        #expect(try host.objectKeys(prefix: "tracks/\(deleted)/").isEmpty)
        #expect(try host.curl([host.base + "/v1/tracks/\(deleted)"]).status == 404)
        #expect(host.temporaryFiles().isEmpty)
        host.stop()
    }

    @Test("Idempotency-Key makes a retried upload return the same track")
    func idempotency() throws {
        let host = HostProcess(name: "idem")
        try host.start(workers: 0)
        let path = try Fixtures.make("host-idem.flac", source: Fixtures.sourceArguments(seconds: 1), ["-c:a", "flac"])
        let first = try host.upload(path, extra: ["-H", "Idempotency-Key: abc-123"])
        let second = try host.upload(path, extra: ["-H", "Idempotency-Key: abc-123"])
        #expect(first.status == 202 && second.status == 202)
        #expect(first.json["id"] as? String == second.json["id"] as? String)
        let third = try host.upload(path, extra: ["-H", "Idempotency-Key: other"])
        #expect(third.json["id"] as? String != first.json["id"] as? String)
        let list = try host.curl([host.base + "/v1/tracks"])
        #expect(((try JSONSerialization.jsonObject(with: Data(list.body.utf8)) as? [String: Any])?["tracks"] as? [Any])?.count == 2)
        host.stop()
    }

    @Test("hostile files, unknown bytes and empty bodies get typed 4xx errors or a failed track; nothing is left behind")
    func hostileUploads() throws {
        let host = HostProcess(name: "hostile")
        try host.start()
        var refused = 0
        var accepted: [String] = []
        var acceptedNames: [String] = []
        for entry in try HostileCorpus.make() {
            let reply = try host.upload(entry.path)
            if reply.status == 202 {
                accepted.append(try #require(reply.json["id"] as? String))
                acceptedNames.append(entry.name)
            } else {
                #expect([400, 413, 415, 422].contains(reply.status), "\(entry.name): \(reply.status)")
                let error = reply.json["error"] as? [String: Any]
                #expect(error?["code"] is String && error?["message"] is String, "\(entry.name): no typed error body")
                refused += 1
            }
        }
        // Accepted ones must be files that decode cleanly; they end ready or failed with a reason.
        for id in accepted {
            let track = try host.waitForTrack(id)
            if track["status"] as? String == "failed" { #expect((track["failureReason"] as? String)?.isEmpty == false) }
        }
        let text = try Fixtures.make("host-text.txt", source: ["-f", "lavfi", "-i", "sine=d=0.1"], ["-f", "ffmetadata"])
        let unknown = try host.upload(text)
        #expect(unknown.status == 415)
        #expect((unknown.json["error"] as? [String: Any])?["code"] as? String == "unsupported_media_type")
        #expect(try host.curl(["-X", "POST", "--data-binary", "", host.base + "/v1/tracks"]).status == 400)
        #expect(try host.curl([host.base + "/healthz"]).status == 200)
        #expect(host.temporaryFiles().isEmpty)
        print("hostile corpus: \(refused) refused with 4xx, \(accepted.count) accepted: \(acceptedNames)")
        host.stop()
    }

    @Test("oversize, slow and aborted uploads: 413 before the body is read, stalled connections dropped, no temporary files")
    func oversizeAndAborted() throws {
        let host = HostProcess(name: "limits", environment: ["VEZA_UPLOAD_MAX_BYTES": "1000000", "VEZA_UPLOAD_IDLE_TIMEOUT": "2"])
        try host.start()
        let big = Fixtures.directory + "/host-big.bin"
        try Data(count: 50_000_000).write(to: URL(fileURLWithPath: big))
        // Declared length over the cap: refused at once (curl would need seconds to send 50 MB
        // at the rate limit below).
        let declared = try host.curl(["-X", "POST", "--limit-rate", "5M", "--data-binary", "@" + big, host.base + "/v1/tracks"], timeLimit: 60)
        #expect(declared.status == 413)
        #expect(declared.body.contains("payload_too_large"))
        // Chunked (no length): refused once the cap is crossed.
        let chunked = try host.curl(["-X", "POST", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + big, host.base + "/v1/tracks"], timeLimit: 60)
        #expect(chunked.status == 413 || chunked.status == 0, "chunked: \(chunked.status)")
        // Aborted: the client gives up mid-body.
        let small = try Fixtures.make("host-abort.wav", source: Fixtures.sourceArguments(seconds: 5), ["-c:a", "pcm_s16le"])
        _ = try host.curl(["-X", "POST", "--limit-rate", "100K", "--max-time", "1", "--data-binary", "@" + small, host.base + "/v1/tracks"])
        // Stalled: headers and a few bytes, then silence; the idle timeout drops it.
        let stalled = try Subprocess.run("bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(host.port); printf 'POST /v1/tracks HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 900000\\r\\n\\r\\nRIFF' >&3; cat <&3 >/dev/null; echo closed"], timeLimit: 20)
        #expect(String(decoding: stalled.stdout, as: UTF8.self).contains("closed"), "the stalled upload's connection stayed open")
        #expect(stalled.seconds < 10)
        let deadline = Date().addingTimeInterval(10)
        while !host.temporaryFiles().isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.2) }
        #expect(host.temporaryFiles().isEmpty, "left behind: \(host.temporaryFiles())")
        let list = try host.curl([host.base + "/v1/tracks"])
        #expect(list.body.contains("\"tracks\":[]") || list.body.contains("\"tracks\" : ["), "\(list.body)")
        try? FileManager.default.removeItem(atPath: big)
        host.stop()
    }

    @Test("kill -9 during transcoding: after a restart the track finishes, and it is never seen partly published")
    func crashRecovery() throws {
        let environment = ["VEZA_QUEUE_LEASE_SECONDS": "3"]
        let host = HostProcess(name: "crash", environment: environment)
        try host.start()
        let path = try Fixtures.make("host-crash.flac", source: Fixtures.sourceArguments(seconds: 90), ["-c:a", "flac"])
        let reply = try host.upload(path)
        let id = try #require(reply.json["id"] as? String)
        // Wait until the job is well into packaging, then crash the host.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let track = try host.track(id)
            if track["status"] as? String == "processing", (track["progress"] as? Double ?? 0) > 20 { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        host.kill9()
        #expect(try host.publishedConsistently(id))
        #expect(try !host.objectExists("tracks/\(id)/v1/manifest.json"))
        try host.start()
        let track = try host.waitForTrack(id) { state throws in
            let consistent = try host.publishedConsistently(id)
            #expect(consistent)
            if state["status"] as? String != "ready" { #expect(state["renditions"] == nil) }
        }
        #expect(track["status"] as? String == "ready")
        #expect((track["renditions"] as? [Any])?.count == ladderIDs.count)
        #expect(try host.publishedConsistently(id))
        #expect(host.temporaryFiles().isEmpty)
        host.stop()
    }

    @Test("SIGTERM during transcoding: the host stops promptly and the running job goes back to the queue")
    func gracefulShutdown() throws {
        let host = HostProcess(name: "term")
        try host.start()
        let path = try Fixtures.make("host-crash.flac", source: Fixtures.sourceArguments(seconds: 90), ["-c:a", "flac"])
        let id = try #require(try host.upload(path).json["id"] as? String)
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, try host.track(id)["status"] as? String != "processing" { Thread.sleep(forTimeInterval: 0.1) }
        Thread.sleep(forTimeInterval: 1)
        let started = Date()
        host.stop()
        #expect(Date().timeIntervalSince(started) < 15, "graceful shutdown took \(Date().timeIntervalSince(started)) s")
        // Reopen with no workers: the job was released, not left leased.
        try host.start(workers: 0)
        #expect(try host.track(id)["status"] as? String == "queued")
        #expect(host.temporaryFiles().isEmpty)
        host.stop()
    }

    @Test("50 concurrent uploads: each accepted or refused with 503 + Retry-After; every accepted one becomes ready; memory bounded")
    func concurrentUploads() throws {
        let host = HostProcess(name: "many", environment: ["VEZA_QUEUE_MAX_DEPTH": "20"])
        try host.start()
        let path = try Fixtures.make("host-many.flac", source: Fixtures.sourceArguments(seconds: 2), ["-c:a", "flac"])
        // 50 curl processes at once, each writing status and headers to its own files.
        let script = (0..<50).map { i in
            "curl -sS --noproxy '*' -o \(host.dataDirectory)-r\(i).json -D \(host.dataDirectory)-r\(i).h -w '%{http_code}' -H 'Authorization: Bearer \(host.adminToken)' -X POST --data-binary @\(path) \(host.base)/v1/tracks > \(host.dataDirectory)-r\(i).code &"
        }.joined(separator: "\n") + "\nwait"
        _ = try Subprocess.run("bash", ["-c", script], timeLimit: 120)
        var accepted: [String] = []
        var refused = 0
        for i in 0..<50 {
            let base = "\(host.dataDirectory)-r\(i)"
            let code = (try? String(contentsOfFile: base + ".code", encoding: .utf8)) ?? ""
            let headers = ((try? String(contentsOfFile: base + ".h", encoding: .utf8)) ?? "").lowercased()
            if code == "202" {
                let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base + ".json"))) as? [String: Any]
                accepted.append(try #require(json?["id"] as? String))
            } else {
                #expect(code == "503", "upload \(i): \(code)")
                #expect(headers.contains("retry-after:"))
                refused += 1
            }
            for suffix in [".code", ".h", ".json"] { try? FileManager.default.removeItem(atPath: base + suffix) }
        }
        #expect(accepted.count >= 20)
        for id in accepted {
            #expect(try host.waitForTrack(id, timeLimit: 600)["status"] as? String == "ready")
        }
        let status = try String(contentsOfFile: "/proc/\(host.pid)/status", encoding: .utf8)
        let peakKiB = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        print("concurrent uploads: \(accepted.count) accepted, \(refused) refused; host peak RSS \(peakKiB / 1024) MiB")
        #expect(peakKiB > 0 && peakKiB < 768 * 1024)
        #expect(host.temporaryFiles().isEmpty)
        host.stop()
    }
}
