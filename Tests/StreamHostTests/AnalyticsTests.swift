import Foundation
@testable import StreamHost
import Testing
import TestSupport

/// Listening analytics (issue 24) end to end: a real host, listeners with known behaviour
/// (Tests/scripts/listen_sessions.py: real-time HLS players, some sending beacons, one bot),
/// ffmpeg as a real player, then the host's sessions and rollups against the truth.
@Suite("listening analytics", .serialized)
struct AnalyticsTests {
    static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    @Test("sessions reconstructed from HLS requests and beacons: outcomes, plays, listening time within half a segment, bots apart, beacons checked, live feed, deletion by subject, no raw address stored")
    func sessionsMatchTheTruth() throws {
        // Countries from a MaxMind-format database (mmdb-writer), for addresses a trusted proxy
        // (the listeners themselves, on loopback) forwards.
        let (countries, _) = try MaxMindDatabaseTests.build("analytics", ["203.0.113.0/24=NZ", "198.51.100.0/24=BR"], probes: [])
        defer { try? FileManager.default.removeItem(atPath: countries) }
        let host = HostProcess(name: "analytics", environment: [
            "VEZA_SERVER_TRUSTED_PROXIES": "127.0.0.1",
            "VEZA_ANALYTICS_COUNTRY_DATABASE": countries,
            "VEZA_LADDER_SEGMENT_SECONDS": "2",
            "VEZA_ANALYTICS_IDLE_TIMEOUT_SECONDS": "4",
            "VEZA_ANALYTICS_SWEEP_SECONDS": "0.2",
            "VEZA_ANALYTICS_PLAY_THRESHOLD_SECONDS": "8",
        ])
        try host.start()
        defer { host.stop() }
        let source = try Fixtures.make("analytics-20s.flac", source: Fixtures.sourceArguments(seconds: 20), ["-c:a", "flac"])
        let upload = try host.upload(source, contentType: "audio/flac")
        let id = try #require(upload.json["id"] as? String)
        #expect(try host.waitForTrack(id)["status"] as? String == "ready")

        // Each listener gets its own playback URL (its own session): one through its own stream
        // token (its subject), the others named by the platform (`?listener=`, admin token).
        let listener = try host.mint(["--scope", "stream", "--subject", "listener-7", "--ttl", "1h"])
        var named = 0
        func masterURL(token: String? = nil) throws -> String {
            named += 1
            let reply = try host.curl((token.map { ["-H", "Authorization: Bearer \($0)"] } ?? [])
                                      + [host.base + "/v1/tracks/\(id)" + (token == nil ? "?listener=user-\(named)" : "")],
                                      authenticated: token == nil)
            let playback = try #require(Self.json(reply.body)["playback"] as? [String: Any])
            let path = try #require(playback["hls"] as? String)
            return host.base + path
        }
        let plans: [[String: Any]] = [
            ["name": "complete", "master": try masterURL(token: listener), "behaviour": "complete", "forwardedFor": "203.0.113.5"],
            ["name": "skip", "master": try masterURL(), "behaviour": "stop", "stopAt": 3.1, "threshold": 8, "forwardedFor": "203.0.113.77"],
            ["name": "abandon-beacons", "master": try masterURL(), "behaviour": "stop", "stopAt": 12.5, "beacons": true, "threshold": 8,
             "forwardedFor": "198.51.100.7"],
            ["name": "pause-complete-beacons", "master": try masterURL(), "behaviour": "complete", "pauseAt": 5, "pauseFor": 3, "beacons": true,
             "forwardedFor": "198.51.100.8"],
            ["name": "bot", "master": try masterURL(), "behaviour": "bot"],
        ]
        let planPath = host.dataDirectory + "-plan.json"
        try JSONSerialization.data(withJSONObject: plans).write(to: URL(fileURLWithPath: planPath))
        defer { try? FileManager.default.removeItem(atPath: planPath) }

        // ffmpeg plays one more session at real time (-re), as a player would.
        let ffmpegURL = try masterURL()
        let ffmpeg = Process()
        ffmpeg.executableURL = URL(fileURLWithPath: try Subprocess.locate("ffmpeg"))
        ffmpeg.arguments = ["-nostdin", "-loglevel", "error", "-re", "-i", ffmpegURL, "-f", "null", "-"]
        try ffmpeg.run()

        // While they listen: the live feed counts them.
        let driver = Process()
        driver.executableURL = URL(fileURLWithPath: try Subprocess.locate("python3"))
        driver.arguments = [DeliveryTests.script("listen_sessions.py"), planPath]
        let out = Pipe()
        driver.standardOutput = out
        try driver.run()
        Thread.sleep(forTimeInterval: 6)
        let feed = try host.curl(["-N", "--max-time", "2", host.base + "/v1/analytics/live"], timeLimit: 10)
        let events = feed.body.split(separator: "\n").filter { $0.hasPrefix("data: ") }.map { Self.json(String($0.dropFirst(6))) }
        #expect(!events.isEmpty, "\(feed.body)")
        #expect(events.contains { ($0["listeners"] as? Int ?? 0) >= 3 }, "\(events)")
        #expect(events.contains { (($0["tracks"] as? [String: Any])?[id] as? Int ?? 0) >= 3 }, "\(events)")
        let metrics = try host.curl([host.base + "/metrics"], authenticated: false).body
        #expect(metrics.contains("veza_listeners "), "no veza_listeners gauge")

        // Beacons are checked: replayed, future-dated, other-track, malformed and oversized
        // batches, missing and forged tokens.
        let beaconURL = host.base + "/v1/events?" + (URLComponents(string: try masterURL())?.query ?? "")
        func send(_ body: String, url: String? = nil) throws -> (status: Int, body: String, headers: String) {
            try host.curl(["-X", "POST", "-H", "Content-Type: application/json", "--data", body, url ?? beaconURL], authenticated: false)
        }
        let now = Int(Date().timeIntervalSince1970 * 1000)
        let first = try send(#"{"events":[{"id":"e1","type":"play","position":0,"clientTime":\#(now)},{"id":"e1","type":"pause","position":1,"clientTime":\#(now)},{"id":"e2","type":"pause","position":1,"clientTime":\#(now + 3_600_000)},{"id":"e3","type":"play","position":0,"clientTime":\#(now),"track":"another"},{"id":"e4","type":"explode","position":0,"clientTime":\#(now)},{"id":"e5","type":"seek","position":-1,"clientTime":\#(now)},7]}"#)
        #expect(first.status == 202, "\(first.body)")
        let receipt = Self.json(first.body)
        #expect(receipt["accepted"] as? Int == 1, "\(first.body)")
        let dropped = receipt["dropped"] as? [String: Int] ?? [:]
        #expect(dropped == ["duplicate": 1, "future": 1, "other_track": 1, "malformed": 3], "\(first.body)")
        #expect(try send(#"{"events":[{"id":"e1","type":"play","position":0,"clientTime":\#(now)}]}"#).body.contains(#""duplicate":1"#))
        let many = (0..<101).map { #"{"id":"m\#($0)","type":"stall","position":1,"clientTime":\#(now)}"# }.joined(separator: ",")
        #expect(try send(#"{"events":[\#(many)]}"#).status == 413)
        #expect(try send(#"{"events":"#).status == 400)
        #expect(try send("{}", url: host.base + "/v1/events").status == 401)
        #expect(try send("{}", url: beaconURL.replacingOccurrences(of: "token=v2.", with: "token=v2.x")).status == 401)
        #expect(try send(String(repeating: " ", count: 70_000)).status == 413)

        driver.waitUntilExit()
        ffmpeg.waitUntilExit()
        #expect(driver.terminationStatus == 0)
        #expect(ffmpeg.terminationStatus == 0)
        let truth = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map { Self.json(String($0)) }
        #expect(truth.count == plans.count, "\(truth)")

        // Sessions end after the idle timeout (4 s) and are written at the next sweep.
        Thread.sleep(forTimeInterval: 6)
        let rows = try Self.sessions(host.dataDirectory + "/catalog.sqlite", track: id)
        // Five listeners, ffmpeg and the session the beacon checks above opened.
        #expect(rows.count == plans.count + 2, "\(rows)")
        #expect(Set(rows.compactMap { $0["subject_tag"] as? String }).count == rows.count, "one listener each: \(rows)")
        #expect(rows.allSatisfy { ($0["subject_tag"] as? String)?.count == 11 }, "\(rows)")
        for expected in truth {
            let name = expected["name"] as? String ?? ""
            let listened = expected["listened"] as? Double ?? Double(expected["listened"] as? Int ?? 0)
            let outcome = expected["outcome"] as? String
            // Matched by outcome, then by the nearest listening time.
            let candidates = rows.filter { $0["outcome"] as? String == outcome }
            let best = candidates.min { abs(($0["listened_seconds"] as? Double ?? 0) - listened) < abs(($1["listened_seconds"] as? Double ?? 0) - listened) }
            let row = try #require(best, "\(name): no session with outcome \(outcome ?? "")")
            #expect(row["outcome"] as? String == outcome, "\(name): \(row)")
            // Within half a 2 s segment plus scheduling jitter.
            #expect(abs((row["listened_seconds"] as? Double ?? -1) - listened) <= 1.25, "\(name): \(row) vs \(listened)")
        }
        let played = try #require(rows.first { $0["client_type"] as? String == "ffmpeg" }, "no ffmpeg session: \(rows)")
        #expect(played["outcome"] as? String == "completed", "\(played)")
        let prefixes = Set(rows.compactMap { $0["client_prefix"] as? String })
        #expect(prefixes == ["127.0.0.0/24", "203.0.113.0/24", "198.51.100.0/24"], "\(rows)")
        let stored = try String(contentsOfFile: host.dataDirectory + "/catalog.sqlite", encoding: .isoLatin1)
        for address in ["127.0.0.1", "203.0.113.5", "203.0.113.77", "198.51.100.7", "198.51.100.8"] {
            #expect(!stored.contains(address), "\(address) stored")
        }

        // The rollups agree: completed = complete, pause-complete and ffmpeg; skipped; abandoned.
        let report = try host.curl([host.base + "/v1/analytics/tracks/\(id)?interval=minute&from=\(Int(Date().timeIntervalSince1970) - 600)"])
        #expect(report.status == 200, "\(report.body)")
        let totals = try #require(Self.json(report.body)["totals"] as? [String: Any])
        #expect(totals["completions"] as? Int == 3, "\(totals)")
        #expect(totals["skips"] as? Int == 1, "\(totals)")
        #expect(totals["abandons"] as? Int == 1, "\(totals)")
        #expect(totals["plays"] as? Int == 4, "\(totals)")
        // The bot, and the session whose beacons curl sent above (curl names no player: a bot).
        #expect(totals["excludedSessions"] as? Int == 2, "\(totals)")
        #expect(totals["uniqueListeners"] as? Int == 5, "\(totals)")
        #expect(totals["peakListeners"] as? Int ?? 0 >= 4, "\(totals)")
        #expect((Self.json(report.body)["clients"] as? [[String: Any]] ?? []).contains { $0["value"] as? String == "ffmpeg" })
        let byCountry = Dictionary(uniqueKeysWithValues: (Self.json(report.body)["countries"] as? [[String: Any]] ?? []).map {
            ($0["value"] as? String ?? "", $0["sessions"] as? Int ?? 0)
        })
        #expect(byCountry == ["NZ": 2, "BR": 2, "unknown": 1], "\(report.body)")
        let top = try host.curl([host.base + "/v1/analytics/top?interval=minute&from=\(Int(Date().timeIntervalSince1970) - 600)"])
        #expect((Self.json(top.body)["tracks"] as? [[String: Any]])?.first?["track"] as? String == id, "\(top.body)")
        #expect(try host.curl([host.base + "/v1/analytics/tracks/\(id)?interval=week"]).status == 400)
        #expect(try host.curl([host.base + "/v1/analytics/tracks/\(id)"], authenticated: false).status == 401)
        let streamOnly = try host.mint(["--scope", "stream"])
        #expect(try host.curl(["-H", "Authorization: Bearer \(streamOnly)", host.base + "/v1/analytics/top"], authenticated: false).status == 403)

        // The dashboard draws every chart from the API in headless Chromium, with the live count.
        let screenshot = host.dataDirectory + "-dashboard.png"
        defer { try? FileManager.default.removeItem(atPath: screenshot) }
        let page = try Subprocess.run("env", ["-u", "http_proxy", "-u", "https_proxy", "-u", "HTTP_PROXY", "-u", "HTTPS_PROXY", "-u", "all_proxy",
                                              try Subprocess.locate("python3"), DeliveryTests.script("chromium_play.py"),
                                              host.base + "/dashboard#token=\(host.adminToken)&track=\(id)&hours=1",
                                              "--dashboard", screenshot, "--timeout", "60"], timeLimit: 120)
        let pageReport = String(decoding: page.stdout, as: UTF8.self)
        #expect(page.succeeded, "\(pageReport) \(page.stderr.suffix(1000))")
        #expect(Self.json(String(pageReport.split(separator: "\n").last ?? ""))["ok"] as? Bool == true, "\(pageReport)")
        let png = (try? Data(contentsOf: URL(fileURLWithPath: screenshot))) ?? Data()
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000, "screenshot of \(png.count) bytes")
        if let keep = ProcessInfo.processInfo.environment["VEZA_DASHBOARD_SCREENSHOT"] { try? png.write(to: URL(fileURLWithPath: keep)) }

        // One call forgets a subject.
        let deletion = try host.curl(["-X", "DELETE", host.base + "/v1/analytics/subjects/listener-7"])
        #expect(Self.json(deletion.body)["deletedSessions"] as? Int == 1, "\(deletion.body)")
        #expect(try Self.sessions(host.dataDirectory + "/catalog.sqlite", track: id).count == rows.count - 1)
    }

    /// The stored sessions of `track` (python3's sqlite3, read-only).
    static func sessions(_ database: String, track: String) throws -> [[String: Any]] {
        let script = """
            import json, sqlite3, sys
            db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
            db.row_factory = sqlite3.Row
            print(json.dumps([dict(r) for r in db.execute("SELECT * FROM listening_session WHERE track_id = ?", (sys.argv[2],))]))
            """
        let result = try Subprocess.run("python3", ["-c", script, database, track])
        return (try? JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]]) ?? []
    }
}
