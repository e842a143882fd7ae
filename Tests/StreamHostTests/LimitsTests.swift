import Foundation
@testable import StreamHost
import Testing
import TestSupport

@Suite("Rate limits, connection caps and header deadlines")
struct LimitsTests {
    @Test("a token bucket allows its burst, refuses with the time to the next token, and refills at its rate")
    func bucket() {
        let limiter = RateLimiter(capacity: 1024)
        let limit = RateLimit(rate: 2, burst: 3)
        for _ in 0..<3 { #expect(limiter.acquire("a", limit: limit, now: 100).retryAfter == nil) }
        let refused = limiter.acquire("a", limit: limit, now: 100)
        #expect(refused.retryAfter.map { abs($0 - 0.5) < 1e-9 } == true)
        #expect(limiter.acquire("b", limit: limit, now: 100).retryAfter == nil, "another key is unaffected")
        #expect(limiter.acquire("a", limit: limit, now: 100.5).retryAfter == nil, "one token after 1/rate seconds")
        #expect(limiter.acquire("a", limit: limit, now: 100.5).retryAfter != nil)
        #expect(limiter.acquire("a", limit: RateLimit(rate: 0, burst: 1), now: 100.5).retryAfter == nil, "rate 0 disables")
    }

    @Test("100,000 distinct client addresses do not grow the limiter beyond its capacity")
    func boundedMemory() {
        let limiter = RateLimiter(capacity: 4096, shards: 16)
        let limit = RateLimit(rate: 1, burst: 1)
        for index in 0..<100_000 {
            _ = limiter.acquire("api|10.\(index >> 16).\((index >> 8) & 255).\(index & 255)", limit: limit, now: Double(index) / 1000)
        }
        #expect(limiter.count <= 4096, "\(limiter.count) keys kept")
        #expect(limiter.count >= 4096 - 16 * 8, "the table is used, not emptied: \(limiter.count)")
        // A client seen just now is still limited.
        #expect(limiter.acquire("api|10.1.134.159", limit: limit, now: 99.999).retryAfter != nil)
    }

    @Test("a client over its rate gets 429 with Retry-After and RateLimit fields; another client is unaffected; limits follow the token subject across addresses")
    func tooManyRequests() throws {
        let host = HostProcess(name: "limits", environment: ["VEZA_LIMITS_API_RATE": "1", "VEZA_LIMITS_API_BURST": "3"])
        try host.start(workers: 0)
        var statuses: [Int] = []
        for _ in 0..<5 { statuses.append(try host.curl([host.base + "/v1/tracks"]).status) }
        #expect(statuses == [200, 200, 200, 429, 429], "\(statuses)")
        let refused = try host.curl([host.base + "/v1/tracks"])
        let headers = refused.headers.lowercased()
        #expect(headers.contains("retry-after: 1"))
        #expect(headers.contains("ratelimit-limit: 3") && headers.contains("ratelimit-remaining: 0"))
        #expect(refused.body.contains(#""code":"rate_limited""#))
        // Another client (loopback 127.0.0.2, its own token subject) has its own buckets; health
        // checks are never limited.
        let other = try host.mint(["--scope", "admin", "--subject", "other-client"])
        #expect(try host.curl(["--interface", "127.0.0.2", "-H", "Authorization: Bearer \(other)", host.base + "/v1/tracks"],
                              authenticated: false).status == 200)
        #expect(try host.curl([host.base + "/healthz"]).status == 200)
        // The first client's token subject is over its rate from any address: one subject
        // behind many addresses gets no more than one address.
        let sameSubject = try host.curl(["--interface", "127.0.0.3", host.base + "/v1/tracks"])
        #expect(sameSubject.status == 429, "\(sameSubject.status)")
        #expect(sameSubject.body.contains("token subject"), "\(sameSubject.body)")
        Thread.sleep(forTimeInterval: 1.1)
        #expect(try host.curl([host.base + "/v1/tracks"]).status == 200, "refilled after a second")
        let metrics = try host.curl([host.base + "/metrics"]).body
        #expect(metrics.contains(#"veza_rate_limited_total{class="api"}"#))
        host.stop()
    }

    @Test("slowloris connections are closed at the header deadline; connections per address are capped; others are served")
    func slowClients() throws {
        let host = HostProcess(name: "slow", environment: ["VEZA_LIMITS_HEADER_TIMEOUT": "2", "VEZA_LIMITS_CONNECTIONS_PER_CLIENT": "4"])
        try host.start(workers: 0)
        // 3 connections trickle a header byte every 0.5 s (never finishing); one more connects
        // and reads; the 5th and 6th exceed the cap of 4 and are closed at once.
        let script = """
        import socket, time, sys
        port = int(sys.argv[1])
        slow = []
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n"); slow.append(s)
        idle = socket.create_connection(("127.0.0.1", port))
        time.sleep(0.3)  # accepted (on either event loop) before the next ones
        over = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        capped = 0
        for s in over:
            s.settimeout(2)
            try:
                capped += 1 if s.recv(1) == b"" else 0
            except (ConnectionResetError, socket.timeout):
                capped += 1 if isinstance(sys.exc_info()[1], ConnectionResetError) else 0
        start = time.time(); closed_after = None
        while time.time() - start < 8 and closed_after is None:
            for s in slow:
                try:
                    s.sendall(b"X")
                except OSError:
                    closed_after = time.time() - start
                    break
            time.sleep(0.5)
        print(capped, -1 if closed_after is None else round(closed_after, 1))
        """
        let file = Fixtures.directory + "/slowloris-\(UUID().uuidString).py"
        try Data(script.utf8).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try Subprocess.check("python3", [file, String(host.port)], timeLimit: 30)
        let fields = String(decoding: result.stdout, as: UTF8.self).split(separator: " ").map { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -9 }
        #expect(fields.first == 2, "connections over the cap closed: \(fields)")
        let closedAfter = fields.count > 1 ? fields[1] : -1
        #expect(closedAfter > 0 && closedAfter < 5, "slow connections closed at the 2 s header deadline: \(closedAfter)")
        // Meanwhile and afterwards, a normal client is served.
        #expect(try host.curl([host.base + "/healthz"]).status == 200)
        host.stop()
    }
}
