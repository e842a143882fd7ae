import Foundation
import Synchronization
import Testing
import TestSupport

/// Runs only under `make test-scale`, which starts PostgreSQL, SeaweedFS's S3 gateway and
/// Varnish (`scripts/services.sh`) and exports their addresses.
private let services: [String: String]? = {
    let env = ProcessInfo.processInfo.environment
    guard env["VEZA_STORAGE_BACKEND"] == "s3", env["VEZA_CATALOG_BACKEND"] == "postgres", env["VEZA_SERVICES_DIR"] != nil else { return nil }
    return env
}()

/// `scripts/services.sh` of this repository.
private let servicesScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts/services.sh").path

/// `psql` against a host's database; returns the unaligned output.
private func psql(_ host: HostProcess, _ sql: String) throws -> String {
    let url = host.environment["VEZA_POSTGRES_URL"] ?? ""
    let result = try Subprocess.check("psql", [url, "-At", "-c", sql])
    return String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A `streamhost worker` process.
private final class WorkerProcess {
    let process = Process()
    let directory = Fixtures.directory + "/worker-\(UUID().uuidString.prefix(6))"

    init(slots: Int, sharing host: HostProcess) throws {
        process.executableURL = URL(fileURLWithPath: try Fixtures.builtProduct("streamhost"))
        process.arguments = ["worker", "--data-directory", directory, "--workers", "\(slots)"]
        var env = ProcessInfo.processInfo.environment
        for (key, value) in host.environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // "streamhost worker {instance} running …": the prefix of its lease owners.
        let line = String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self)
        instance = line.split(separator: " ").dropFirst(2).first.map(String.init) ?? ""
        pipe.fileHandleForReading.readabilityHandler = { _ = $0.availableData }
    }

    /// The worker pool's instance name (lease owners are `{instance}-{slot}`).
    private(set) var instance = ""

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("Scale-out: S3 + PostgreSQL + worker processes + CDN", .serialized, .enabled(if: services != nil, "run by make test-scale"))
struct ScaleOutTests {
    @Test("one serve and two workers share the queue: 20 uploads, a worker killed mid-job, every track ready exactly once")
    func multiNode() throws {
        let host = HostProcess(name: "multi", environment: ["VEZA_QUEUE_LEASE_SECONDS": "3"])
        try host.start(workers: 0)
        let workerA = try WorkerProcess(slots: 1, sharing: host)
        let workerB = try WorkerProcess(slots: 1, sharing: host)
        _ = workerB
        let source = try Fixtures.make("scale-20.flac", source: Fixtures.sourceArguments(seconds: 20), ["-c:a", "flac"])
        var ids: [String] = []
        for _ in 0..<20 {
            let reply = try host.upload(source, contentType: "audio/flac")
            ids.append(try #require(reply.json["id"] as? String, "\(reply)"))
        }
        // Kill worker A while it holds a lease.
        #expect(!workerA.instance.isEmpty)
        var victim = ""
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, victim.isEmpty {
            victim = try psql(host, "SELECT id FROM job WHERE state = 'running' AND lease_owner LIKE '\(workerA.instance)-%' LIMIT 1")
            if victim.isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        }
        let jobs = victim.isEmpty ? try psql(host, "SELECT state || ' ' || COALESCE(lease_owner, '-') FROM job") : ""
        try #require(!victim.isEmpty, "worker A (\(workerA.instance)) never held a job: \(jobs)")
        workerA.kill9()
        // The jobs worker A held when it died: still leased to it, as nobody else may touch them yet.
        let orphans = try psql(host, "SELECT id FROM job WHERE state = 'running' AND lease_owner LIKE '\(workerA.instance)-%'")
            .split(separator: "\n").map(String.init)
        try #require(!orphans.isEmpty, "worker A finished its job before the kill; nothing to take over (retry the test)")
        for id in ids {
            let track = try host.waitForTrack(id, timeLimit: 600)
            #expect(track["status"] as? String == "ready", "\(id): \(track["failureReason"] ?? "")")
            #expect(try host.publishedConsistently(id))
        }
        // Exactly once: one job per track, done; one published version; the killed worker's job
        // was claimed again (a second attempt) and finished.
        let idList = ids.map { "'\($0)'" }.joined(separator: ",")
        #expect(try psql(host, "SELECT COUNT(*) FROM job WHERE track_id IN (\(idList)) AND state = 'done'") == "20")
        #expect(try psql(host, "SELECT COUNT(*) FROM job WHERE track_id IN (\(idList))") == "20")
        #expect(try psql(host, "SELECT COUNT(*) FROM track WHERE id IN (\(idList)) AND version = 1 AND status = 'ready'") == "20")
        // The killed worker's job ran again, elsewhere, and is done.
        for orphan in orphans {
            let row = try psql(host, "SELECT state, attempts, COALESCE(lease_owner, '-') FROM job WHERE id = '\(orphan)'")
            #expect(row == "done|2|-", "the killed worker's job \(orphan) should have run again and be done: \(row)")
        }
        for id in ids { #expect(try host.objectKeys(prefix: "tracks/\(id)/v2/").isEmpty) }
        host.stop()
    }

    @Test("webhooks from two hosts on one catalog: both dispatchers lease from the one outbox, one host is killed mid-run, and every event of 8 tracks reaches the receiver once per webhook-id, in order per track; the gRPC event stream from one host carries them all once, in order, with the same ids")
    func webhooksFromTwoHosts() throws {
        let common = ["VEZA_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true", "VEZA_WEBHOOKS_POLL_SECONDS": "0.2",
                      "VEZA_WEBHOOKS_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1", "VEZA_QUEUE_LEASE_SECONDS": "3"]
        let a = HostProcess(name: "hooka", environment: common.merging(["VEZA_GRPC_PORT": "0"]) { $1 })
        try a.start(workers: 1)
        defer { a.stop() }
        let b = HostProcess(name: "hookb", environment: common.merging(["VEZA_POSTGRES_URL": a.environment["VEZA_POSTGRES_URL"] ?? ""]) { $1 })
        try b.start(workers: 1)
        defer { b.stop() }
        let out = a.dataDirectory + "-webhooks.jsonl"
        defer { try? FileManager.default.removeItem(atPath: out) }
        // A port for the receiver, then the endpoint (its secret comes back), then the receiver.
        var (receiver, port) = try HostTests.webhookReceiver(port: 0, secret: "whsec_" + Data(repeating: 7, count: 24).base64EncodedString(), out: out)
        HostTests.stop(receiver)
        let created = try a.curl(["-X", "POST", "-H", "Content-Type: application/json", "--data",
                                  #"{"url":"http://127.0.0.1:\#(port)/hook","events":["track.created","track.ready"]}"#, a.base + "/v1/webhooks"])
        let secret = try #require((try? JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any])?["secret"] as? String,
                                  "\(created.body)")
        (receiver, _) = try HostTests.webhookReceiver(port: port, secret: secret, out: out)
        defer { HostTests.stop(receiver) }
        // The same events over gRPC from host a, though half of them are written by host b: the
        // stream follows the shared outbox in commit order (PostgreSQL: by transaction id).
        let streamed = a.dataDirectory + "-events.jsonl"
        defer { try? FileManager.default.removeItem(atPath: streamed) }
        let subscriber = try LiveTests.background("python3", [DeliveryTests.script("grpc_subscribe.py"), "--target", "127.0.0.1:\(a.grpcPort)",
                                                              "--admin", a.adminToken, "--out", streamed, "--seconds", "400"],
                                                  stdout: streamed + ".log", stderr: streamed + ".err")
        defer { LiveTests.kill(subscriber) }
        for _ in 0..<100 where !((try? String(contentsOfFile: streamed + ".log", encoding: .utf8)) ?? "").contains("subscribed") {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let source = try Fixtures.make("scale-hooks.flac", source: Fixtures.sourceArguments(seconds: 2), ["-c:a", "flac"])
        var ids: [String] = []
        for index in 0..<8 {
            let reply = try (index % 2 == 0 || index > 3 ? a : b).upload(source, contentType: "audio/flac")
            ids.append(try #require(reply.json["id"] as? String, "\(reply)"))
            if index == 3 { b.kill9() }   // Whatever b held (jobs, deliveries) is leased again after its leases expire.
        }
        for id in ids { #expect(try a.waitForTrack(id, timeLimit: 300)["status"] as? String == "ready") }
        let expected = Set(ids.flatMap { ["track.created/\($0)", "track.ready/\($0)"] })
        func key(_ line: [String: Any]) -> String { "\(line["type"] as? String ?? "")/\((line["data"] as? [String: Any])?["id"] as? String ?? "")" }
        var lines: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            lines = HostTests.received(out)
            if expected.isSubset(of: Set(lines.map(key))) { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        #expect(expected.isSubset(of: Set(lines.map(key))), "missing: \(expected.subtracting(Set(lines.map(key))))")
        #expect(lines.allSatisfy { $0["valid"] as? Bool == true })
        var idsPerEvent: [String: Set<String>] = [:]
        for line in lines { idsPerEvent[key(line), default: []].insert(line["id"] as? String ?? "") }
        #expect(idsPerEvent.values.allSatisfy { $0.count == 1 }, "\(idsPerEvent)")
        for id in ids {
            let first = lines.map(key).filter { $0.hasSuffix("/" + id) }
            #expect(first.first == "track.created/\(id)", "\(first)")
        }
        #expect(try psql(a, "SELECT COUNT(*) FROM webhook_delivery WHERE state <> 'delivered'") == "0")

        // The gRPC stream: every event of every track once, created before ready, ids as the webhooks'.
        var events: [[String: Any]] = []
        for _ in 0..<100 {
            events = HostTests.received(streamed)
            if expected.isSubset(of: Set(events.map(key))) { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let errors = (try? String(contentsOfFile: streamed + ".err", encoding: .utf8)) ?? ""
        #expect(expected.isSubset(of: Set(events.map(key))), "missing: \(expected.subtracting(Set(events.map(key)))) \(errors)")
        let eventIDs = events.compactMap { $0["id"] as? String }
        #expect(Set(eventIDs).count == eventIDs.count, "an event came twice: \(eventIDs)")
        for id in ids {
            #expect(events.map(key).filter { $0.hasSuffix("/" + id) } == ["track.created/\(id)", "track.ready/\(id)"])
        }
        for event in events where expected.contains(key(event)) {
            #expect(idsPerEvent[key(event)] == [event["id"] as? String ?? ""], "\(event)")
        }
    }

    @Test("live mounts made through one host's API are known to every host on the catalog (PostgreSQL) within 10 s, and deleted everywhere")
    func liveMountsShared() throws {
        let a = HostProcess(name: "livea")
        try a.start(workers: 0)
        defer { a.stop() }
        let b = HostProcess(name: "liveb", environment: ["VEZA_POSTGRES_URL": a.environment["VEZA_POSTGRES_URL"] ?? ""])
        try b.start(workers: 0)
        defer { b.stop() }
        let created = try a.curl(["-X", "POST", "-H", "Content-Type: application/json", "-d",
                                  #"{"name":"shared","sourcePassword":"shared-pw-1","rungs":["aac-96"]}"#, "\(a.base)/v1/live"])
        #expect(created.status == 201, "\(created.body)")
        #expect(try psql(a, "SELECT name FROM live_mount") == "shared")
        func waitFor(_ host: HostProcess, status: Int) throws -> (status: Int, body: String, headers: String) {
            let deadline = Date().addingTimeInterval(15)
            var last = try host.curl(["\(host.base)/v1/live/shared"])
            while Date() < deadline, last.status != status {
                Thread.sleep(forTimeInterval: 0.5)
                last = try host.curl(["\(host.base)/v1/live/shared"])
            }
            return last
        }
        let seen = try waitFor(b, status: 200)
        #expect(seen.status == 200 && seen.body.contains(#""rungs":["aac-96"]"#), "\(seen.body)")
        #expect(try b.curl(["-X", "DELETE", "\(b.base)/v1/live/shared"]).status == 204)
        #expect(try waitFor(a, status: 404).status == 404)
        #expect(try psql(a, "SELECT COUNT(*) FROM live_mount") == "0")
    }

    @Test("one mount's show on two hosts: the host its source reached claims the origin in the catalog; the other proxies LL-HLS, the MPD and the ICY relay to it (ffmpeg and an ICY client play through it); Varnish in front answers six players blocked on one part with one request")
    func liveOriginProxy() throws {
        func freePort() throws -> Int {
            let result = try Subprocess.check("python3", ["-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"])
            return Int(String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        let (portA, portB) = (try freePort(), try freePort())
        let common = ["VEZA_AUTH_PUBLIC": "true", "VEZA_LIVE_MOUNTS": "radio:radio-pw-1", "VEZA_LIVE_RECORD": "false", "VEZA_LIVE_GRACE_SECONDS": "2"]
        let a = HostProcess(name: "origina", environment: common.merging(["VEZA_LIVE_ADVERTISE_URL": "http://127.0.0.1:\(portA)"]) { $1 })
        try a.start(workers: 0, port: portA)
        defer { a.stop() }
        let b = HostProcess(name: "originb", environment: common.merging(["VEZA_LIVE_ADVERTISE_URL": "http://127.0.0.1:\(portB)",
                                                                        "VEZA_POSTGRES_URL": a.environment["VEZA_POSTGRES_URL"] ?? ""]) { $1 })
        try b.start(workers: 0, port: portB)
        defer { b.stop() }
        // Before any source: nothing to proxy, B answers itself.
        #expect(try b.curl(["\(b.base)/live/radio/master.m3u8"], authenticated: false).status == 404)
        let source = try LiveTests.source(a, mount: "radio", password: "radio-pw-1",
                                          ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], seconds: 40)
        defer { LiveTests.kill(source) }
        _ = try LiveTests.wait(a, "radio", state: "live")
        // A claims the origin within its 2 s renewal period; B then proxies.
        var claimed = ""
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, claimed.isEmpty {
            claimed = try psql(a, "SELECT node FROM live_origin WHERE mount = 'radio'")
            if claimed.isEmpty { Thread.sleep(forTimeInterval: 0.3) }
        }
        #expect(claimed == "http://127.0.0.1:\(portA)")
        #expect(try a.curl(["\(a.base)/live/radio/aac-128/index.m3u8"], authenticated: false).status == 200)
        let master = try b.curl(["\(b.base)/live/radio/master.m3u8"], authenticated: false)
        #expect(master.status == 200 && master.body.contains("aac-128/index.m3u8"), "\(master)")
        let media = try b.curl(["\(b.base)/live/radio/aac-128/index.m3u8"], authenticated: false)
        #expect(media.status == 200 && media.body.contains("#EXT-X-PART:"), "\(media)")
        for url in ["\(b.base)/live/radio/master.m3u8", "\(b.base)/live/radio/manifest.mpd"] {
            let played = try Subprocess.run("ffmpeg", ["-v", "error", "-i", url, "-t", "6", "-ac", "1", "-ar", "44100", "-f", "s16le", "-"], timeLimit: 60)
            let samples = played.stdout.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
            #expect(Double(samples.count) / 44_100 > 5.5, "\(url): \(Double(samples.count) / 44_100) s: \(played.stderr)")
            #expect(abs(LiveTests.frequency(samples, seconds: 1..<5) - 523) < 10, "\(url)")
        }
        // Varnish in front of B: players blocked on the same part are answered by one request.
        let dir = try #require(services?["VEZA_SERVICES_DIR"])
        _ = try Subprocess.check(servicesScript, ["varnish", dir, String(b.port)])
        let env = try String(contentsOfFile: dir + "/services.env", encoding: .utf8)
        let varnish = try #require(env.split(separator: "\n").first { $0.hasPrefix("VEZA_VARNISH_URL=") }?.split(separator: "=", maxSplits: 1).last
            .map(String.init))
        let now = try b.curl(["\(b.base)/live/radio/aac-128/index.m3u8"], authenticated: false).body
        let hint = try #require(now.firstMatch(of: /PRELOAD-HINT:TYPE=PART,URI="part-(\d+)\.(\d{1,2})\.m4s"/), "\(now)")
        let blocking = varnish + "/live/radio/aac-128/index.m3u8?_HLS_msn=\(hint.1)&_HLS_part=\(hint.2)"
        let answers = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            let reply = (try? Subprocess.run("curl", ["-s", "-D", "-", "-o", "/dev/null", "--max-time", "20", blocking]))
                .map { String(decoding: $0.stdout, as: UTF8.self).lowercased() } ?? ""
            answers.withLock { $0.append(reply) }
        }
        let replies = answers.withLock { $0 }
        #expect(replies.allSatisfy { $0.hasPrefix("http/1.1 200") }, "\(replies)")
        #expect(replies.filter { $0.contains("x-cache: miss") }.count == 1, "one request to the host for six players: \(replies)")
        let (report, audio) = try LiveTests.listen("\(b.base)/live/radio", seconds: 4)
        #expect(report["status"] as? Int == 200 && (report["headers"] as? [String: Any])?["icy-name"] != nil, "\(report)")
        let decoded = try LiveTests.decode(audio)
        #expect(decoded.seconds > 3 && abs(decoded.frequency - 523) < 10, "relay through B: \(decoded)")
        // The show ends: A gives the claim up, B stops proxying.
        LiveTests.kill(source)
        _ = try LiveTests.wait(a, "radio", state: "idle", seconds: 15)
        Thread.sleep(forTimeInterval: 3)
        #expect(try psql(a, "SELECT COUNT(*) FROM live_origin") == "0")
    }

    /// The services' directory, a started host, a 4 s FLAC source and the id of its upload,
    /// accepted before the outage the caller then starts.
    private func uploadBeforeOutage(_ name: String) throws -> (dir: String, host: HostProcess, source: String, id: String) {
        let dir = try #require(services?["VEZA_SERVICES_DIR"])
        let host = HostProcess(name: name)
        try host.start()
        let source = try Fixtures.make("scale-\(name).flac", source: Fixtures.sourceArguments(seconds: 4), ["-c:a", "flac"])
        let accepted = try host.upload(source, contentType: "audio/flac")
        let id = try #require(accepted.json["id"] as? String, "\(accepted.json)")
        return (dir, host, source, id)
    }

    @Test("storage outage: uploads refused with 503, /readyz 503, nothing accepted is lost, everything resumes")
    func storageOutage() throws {
        let (dir, host, source, acceptedID) = try uploadBeforeOutage("outage")
        try Subprocess.check(servicesScript, ["stop-s3", dir])
        defer { _ = try? Subprocess.run(servicesScript, ["start-s3", dir]) }
        let during = try host.upload(source, contentType: "audio/flac")
        #expect(during.status == 503, "\(during.json)")
        #expect(during.headers.lowercased().contains("retry-after:"))
        #expect((during.json["error"] as? [String: Any])?["code"] as? String == "storage_unavailable")
        #expect(try host.curl([host.base + "/readyz"]).status == 503)
        try Subprocess.check(servicesScript, ["start-s3", dir])
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try host.curl([host.base + "/readyz"]).status != 200 { Thread.sleep(forTimeInterval: 0.5) }
        #expect(try host.curl([host.base + "/readyz"]).status == 200)
        let after = try host.upload(source, contentType: "audio/flac")
        #expect(after.status == 202)
        for id in [acceptedID, after.json["id"] as? String ?? ""] {
            let track = try host.waitForTrack(id, timeLimit: 300)
            #expect(track["status"] as? String == "ready", "\(id): \(track["failureReason"] ?? "")")
        }
        host.stop()
    }

    @Test("a job that meets a storage outage longer than its retries waits it out: released without spending attempts, published once the store is back")
    func jobOutlivesOutage() throws {
        let (dir, host, _, id) = try uploadBeforeOutage("outage-job")
        // Down at once, for longer than the job's three attempts take (backoff 2 s, then 4 s).
        try Subprocess.check(servicesScript, ["stop-s3", dir])
        defer { _ = try? Subprocess.run(servicesScript, ["start-s3", dir]) }
        Thread.sleep(forTimeInterval: 12)
        let during = try host.curl([host.base + "/v1/tracks/\(id)"])
        #expect(!during.body.contains("\"failed\""), "the track failed during the outage: \(during.body)")
        try Subprocess.check(servicesScript, ["start-s3", dir])
        let track = try host.waitForTrack(id, timeLimit: 300)
        #expect(track["status"] as? String == "ready", "\(track["failureReason"] ?? "")")
        let metrics = try host.curl([host.base + "/metrics"]).body
        #expect(metrics.contains("veza_transcode_jobs_total{outcome=\"released\"}"), "no job was released for the outage")
        host.stop()
    }

    @Test("aws s3 ls shows the storage layout of a published track")
    func layout() throws {
        let host = HostProcess(name: "layout")
        try host.start()
        let source = try Fixtures.make("scale-layout.flac", source: Fixtures.sourceArguments(seconds: 4), ["-c:a", "flac"])
        let id = try #require(try host.upload(source, contentType: "audio/flac").json["id"] as? String)
        #expect(try host.waitForTrack(id)["status"] as? String == "ready")
        let keys = try host.objectKeys(prefix: "tracks/\(id)/")
        let expected: Set<String> = Set(["tracks/\(id)/source/original.flac", "tracks/\(id)/v1/manifest.json",
                                         "tracks/\(id)/v1/waveform.json", "tracks/\(id)/v1/waveform.dat"])
        #expect(expected.isSubset(of: keys), "\(keys.sorted())")
        for rendition in ladderIDs {
            let ext = ["aac": "m4a", "opus": "opus", "mp3": "mp3", "flac": "flac"][String(rendition.split(separator: "-")[0])]!
            #expect(keys.contains("tracks/\(id)/v1/progressive/\(rendition).\(ext)"), "\(rendition)")
            if !rendition.hasPrefix("mp3") {
                #expect(keys.contains("tracks/\(id)/v1/cmaf/\(rendition)/init.mp4"))
                #expect(keys.contains("tracks/\(id)/v1/cmaf/\(rendition)/seg-1.m4s"))
            }
        }
        // Stored playlists (DESIGN §3 allows rendering per request or storing them) sit beside the manifest.
        let unexpected = keys.filter { key in
            !(key.hasPrefix("tracks/\(id)/v1/cmaf/") || key.hasPrefix("tracks/\(id)/v1/progressive/") || expected.contains(key)
              || (key.hasPrefix("tracks/\(id)/v1/") && key.split(separator: "/").count == 4
                  && (key.hasSuffix(".m3u8") || key.hasSuffix(".mpd") || key.hasPrefix("tracks/\(id)/v1/waveform"))))
        }
        #expect(unexpected.isEmpty, "\(unexpected)")
        // Objects carry their type and caching.
        let head = try HostProcess.aws(["s3api", "head-object", "--bucket", services?["VEZA_S3_BUCKET"] ?? "",
                                        "--key", "tracks/\(id)/v1/cmaf/aac-128/seg-1.m4s"])
        let text = String(decoding: head.stdout, as: UTF8.self)
        #expect(text.contains("\"ContentType\": \"audio/mp4\""), "\(text)")
        #expect(text.contains("immutable"), "\(text)")
        host.stop()
    }

    @Test("a source above the multipart threshold is stored by a multipart upload, byte for byte")
    func multipartUpload() throws {
        let host = HostProcess(name: "multipart", environment: ["VEZA_S3_MULTIPART_THRESHOLD": "5242880", "VEZA_S3_PART_SIZE": "5242880"])
        try host.start()
        // About 12 MB of noise: three parts of 5 MiB, the last one shorter.
        let source = try Fixtures.make("scale-multipart.wav", source: ["-f", "lavfi", "-i", "anoisesrc=d=68:a=0.3:c=white", "-ac", "2", "-ar", "44100"],
                                       ["-c:a", "pcm_s16le"])
        let size = try #require(try FileManager.default.attributesOfItem(atPath: source)[.size] as? Int)
        #expect(size > 10 << 20)
        let reply = try host.upload(source, contentType: "audio/wav")
        let id = try #require(reply.json["id"] as? String, "\(reply)")
        let stored = try #require(try host.object("tracks/\(id)/source/original.wav"))
        #expect(stored == (try Data(contentsOf: URL(fileURLWithPath: source))), "the stored source differs from the upload")
        let head = try HostProcess.aws(["s3api", "head-object", "--bucket", services?["VEZA_S3_BUCKET"] ?? "", "--key", "tracks/\(id)/source/original.wav"])
        // A multipart object's ETag is "<md5 of part md5s>-<part count>".
        #expect(String(decoding: head.stdout, as: UTF8.self).contains("-3\\\""), "\(String(decoding: head.stdout, as: UTF8.self))")
        #expect(try host.waitForTrack(id)["status"] as? String == "ready")
        host.stop()
    }

    @Test("delivery by redirect: /media answers 302 to a presigned S3 URL that serves the same bytes")
    func presignedRedirect() throws {
        let host = HostProcess(name: "redirect", environment: ["VEZA_DELIVERY_REDIRECT": "true"])
        try host.start()
        let source = try Fixtures.make("scale-redirect.flac", source: Fixtures.sourceArguments(seconds: 4), ["-c:a", "flac"])
        let id = try #require(try host.upload(source, contentType: "audio/flac").json["id"] as? String)
        let track = try host.waitForTrack(id)
        let hls = try #require((track["playback"] as? [String: Any])?["hls"] as? String)
        let token = URLComponents(string: hls)?.queryItems?.first { $0.name == "token" }?.value ?? ""
        let url = host.base + "/media/\(id)/v1/cmaf/aac-128/seg-1.m4s?token=" + token
        let redirect = try host.curl(["-o", "/dev/null", url], authenticated: false)
        #expect(redirect.status == 302, "\(redirect.headers)")
        let location = redirect.headers.split(separator: "\r\n").first { $0.lowercased().hasPrefix("location: ") }.map { String($0.dropFirst(10)) } ?? ""
        #expect(location.contains("X-Amz-Signature="), "\(location)")
        let out = Fixtures.directory + "/redirected-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        #expect(try Subprocess.run("curl", ["-sS", "--noproxy", "*", "-L", "-o", out, url]).succeeded)
        #expect(FileManager.default.contents(atPath: out) == (try host.object("tracks/\(id)/v1/cmaf/aac-128/seg-1.m4s")))
        // Without a valid token there is no redirect.
        #expect(try host.curl(["-o", "/dev/null", host.base + "/media/\(id)/v1/cmaf/aac-128/seg-1.m4s"], authenticated: false).status == 401)
        host.stop()
    }

    @Test("a caching proxy in front: repeated segment requests are hits; after delete and purge they are not served")
    func cdnPurge() throws {
        let dir = try #require(services?["VEZA_SERVICES_DIR"])
        let host = HostProcess(name: "cdn", environment: ["VEZA_AUTH_PUBLIC": "true"])
        try host.start()
        // Varnish in front of this host; the host purges through it.
        let started = try Subprocess.check(servicesScript, ["varnish", dir, String(host.port)])
        _ = started
        let env = try String(contentsOfFile: dir + "/services.env", encoding: .utf8)
        let varnish = try #require(env.split(separator: "\n").first { $0.hasPrefix("VEZA_VARNISH_URL=") }?.split(separator: "=", maxSplits: 1).last
            .map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) })
        host.stop()
        let purging = HostProcess(name: "cdn2", environment: ["VEZA_AUTH_PUBLIC": "true", "VEZA_CDN_PURGE_URL": varnish])
        // Same port as before, so Varnish's backend is this host.
        try purging.start(port: host.port)
        let source = try Fixtures.make("scale-cdn.flac", source: Fixtures.sourceArguments(seconds: 4), ["-c:a", "flac"])
        let id = try #require(try purging.upload(source, contentType: "audio/flac").json["id"] as? String)
        #expect(try purging.waitForTrack(id)["status"] as? String == "ready")
        let segment = varnish + "/media/\(id)/v1/cmaf/aac-128/seg-1.m4s"
        let first = try purging.curl(["-o", "/dev/null", segment], authenticated: false)
        let second = try purging.curl(["-o", "/dev/null", segment], authenticated: false)
        #expect(first.status == 200 && second.status == 200)
        #expect(second.headers.lowercased().contains("x-cache: hit"), "\(second.headers)")
        #expect(try purging.curl(["-X", "DELETE", purging.base + "/v1/tracks/\(id)"]).status == 204)
        let after = try purging.curl(["-o", "/dev/null", segment], authenticated: false)
        #expect(after.status == 404, "a deleted track's segment is still served by the cache: \(after.status) \(after.headers)")
        purging.stop()
    }
}
