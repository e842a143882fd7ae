import Foundation
@testable import StreamHost
import Testing
import TestSupport

/// Webhooks (issue 27) against a real receiver that checks every signature with the Standard
/// Webhooks reference library (Tests/scripts/webhook_receiver.py). Part of `HostTests`, so that
/// `make test-scale` runs it against PostgreSQL as well.
extension HostTests {
    /// The receiver, started on `port` (0: any); returns the process and its port.
    static func webhookReceiver(port: Int, secret: String, out: String) throws -> (Process, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Subprocess.locate("python3"))
        process.arguments = [DeliveryTests.script("webhook_receiver.py"), "--port", "\(port)", "--secret", secret, "--out", out]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // The first line is the port (this process holds the pipe's other end: no end of file to wait for).
        var text = ""
        while !text.contains("\n") {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let bound = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw TestError.failed("the webhook receiver did not start: \(text)")
        }
        return (process, bound)
    }

    /// SIGKILL (a test process may hand its children SIGTERM ignored) and wait.
    static func stop(_ process: Process) {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The receiver's lines so far.
    static func received(_ out: String) -> [[String: Any]] {
        ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    @Test("webhooks: signed per Standard Webhooks, at least once from the outbox across a receiver killed and restarted, in order per track, failed deliveries kept and retried on demand, subscriptions validated")
    func webhooks() throws {
        let host = HostProcess(name: "webhooks", environment: [
            "VEZA_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            // Retries every second for a minute: the receiver is down for a few seconds.
            "VEZA_WEBHOOKS_RETRY_SCHEDULE": Array(repeating: "1", count: 60).joined(separator: ","),
            "VEZA_WEBHOOKS_POLL_SECONDS": "0.2",
            "VEZA_LIVE_MOUNTS": "radio:radio-pw-1", "VEZA_LIVE_GRACE_SECONDS": "1", "VEZA_LIVE_RECORD": "false",
        ])
        try host.start(workers: 2)
        defer { host.stop() }
        func json(_ reply: (status: Int, body: String, headers: String)) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any]) ?? [:]
        }
        func subscribe(_ body: String, token: String? = nil) throws -> (status: Int, body: String, headers: String) {
            let auth = token.map { ["-H", "Authorization: Bearer \($0)"] } ?? []
            return try host.curl(["-X", "POST", "-H", "Content-Type: application/json", "--data", body] + auth + [host.base + "/v1/webhooks"],
                                 authenticated: token == nil)
        }

        // Subscriptions are checked: scheme, private targets (allowed here by configuration), event types, scope.
        #expect(try subscribe(#"{"url":"ftp://example.com/x","events":["track.ready"]}"#).status == 422)
        #expect(try subscribe(#"{"url":"http://example.com/x","events":["track.exploded"]}"#).status == 422)
        #expect(try subscribe(#"{"url":"http://example.com/x","events":[]}"#).status == 422)
        #expect(try subscribe(#"{"url": 7}"#).status == 400)
        let stream = try host.mint(["--scope", "stream", "--ttl", "1h"])
        #expect(try subscribe(#"{"url":"http://example.com/x","events":["*"]}"#, token: stream).status == 403)
        #expect(try host.curl([host.base + "/v1/webhooks"], authenticated: false).status == 401)

        // The receiver, then the endpoint with its secret (shown once).
        let out = host.dataDirectory + "-webhooks.jsonl"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var secret = "whsec_" + Data(repeating: 1, count: 24).base64EncodedString()   // Replaced by the host's below.
        var (receiver, port) = try Self.webhookReceiver(port: 0, secret: secret, out: out)
        Self.stop(receiver)
        let created = try subscribe(#"{"url":"http://127.0.0.1:\#(port)/hook","events":["*"],"description":"all"}"#)
        #expect(created.status == 201, "\(created.body)")
        let endpoint = json(created)
        let endpointID = try #require(endpoint["id"] as? String)
        secret = try #require(endpoint["secret"] as? String)
        #expect(secret.hasPrefix("whsec_"))
        #expect(created.headers.lowercased().contains("location: /v1/webhooks/\(endpointID)"))
        (receiver, port) = try Self.webhookReceiver(port: port, secret: secret, out: out)
        defer { Self.stop(receiver) }
        // An endpoint that answers 410 Gone, for deleted tracks only.
        let gone = json(try subscribe(#"{"url":"http://127.0.0.1:\#(port)/gone","events":["track.deleted"]}"#))
        let goneID = try #require(gone["id"] as? String)
        let listed = try host.curl([host.base + "/v1/webhooks"])
        #expect(listed.status == 200 && listed.body.contains(endpointID) && !listed.body.contains("whsec_"), "the list shows no secret")

        // Three uploads; the receiver is killed after the first and comes back a few seconds later.
        let path = try Fixtures.make("host-webhooks.flac", source: Fixtures.sourceArguments(seconds: 1), ["-c:a", "flac"])
        var tracks: [String] = []
        for index in 0..<3 {
            let upload = try host.upload(path, extra: ["-H", "Idempotency-Key: webhooks-\(index)"])
            #expect(upload.status == 202)
            tracks.append(try #require(upload.json["id"] as? String))
            if index == 0 { Self.stop(receiver) }
        }
        for id in tracks { #expect(try host.waitForTrack(id)["status"] as? String == "ready") }
        Thread.sleep(forTimeInterval: 2)
        let missedWhileDown = try host.curl([host.base + "/v1/webhooks/\(endpointID)/deliveries?state=pending"])
        #expect(json(missedWhileDown)["deliveries"].map { ($0 as? [Any])?.isEmpty == false } == true, "deliveries wait while the receiver is down")
        (receiver, _) = try Self.webhookReceiver(port: port, secret: secret, out: out)
        #expect(try host.curl(["-X", "DELETE", host.base + "/v1/tracks/\(tracks[2])"]).status == 204)
        // A live show: live.started, then live.ended once the source has left (grace 1 s).
        let show = try LiveTests.radioShow(host, seconds: 2)
        show.waitUntilExit()

        // Everything arrives: created and ready for each track, deleted for one, the show's two events.
        var expected = Set(tracks.flatMap { ["track.created/\($0)", "track.ready/\($0)"] })
        expected.insert("track.deleted/\(tracks[2])")
        func key(_ line: [String: Any]) -> String {
            let data = line["data"] as? [String: Any] ?? [:]
            return "\(line["type"] as? String ?? "")/\(data["id"] as? String ?? data["mount"] as? String ?? "")"
        }
        let deadline = Date().addingTimeInterval(60)
        var lines: [[String: Any]] = []
        while Date() < deadline {
            lines = Self.received(out).filter { $0["path"] as? String == "/hook" }
            let keys = Set(lines.map(key))
            if expected.isSubset(of: keys), keys.contains("live.started/radio"), keys.contains("live.ended/radio") { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        let keys = Set(lines.map(key))
        #expect(expected.isSubset(of: keys), "missing: \(expected.subtracting(keys))")
        #expect(keys.contains("live.started/radio") && keys.contains("live.ended/radio"), "\(keys)")
        #expect(lines.allSatisfy { $0["valid"] as? Bool == true }, "every signature verifies with the reference library")
        // At least once: a repeat carries the same webhook-id; one event never has two ids.
        var ids: [String: Set<String>] = [:]
        for line in lines { ids[key(line), default: []].insert(line["id"] as? String ?? "") }
        #expect(ids.values.allSatisfy { $0.count == 1 }, "\(ids)")
        // In order per track: created, ready, deleted (first arrivals).
        for id in tracks {
            let order = lines.map(key).filter { $0.hasSuffix("/" + id) }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            #expect(order.map { $0.split(separator: "/")[0] } == (id == tracks[2] ? ["track.created", "track.ready", "track.deleted"]
                                                                                 : ["track.created", "track.ready"]), "\(order)")
        }
        let started = lines.firstIndex { key($0) == "live.started/radio" }, ended = lines.firstIndex { key($0) == "live.ended/radio" }
        #expect(started != nil && ended != nil && started! < ended!)

        // The 410 endpoint's delivery is failed at once, visible, and sent again on demand.
        let failed = json(try host.curl([host.base + "/v1/webhooks/\(goneID)/deliveries?state=failed"]))["deliveries"] as? [[String: Any]] ?? []
        #expect(failed.count == 1 && failed.first?["lastStatus"] as? Int == 410 && failed.first?["type"] as? String == "track.deleted", "\(failed)")
        let deliveryID = try #require(failed.first?["id"] as? String)
        #expect(try host.curl(["-X", "POST", host.base + "/v1/webhooks/\(goneID)/deliveries/\(deliveryID)/retry"]).status == 202)
        let retryDeadline = Date().addingTimeInterval(15)
        var retried: [String: Any] = [:]
        while Date() < retryDeadline {
            retried = (json(try host.curl([host.base + "/v1/webhooks/\(goneID)/deliveries"]))["deliveries"] as? [[String: Any]])?.first ?? [:]
            if retried["attempts"] as? Int == 2 { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        #expect(retried["attempts"] as? Int == 2 && retried["state"] as? String == "failed", "\(retried)")
        #expect(try host.curl(["-X", "POST", host.base + "/v1/webhooks/\(goneID)/deliveries/nope/retry"]).status == 404)
        #expect(try host.curl(["-X", "DELETE", host.base + "/v1/webhooks/\(goneID)"]).status == 204)
        #expect(try host.curl([host.base + "/v1/webhooks/\(goneID)"]).status == 404)
        let metrics = try host.curl([host.base + "/metrics"]).body
        #expect(metrics.contains(#"veza_webhook_deliveries_total{outcome="delivered"}"#))
        #expect(!((try? String(contentsOfFile: host.logPath, encoding: .utf8)) ?? "").contains(secret), "the secret is never logged")
    }
}

@Suite("Standard Webhooks signatures")
struct WebhookSignatureTests {
    @Test("the specification's example signs to its published signature; tampering, other secrets and stale timestamps fail")
    func specificationVector() throws {
        let secret = try #require(WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let signature = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body, secret: secret)
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let at = Date(timeIntervalSince1970: 1614265330)
        #expect(WebhookSignature.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body,
                                        signatures: "v1,bogus " + signature, secret: secret, now: at))
        #expect(!WebhookSignature.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body + [32],
                                         signatures: signature, secret: secret, now: at))
        #expect(!WebhookSignature.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body,
                                         signatures: signature, secret: .generate(), now: at))
        #expect(!WebhookSignature.verify(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1614265330, body: body,
                                         signatures: signature, secret: secret, now: at.addingTimeInterval(301)))
        #expect(WebhookSecret("whsec_short") == nil && WebhookSecret("not base64!") == nil)
        #expect(WebhookSecret(WebhookSecret.generate().description) != nil)
    }

    @Test("the retry schedule: each failure waits its step, 410 and the end of the schedule give up")
    func retrySchedule() {
        var configuration = WebhookConfiguration()
        configuration.retrySchedule = [5, 60]
        let now = Date(timeIntervalSince1970: 1000)
        #expect(configuration.afterFailure(attempts: 0, status: 500, error: "x", now: now) == .retry(at: now.addingTimeInterval(5), status: 500, error: "x"))
        #expect(configuration.afterFailure(attempts: 1, status: nil, error: "x", now: now) == .retry(at: now.addingTimeInterval(60), status: nil, error: "x"))
        #expect(configuration.afterFailure(attempts: 2, status: 500, error: "x", now: now) == .failed(status: 500, error: "x"))
        #expect(configuration.afterFailure(attempts: 0, status: 410, error: "x", now: now) == .failed(status: 410, error: "x"))
    }
}

@Suite("The outbox read in commit order")
struct EventLogTests {
    @Test("event cursors: their text form round-trips, `0` is the start, anything else is refused")
    func cursors() {
        #expect(EventCursor("0") == .start)
        #expect(EventCursor.start.description == "0")
        let cursor = EventCursor(transaction: 812, sequence: 34)
        #expect(cursor.description == "812.34" && EventCursor(cursor.description) == cursor)
        #expect(EventCursor("0.7") == EventCursor(transaction: 0, sequence: 7))
        for bad in ["", "x", "1", "1.", ".1", "1.2.3", "-1.2", "1.-2", "1.2 ", "+1.2", "99999999999999999999.1", "１.2"] {
            #expect(EventCursor(bad) == nil, "\(bad)")
        }
        // Commit order: by transaction, then sequence.
        #expect(EventCursor(transaction: 1, sequence: 90) < EventCursor(transaction: 2, sequence: 5))
        #expect(EventCursor(transaction: 2, sequence: 5) < EventCursor(transaction: 2, sequence: 6))
    }

    @Test("SQLite: events after a cursor in the order written, the latest cursor, from the start")
    func sqliteEvents() async throws {
        let path = Fixtures.directory + "/events-\(UUID().uuidString.prefix(6)).sqlite"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let catalog = try SQLiteCatalog(path: path)
        #expect(try await catalog.latestEventCursor() == .start)
        #expect(try await catalog.events(after: .start, limit: 10).isEmpty)
        let written = (0..<5).map { HostEvent.live(.liveStarted, mount: "m\($0)", session: "s\($0)") }
        for event in written { try await catalog.appendEvent(event) }
        let all = try await catalog.events(after: .start, limit: 10)
        #expect(all.map(\.id) == written.map(\.id))
        #expect(all.map(\.body) == written.map(\.body) && all.allSatisfy { $0.type == "live.started" })
        #expect(try await catalog.latestEventCursor() == all.last?.cursor)
        let rest = try await catalog.events(after: all[1].cursor, limit: 2)
        #expect(rest.map(\.id) == written[2..<4].map(\.id))
    }
}
