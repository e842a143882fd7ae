import Foundation
import Testing
import TestSupport

/// The short version of the listener load run (issue 9), in every `make test`: 200 simulated
/// players against the real host with its default limits, at 4× real time, must see no stall
/// and no error.
/// The suites that load the machine with hundreds of simulated listeners: they run one after
/// the other (each measures zero stalls, which two such runs side by side on two cores would not
/// give), while the other suites run beside them.
@Suite("Listener load suites, one at a time", .serialized)
enum LoadSuites {}

extension LoadSuites {
@Suite("Listener load, short run")
struct LoadTests {
    @Test("200 listeners (HLS with ABR and skips, 10 % paced progressive) at 4× for 30 s: zero stalls, zero errors")
    func shortRun() throws {
        let host = HostProcess(name: "load", environment: [
            // The host's defaults, not the suites' limits-off (see HostProcess).
            "VEZA_LIMITS_API_RATE": "50", "VEZA_LIMITS_UPLOAD_RATE": "2", "VEZA_LIMITS_MEDIA_RATE": "500",
        ])
        try host.start(workers: 2)
        let source = try Fixtures.make("load-60.flac", source: Fixtures.sourceArguments(seconds: 60), ["-c:a", "flac"])
        let reply = try host.upload(source, contentType: "audio/flac")
        let id = try #require(reply.json["id"] as? String, "\(reply)")
        let track = try host.waitForTrack(id)
        let playback = try #require(track["playback"] as? [String: Any])
        let master = host.base + (try #require(playback["hls"] as? String))
        let progressive = try #require((playback["progressive"] as? [[String: Any]])?.first { $0["rendition"] as? String == "mp3-320" })
        let report = Fixtures.directory + "/load-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: report) }
        let result = try Subprocess.run(try Fixtures.builtProduct("veza-loadgen"), [
            "--url", master, "--progressive-url", host.base + (progressive["url"] as! String), "--progressive-fraction", "0.1",
            "--progressive-kbps", "320", "--listen-seconds", "20",
            "--listeners", "200", "--duration", "30", "--ramp-seconds", "5", "--speed", "4", "--skip-probability", "0.3",
            "--server-pid", String(host.pid), "--json", report, "--fail-on-stall",
        ], timeLimit: 120)
        let json = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report)))) as? [String: Any] ?? [:]
        #expect(result.succeeded, "loadgen: \(String(decoding: result.stdout, as: UTF8.self).suffix(1500)) \(result.stderr.suffix(500))")
        #expect(json["stalls"] as? Int == 0)
        #expect(json["errorsTotal"] as? Int == 0)
        #expect((json["requests"] as? Int ?? 0) > 1000, "the run did real work: \(json["requests"] ?? "?") requests")
        #expect((json["sessions"] as? Int ?? 0) >= 200)
        host.stop()
    }

    @Test("a server that accepts and never answers: every wait of the load generator times out (its watchdog closes the connection), the run still ends on time")
    func timeouts() throws {
        let report = Fixtures.directory + "/load-timeout-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: report) }
        // A listener that takes every connection and reads the requests, answering nothing;
        // it runs the load generator against itself and exits with its status.
        let script = """
        import socket, subprocess, sys, threading
        server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(64)
        port = server.getsockname()[1]
        held = []
        def serve():
            while True:
                connection, _ = server.accept(); held.append(connection)
        threading.Thread(target=serve, daemon=True).start()
        run = subprocess.run(sys.argv[1:] + ["--url", "http://127.0.0.1:%d/hls/x/master.m3u8" % port])
        sys.exit(run.returncode)
        """
        let started = ContinuousClock.now
        let result = try Subprocess.run("python3", ["-c", script, try Fixtures.builtProduct("veza-loadgen"),
            "--listeners", "3", "--duration", "6", "--ramp-seconds", "1", "--timeout", "1.5", "--json", report], timeLimit: 60)
        let elapsed = ContinuousClock.now - started
        #expect(result.succeeded, "\(result.stderr.suffix(500))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
        let errors = try #require(json["errors"] as? [String: Any])
        // 3 listeners, 6 s, 1.5 s per timeout and a second's pause between attempts: several each.
        #expect((errors["timeout"] as? Int ?? 0) >= 3, "\(errors)")
        #expect(json["requests"] as? Int == 0)
        #expect(elapsed < .seconds(30), "the run did not end on time: \(elapsed)")
    }
}
}
