import Foundation
import Testing
import TestSupport

private let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts")

/// Sends `count` requests for `path` on one keep-alive connection (from `source`, an address of
/// the loopback range) with the given per-request headers, and answers the status counts.
/// `headers` may contain `{i}`, replaced by the request's number.
private func hammer(_ base: String, path: String, count: Int, source: String = "127.0.0.1",
                    headers: [String: String]) throws -> [Int: Int] {
    let script = """
    import http.client, json, sys, urllib.parse
    base, path, count, source, headers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
    url = urllib.parse.urlparse(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(source, 0))
    counts = {}
    for i in range(count):
        connection.request("GET", path, headers={k: v.replace("{i}", str(i)) for k, v in headers.items()})
        response = connection.getresponse()
        response.read()
        counts[response.status] = counts.get(response.status, 0) + 1
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(source, 0))
    print(json.dumps(counts))
    """
    let headerJSON = String(decoding: try JSONSerialization.data(withJSONObject: headers), as: UTF8.self)
    let run = try Subprocess.run("env", ["-u", "http_proxy", "-u", "HTTP_PROXY", "python3", "-c", script, base, path, String(count), source, headerJSON],
                                 timeLimit: 120)
    guard run.succeeded else { throw TestError.failed("hammer: \(run.stderr.suffix(800))") }
    let line = String(decoding: run.stdout, as: UTF8.self).split(separator: "\n").last ?? "{}"
    let parsed = (try JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Int] ?? [:]
    return Dictionary(uniqueKeysWithValues: parsed.compactMap { key, value in Int(key).map { ($0, value) } })
}

/// Issue 28: behind a CDN or a load balancer every listener shares the proxy's address. With
/// `server.trustedProxies`, a trusted peer's `Forwarded` / `X-Forwarded-For` / `X-Real-IP` name
/// the client, for the rate limits, the connection cap and the logs; nobody else's do.
extension LoadSuites {
@Suite("Behind a reverse proxy or CDN: trusted proxies and the real client address", .serialized)
struct ProxyTests {
    /// The host's default limits (HostProcess turns them off for the other suites).
    static let defaultLimits = ["VEZA_LIMITS_API_RATE": "50", "VEZA_LIMITS_UPLOAD_RATE": "2", "VEZA_LIMITS_MEDIA_RATE": "500"]

    /// A host with its default limits that trusts 127.0.0.1 (where the proxies connect from),
    /// and the state directory for the proxies that `services.sh` starts in front of it.
    static func trustingHost(_ name: String, workers: Int) throws -> (HostProcess, String) {
        var environment = defaultLimits
        environment["VEZA_SERVER_TRUSTED_PROXIES"] = "127.0.0.1"
        let host = HostProcess(name: name, environment: environment)
        try host.start(workers: workers)
        return (host, Fixtures.directory + "/\(name)-proxies-\(UUID().uuidString.prefix(6))")
    }

    static func stop(_ host: HostProcess, _ state: String) {
        _ = try? Subprocess.run(scripts.appendingPathComponent("services.sh").path, ["stop", state])
        host.stop()
    }

    @Test("1,000 listeners through Varnish and through nginx (real time, 30 s), each with its own X-Forwarded-For, play with the default limits: 0 errors, 0 stalls; one abusive client behind the same proxy is refused (429) by its own address while the others are not")
    func listenersBehindProxies() throws {
        let (host, state) = try Self.trustingHost("proxied", workers: 2)
        defer { Self.stop(host, state) }
        let source = try Fixtures.make("load-60.flac", source: Fixtures.sourceArguments(seconds: 60), ["-c:a", "flac"])
        let id = try #require(try host.upload(source, contentType: "audio/flac").json["id"] as? String)
        let track = try host.waitForTrack(id)
        let playback = try #require(track["playback"] as? [String: Any])
        let master = try #require(playback["hls"] as? String)
        let progressive = try #require((playback["progressive"] as? [[String: Any]])?.first { $0["rendition"] as? String == "mp3-320" }?["url"] as? String)

        for proxy in ["varnish", "nginx"] {
            try Subprocess.check(scripts.appendingPathComponent("services.sh").path, [proxy, state, String(host.port)])
            let env = try String(contentsOfFile: state + "/services.env", encoding: .utf8)
            let key = proxy == "varnish" ? "VEZA_VARNISH_URL=" : "VEZA_NGINX_URL="
            let base = try #require(env.split(separator: "\n").first { $0.hasPrefix(key) }.map { String($0.dropFirst(key.count)) }?
                .trimmingCharacters(in: CharacterSet(charactersIn: "\"'")))

            // The abusive client, behind the same proxy at the same time: API calls as fast as one
            // connection goes, all from 203.0.113.66 (without a token, so that only its address's
            // bucket can refuse it: a bearer token's subject has a bucket of its own).
            let abuse = Process()
            abuse.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            let abuseOut = Fixtures.directory + "/abuse-\(UUID().uuidString).json"
            defer { try? FileManager.default.removeItem(atPath: abuseOut) }
            let abuseScript = """
            import http.client, json, sys, time, urllib.parse
            url = urllib.parse.urlparse(sys.argv[1])
            time.sleep(8)
            c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            counts = {}
            for i in range(400):
                c.request("GET", sys.argv[2], headers={"X-Forwarded-For": "203.0.113.66"})
                r = c.getresponse(); r.read()
                counts[r.status] = counts.get(r.status, 0) + 1
            c.request("GET", sys.argv[2], headers={"X-Forwarded-For": "203.0.113.77"})
            r = c.getresponse(); r.read()
            open(sys.argv[4], "w").write(json.dumps({"counts": counts, "bystander": r.status}))
            """
            abuse.arguments = ["-u", "http_proxy", "-u", "HTTP_PROXY", "python3", "-c", abuseScript, base, "/v1/tracks/\(id)", "-", abuseOut]
            try abuse.run()

            let report = Fixtures.directory + "/proxy-load-\(UUID().uuidString).json"
            defer { try? FileManager.default.removeItem(atPath: report) }
            let result = try Subprocess.run(try Fixtures.builtProduct("veza-loadgen"), [
                "--url", base + master, "--progressive-url", base + progressive, "--progressive-fraction", "0.1",
                "--progressive-kbps", "320", "--listen-seconds", "15",
                "--listeners", "1000", "--duration", "30", "--ramp-seconds", "10", "--speed", "1", "--skip-probability", "0.2",
                "--forwarded-for", "10.20.0.1", "--server-pid", String(host.pid), "--json", report, "--fail-on-stall",
            ], timeLimit: 150)
            abuse.waitUntilExit()
            let json = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report)))) as? [String: Any] ?? [:]
            let output = String(decoding: result.stdout, as: UTF8.self)
            #expect(result.succeeded, "\(proxy): loadgen: \(output.suffix(1500)) \(result.stderr.suffix(500))")
            #expect(json["stalls"] as? Int == 0, "\(proxy)")
            #expect(json["errorsTotal"] as? Int == 0, "\(proxy): \(json["errors"] ?? "")")
            #expect((json["requests"] as? Int ?? 0) > 2000, "\(proxy): the run did real work: \(json["requests"] ?? "?") requests")
            #expect((json["sessions"] as? Int ?? 0) >= 1000)

            let abused = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: abuseOut)))) as? [String: Any] ?? [:]
            let counts = abused["counts"] as? [String: Int] ?? [:]
            #expect((counts["429"] ?? 0) > 0, "\(proxy): the abusive client was never limited: \(abused)")
            #expect((counts["401"] ?? 0) >= 100, "\(proxy): the abusive client got its burst first: \(abused)")
            #expect(abused["bystander"] as? Int == 401, "\(proxy): another client behind the same proxy was limited: \(abused)")
            print("\(proxy): \(json["requests"] ?? 0) listener requests, \(json["stalls"] ?? "?") stalls, \(json["errorsTotal"] ?? "?") errors; abusive client \(counts)")
        }
    }

    @Test("direct clients' X-Forwarded-For, Forwarded and X-Real-IP change nothing; a trusted peer's do; through a trusted proxy a spoofed X-Forwarded-For only moves the hops left of the real one; a bad server.trustedProxies entry stops start-up")
    func spoofing() throws {
        let (host, state) = try Self.trustingHost("spoof", workers: 1)
        defer { Self.stop(host, state) }
        // 150 API requests (burst 100 at 50/s), each naming another client; without a token, so
        // that only the address's bucket counts (answered 401 until it is empty, then 429).
        let path = "/v1/tracks"
        for header in ["X-Forwarded-For", "Forwarded", "X-Real-IP"] {
            let value = header == "Forwarded" ? "for=198.51.{i}.1" : "198.51.{i}.1"
            // From 127.0.0.3, not trusted: one client, one bucket, refused past its burst.
            let direct = try hammer(host.base, path: path, count: 150, source: "127.0.0.3", headers: [header: value])
            #expect((direct[429] ?? 0) >= 30, "\(header) from an untrusted peer was believed: \(direct)")
            // From 127.0.0.1, trusted: 150 clients, none over its budget.
            let trusted = try hammer(host.base, path: path, count: 150, source: "127.0.0.1", headers: [header: value])
            #expect(trusted[429] == nil && trusted[401] == 150, "\(header) from a trusted peer: \(trusted)")
        }
        // nginx (trusted, connecting from 127.0.0.1) appends the address it saw: a client at
        // 127.0.0.4 that sends its own X-Forwarded-For is still 127.0.0.4.
        try Subprocess.check(scripts.appendingPathComponent("services.sh").path, ["nginx", state, String(host.port)])
        let env = try String(contentsOfFile: state + "/services.env", encoding: .utf8)
        let nginx = try #require(env.split(separator: "\n").first { $0.hasPrefix("VEZA_NGINX_URL=") }.map { String($0.dropFirst(15)) }?
            .trimmingCharacters(in: CharacterSet(charactersIn: "\"'")))
        let spoofed = try hammer(nginx, path: path, count: 150, source: "127.0.0.4", headers: ["X-Forwarded-For": "198.51.{i}.1"])
        #expect((spoofed[429] ?? 0) >= 30, "a spoofed X-Forwarded-For through the proxy was believed: \(spoofed)")

        // Malformed values from a trusted peer are counted, and never a 500.
        let malformed = try hammer(host.base, path: "/healthz", count: 3, headers: ["X-Forwarded-For": "not-an-address"])
        #expect(malformed[200] == 3, "\(malformed)")
        let metrics = try host.curl([host.base + "/metrics"]).body
        #expect(metrics.contains(#"veza_http_forwarding_header_errors_total{header="x-forwarded-for"} 3"#), "\(metrics.split(separator: "\n").filter { $0.contains("forwarding") })")

        // A trustedProxies entry that is neither an address nor a range: the host does not start.
        let bad = try Subprocess.run("env", ["VEZA_SERVER_TRUSTED_PROXIES=127.0.0.1,proxy.local", try Fixtures.builtProduct("streamhost"), "serve",
                                             "--port", "0", "--data-directory", Fixtures.directory + "/bad-proxies-\(UUID().uuidString.prefix(6))"],
                                     timeLimit: 30)
        #expect(!bad.succeeded)
        #expect(bad.stderr.contains("server.trustedProxies: 'proxy.local' is not an IP address or CIDR range"), "\(bad.stderr)")
    }
}
}
