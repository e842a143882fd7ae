import Foundation
import Glibc
import Testing
import TestSupport

/// The live path end to end: `streamhost serve` with mounts from the environment, ffmpeg and
/// curl as Icecast source clients, and an ICY listener (Tests/scripts/icy_listen.py) whose
/// audio ffmpeg decodes.
@Suite("Live: Icecast-compatible sources and ICY listener mounts", .serialized)
struct LiveTests {
    static let mounts = "radio:radio-pw-1,aac:aac-pw-12,opus:opus-pw-12,legacy:legacy-pw-1,busy:busy-pw-12,paced:paced-pw-12,junk:junk-pw-12"

    /// A host whose shows end 2 s after their source leaves and are not recorded, unless
    /// `environment` says otherwise.
    static func startHost(_ environment: [String: String] = [:]) throws -> HostProcess {
        var variables = ["VEZA_LIVE_MOUNTS": mounts, "VEZA_LIVE_CREATE_MOUNTS_ON_CONNECT": "true",
                         "VEZA_LIVE_GRACE_SECONDS": "2", "VEZA_LIVE_RECORD": "false", "VEZA_LIVE_OPEN_LISTENING": "true"]
        for (key, value) in environment { variables[key] = value }
        let host = HostProcess(name: "live", environment: variables)
        try host.start(workers: 1)
        return host
    }

    /// A process left running (a source client, a listener); its standard output goes to
    /// `stdout` when given.
    static func background(_ tool: String, _ arguments: [String], stdin: String? = nil, stdout: String? = nil, stderr: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Subprocess.locate(tool))
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for key in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"] { environment[key] = nil }
        process.environment = environment
        let log = FileHandle(forWritingAtPath: "/dev/null")
        if let stdout {
            _ = FileManager.default.createFile(atPath: stdout, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: stdout)
        } else {
            process.standardOutput = log
        }
        if let stderr {
            _ = FileManager.default.createFile(atPath: stderr, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: stderr)
        } else {
            process.standardError = log
        }
        if let stdin { process.standardInput = FileHandle(forReadingAtPath: stdin) }
        try process.run()
        return process
    }

    /// Stops a source client at once (SIGKILL: a source that drops, as a crashed encoder does).
    static func kill(_ process: Process) {
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The token of the signed listening URLs the API hands out for a mount.
    static func token(_ host: HostProcess, _ name: String) throws -> String {
        let urls = try mount(host, name)["urls"] as? [String: String] ?? [:]
        let hls = try #require(urls["hls"], "no urls: \(urls)")
        return try #require(hls.firstMatch(of: /[?&]token=([^&]+)/).map { String($0.1) }, "unsigned: \(hls)")
    }

    static func mount(_ host: HostProcess, _ name: String) throws -> [String: Any] {
        let response = try host.curl(["\(host.base)/v1/live/\(name)"])
        return (try? JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any]) ?? [:]
    }

    /// Waits until the mount is `state` (live or idle).
    static func wait(_ host: HostProcess, _ name: String, state: String, seconds: Double = 15) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(seconds)
        var last: [String: Any] = [:]
        while Date() < deadline {
            last = try mount(host, name)
            if last["state"] as? String == state { return last }
            Thread.sleep(forTimeInterval: 0.2)
        }
        Issue.record("mount \(name) never became \(state): \(last)")
        return last
    }

    /// Listens for `seconds` and returns the listener's JSON report and the audio file.
    static func listen(_ url: String, seconds: Double) throws -> ([String: Any], String) {
        let out = Fixtures.directory + "/icy-\(UUID().uuidString.prefix(8))"
        let script = DeliveryTests.script("icy_listen.py")
        let result = try Subprocess.run("python3", [script, url, String(seconds), out], timeLimit: seconds + 30)
        let report = (try? JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]) ?? [:]
        return (report, out)
    }

    /// The audio's length and main frequency, decoded by ffmpeg (zero crossings of mono 44.1 kHz).
    static func decode(_ file: String) throws -> (seconds: Double, frequency: Double) {
        let result = try Subprocess.run("ffmpeg", ["-v", "error", "-i", file, "-ac", "1", "-ar", "44100", "-f", "s16le", "-"])
        let samples = result.stdout.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
        guard samples.count > 44_100 else { return (Double(samples.count) / 44_100, 0) }
        // Skip the first half second (decoder priming, the burst's first frame).
        let body = samples[22_050...]
        var crossings = 0
        var previous = body.first ?? 0
        for sample in body.dropFirst() {
            if (previous < 0) != (sample < 0) { crossings += 1 }
            previous = sample
        }
        return (Double(samples.count) / 44_100, Double(crossings) / 2 / (Double(body.count) / 44_100))
    }

    /// Mono 44.1 kHz samples of `file` (raw s16le when it ends in `.raw`), decoded by ffmpeg.
    static func samples(_ file: String) throws -> [Int16] {
        if file.hasSuffix(".raw") {
            return try Data(contentsOf: URL(fileURLWithPath: file)).withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
        }
        let result = try Subprocess.run("ffmpeg", ["-v", "error", "-i", file, "-ac", "1", "-ar", "44100", "-f", "s16le", "-"])
        return result.stdout.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
    }

    /// The main frequency of each second of `samples` (for messages).
    static func profile(_ samples: [Int16]) -> String {
        (0..<(samples.count / 44_100)).map { String(Int(frequency(samples, seconds: Double($0)..<Double($0 + 1)).rounded())) }.joined(separator: " ")
    }

    /// The main frequency of `samples[range]` (zero crossings), 0 for silence.
    static func frequency(_ samples: [Int16], seconds range: Range<Double>) -> Double {
        let lower = max(0, Int(range.lowerBound * 44_100)), upper = min(samples.count, Int(range.upperBound * 44_100))
        guard upper - lower > 4410 else { return 0 }
        let body = samples[lower..<upper]
        guard body.contains(where: { abs(Int($0)) > 300 }) else { return 0 }
        var crossings = 0
        var previous = body.first ?? 0
        for sample in body.dropFirst() {
            if (previous < 0) != (sample < 0) { crossings += 1 }
            previous = sample
        }
        return Double(crossings) / 2 / (Double(body.count) / 44_100)
    }

    static func source(_ host: HostProcess, mount: String, password: String, _ codec: [String], legacy: Bool = false, seconds: Int = 40,
                       frequency: Int = 523) throws -> Process {
        try background("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "sine=frequency=\(frequency):sample_rate=44100",
                                  "-t", String(seconds)] + codec + (legacy ? ["-legacy_icecast", "1"] : [])
                       + ["-ice_name", "Test \(mount)", "-ice_genre", "Tones",
                          "icecast://source:\(password)@127.0.0.1:\(host.port)/live/\(mount)"])
    }

    /// An MP3 128 kb/s tone on the mount `radio` for `seconds`, waited for until the mount is live.
    static func radioShow(_ host: HostProcess, seconds: Int) throws -> Process {
        let source = try source(host, mount: "radio", password: "radio-pw-1", ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"],
                                seconds: seconds)
        do {
            _ = try wait(host, "radio", state: "live")
        } catch {
            kill(source)
            throw error
        }
        return source
    }

    @Test("ffmpeg as an Icecast source (PUT: MP3, ADTS AAC, Ogg Opus; legacy SOURCE) reaches ICY listeners: the tone decodes, icy headers, titles by updinfo and in-band Ogg comments")
    func sourcesReachListeners() throws {
        let host = try Self.startHost()
        defer { host.stop() }
        let cases: [(mount: String, password: String, codec: [String], contentType: String, legacy: Bool, title: String?)] = [
            ("radio", "radio-pw-1", ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], "audio/mpeg", false, nil),
            ("aac", "aac-pw-12", ["-c:a", "aac", "-b:a", "96k", "-content_type", "audio/aac", "-f", "adts"], "audio/aac", false, nil),
            ("opus", "opus-pw-12", ["-c:a", "libopus", "-b:a", "64k", "-metadata", "title=Ogg Title", "-content_type", "audio/ogg", "-f", "ogg"],
             "audio/ogg", false, "Ogg Title"),
            ("legacy", "legacy-pw-1", ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], "audio/mpeg", true, nil),
        ]
        for item in cases {
            let source = try Self.source(host, mount: item.mount, password: item.password, item.codec, legacy: item.legacy)
            defer { Self.kill(source) }
            let state = try Self.wait(host, item.mount, state: "live")
            #expect((state["source"] as? [String: Any])?["name"] as? String == "Test \(item.mount)", "\(state)")
            // Two seconds in, so that the burst has audio in it.
            Thread.sleep(forTimeInterval: 2)
            var expectedTitle = item.title
            if item.title == nil {
                let song = "Artist - \(item.mount) song"
                let update = try host.curl(["-u", "source:\(item.password)",
                                            "\(host.base)/admin/metadata?mount=/\(item.mount)&mode=updinfo&song=\(song.replacingOccurrences(of: " ", with: "%20"))"],
                                           authenticated: false)
                #expect(update.status == 200 && update.body.contains("Metadata update successful"), "\(update.body)")
                expectedTitle = song
            }
            let (report, audio) = try Self.listen("\(host.base)/live/\(item.mount)", seconds: 6)
            let headers = report["headers"] as? [String: Any] ?? [:]
            #expect(report["status"] as? Int == 200, "\(item.mount): \(report)")
            #expect(headers["content-type"] as? String == item.contentType)
            #expect(headers["icy-metaint"] as? String == "16000")
            #expect(headers["icy-name"] as? String == "Test \(item.mount)" && headers["icy-genre"] as? String == "Tones")
            #expect(report["malformedBlocks"] as? Int == 0)
            #expect((report["titles"] as? [String] ?? []).contains(expectedTitle ?? ""), "\(item.mount): \(report)")
            let decoded = try Self.decode(audio)
            // 6 s of listening plus the burst, at real time.
            #expect(decoded.seconds > 5.5 && decoded.seconds < 12, "\(item.mount): \(decoded)")
            #expect(abs(decoded.frequency - 523) < 8, "\(item.mount): \(decoded)")
            #expect(try Self.mount(host, item.mount)["title"] as? String == expectedTitle)
            // The listener is a listening session of `live:{mount}` (while the show goes on):
            // about the 6 s it was connected, a skip (under the 30 s play threshold), the relay
            // in the source's codec.
            let listening = try Self.liveListening(host, item.mount) { ($0["totals"] as? [String: Any])?["sessions"] as? Int == 1 }
            let totals = listening["totals"] as? [String: Any] ?? [:]
            let listened = totals["listenedSeconds"] as? Double ?? 0
            #expect(listened > 5.5 && listened < 9, "\(item.mount): \(totals)")
            #expect(totals["skips"] as? Int == 1 && totals["plays"] as? Int == 0, "\(item.mount): \(totals)")
            let codec = ["radio": "mp3", "aac": "aac", "opus": "ogg", "legacy": "mp3"][item.mount]
            #expect(Self.values(listening, "codecs") == [codec] && Self.values(listening, "renditions") == ["relay"], "\(item.mount): \(listening)")
        }
        // Every source gone: the mounts are idle, a listener gets 404 not_live.
        for item in cases { _ = try Self.wait(host, item.mount, state: "idle") }
        let idle = try host.curl(["\(host.base)/live/radio"], authenticated: false)
        #expect(idle.status == 404 && idle.body.contains("not_live"))
        let metrics = try host.curl(["\(host.base)/metrics"], authenticated: false).body
        #expect(metrics.contains(#"veza_live_source_connections_total{format="ogg"} 1"#))
        #expect(metrics.contains("veza_live_sources 0"))
    }

    @Test("bad sources get clear answers: 401, 404, 415, 409 on a busy mount, 422 for data that is not the declared format, 403 without the live scope; a live token creates a mount and a chunked body is read")
    func refusals() throws {
        let host = try Self.startHost()
        defer { host.stop() }
        let mp3 = try Fixtures.make("live-3.mp3", source: Fixtures.sourceArguments(seconds: 3), ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"])
        func put(_ mount: String, _ extra: [String], file: String = mp3) throws -> (status: Int, body: String, headers: String) {
            try host.curl(["-X", "PUT", "-T", file] + extra + ["\(host.base)/live/\(mount)"], authenticated: false)
        }
        let wrong = try put("radio", ["-u", "source:nope", "-H", "Content-Type: audio/mpeg"])
        #expect(wrong.status == 401 && wrong.headers.lowercased().contains("www-authenticate: basic"), "\(wrong)")
        let anonymous = try put("radio", ["-H", "Content-Type: audio/mpeg"])
        #expect(anonymous.status == 401)
        let unknown = try put("nosuch", ["-u", "source:radio-pw-1", "-H", "Content-Type: audio/mpeg"])
        #expect(unknown.status == 404 && unknown.body.contains("not_found"))
        let untyped = try put("radio", ["-u", "source:radio-pw-1"])
        #expect(untyped.status == 415 && untyped.body.contains("Content-Type"), "\(untyped)")
        let video = try put("radio", ["-u", "source:radio-pw-1", "-H", "Content-Type: video/mp4"])
        #expect(video.status == 415)

        // A second source on a busy mount.
        let first = try Self.source(host, mount: "busy", password: "busy-pw-12", ["-c:a", "libmp3lame", "-content_type", "audio/mpeg", "-f", "mp3"])
        defer { Self.kill(first) }
        _ = try Self.wait(host, "busy", state: "live")
        let second = try put("busy", ["-u", "source:busy-pw-12", "-H", "Content-Type: audio/mpeg"])
        #expect(second.status == 409 && second.body.contains("mount_busy"), "\(second)")

        // 100 KB of noise declared as MP3: refused once 64 KiB hold no frame.
        let noise = Fixtures.directory + "/live-noise.bin"
        var generator = SystemRandomNumberGenerator()
        try Data((0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }).write(to: URL(fileURLWithPath: noise))
        let junk = try put("junk", ["-u", "source:junk-pw-12", "-H", "Content-Type: audio/mpeg"], file: noise)
        #expect(junk.status == 422 || junk.status == 0, "\(junk)")
        let metrics = try host.curl(["\(host.base)/metrics"], authenticated: false).body
        #expect(metrics.contains(#"veza_live_source_refusals_total{code="unprocessable_media"} 1"#), "\(metrics.split(separator: "\n").filter { $0.contains("live") })")

        // Tokens: stream scope 403; live scope opens (and here creates) a mount, chunked from stdin.
        let stream = try host.mint(["--scope", "stream"])
        let forbidden = try put("created", ["-H", "Authorization: Bearer \(stream)", "-H", "Content-Type: audio/mpeg"])
        #expect(forbidden.status == 403, "\(forbidden)")
        let live = try host.mint(["--scope", "live"])
        let created = try host.curl(["-X", "PUT", "--data-binary", "@" + mp3, "-H", "Transfer-Encoding: chunked", "-H", "Authorization: Bearer \(live)",
                                     "-H", "Content-Type: audio/mpeg", "-H", "Expect: 100-continue", "\(host.base)/live/created"], authenticated: false)
        #expect(created.status == 200 && created.headers.lowercased().contains("transfer-encoding") == false, "\(created)")
        let made = try Self.mount(host, "created")
        #expect(made["name"] as? String == "created" && (made["mediaSeconds"] as? Double ?? 0) > 2.5, "\(made)")
    }

    @Test("a source sending a file faster than real time is read at real time plus its allowance (back-pressure), not buffered")
    func backPressure() throws {
        let host = try Self.startHost()
        defer { host.stop() }
        let long = try Fixtures.make("live-60.mp3", source: Fixtures.sourceArguments(seconds: 60), ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"])
        let start = Date()
        let curl = try Self.background("curl", ["-sS", "--noproxy", "*", "-X", "PUT", "-T", long, "-u", "source:paced-pw-12",
                                                "-H", "Content-Type: audio/mpeg", "\(host.base)/live/paced"])
        defer { Self.kill(curl) }
        _ = try Self.wait(host, "paced", state: "live")
        Thread.sleep(forTimeInterval: 4)
        let elapsed = Date().timeIntervalSince(start)
        let seconds = try Self.mount(host, "paced")["mediaSeconds"] as? Double ?? -1
        // Allowance 4 s ahead of real time (plus one read's worth of frames).
        #expect(seconds > 4 && seconds < elapsed + 4 + 1.5, "read \(seconds) s of audio in \(elapsed) s")
        #expect(curl.isRunning, "the client is still sending: the host did not swallow the file")
        // SIGTERM with a source connected: the source's session ends, the host exits promptly.
        let stopping = Date()
        host.stop()
        #expect(Date().timeIntervalSince(stopping) < 10, "graceful shutdown waited \(Date().timeIntervalSince(stopping)) s for the source")
    }

    @Test("the real-time ladder as LL-HLS and live DASH behind signed URLs: parts, blocking reload, preload hints, rendition reports, delta updates, the title as ID3 timed metadata; ffmpeg plays the AAC and Opus masters and the MPD, Chromium the master and the demo page the mount; ADTS and Ogg rung streams; ENDLIST when the source leaves")
    func lowLatencyHLS() throws {
        // Listening is authorised as VOD playback is: every URL below carries the mount's token.
        let host = try Self.startHost(["VEZA_LIVE_OPEN_LISTENING": "false"])
        defer { host.stop() }
        let source = try Self.source(host, mount: "radio", password: "radio-pw-1",
                                     ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], seconds: 60)
        defer { Self.kill(source) }
        _ = try Self.wait(host, "radio", state: "live")
        let base = "\(host.base)/live/radio"
        let token = try Self.token(host, "radio")
        func signed(_ url: String) -> String { url + (url.contains("?") ? "&" : "?") + "token=" + token }
        // Without the token: 401; another mount's token: 403; a bearer token with scope stream:
        // the playlist carries a fresh token into its URIs.
        #expect(try host.curl(["\(base)/master.m3u8"], authenticated: false).status == 401)
        #expect(try host.curl(["\(base)"], authenticated: false).status == 401)
        let foreign = try host.curl(["\(host.base)/live/other/master.m3u8?token=\(token)"], authenticated: false)
        #expect(foreign.status == 403 || foreign.status == 404, "\(foreign.status)")
        let bearer = try host.curl(["\(base)/master.m3u8"])
        #expect(bearer.status == 200 && bearer.body.contains("aac-128/index.m3u8?token="), "\(bearer.body)")
        let master = try host.curl([signed("\(base)/master.m3u8")], authenticated: false)
        #expect(master.status == 200 && master.body.contains("aac-128/index.m3u8") && master.body.contains("aac-64/index.m3u8")
                && master.body.contains(#"CODECS="mp4a.40.2""#) && !master.body.contains("opus"), "\(master.body)")
        let opusMaster = try host.curl([signed("\(base)/master-opus.m3u8")], authenticated: false)
        #expect(opusMaster.status == 200 && opusMaster.body.contains("opus-96/index.m3u8"))

        // The first request waits for the first segment; then the playlist is LL-HLS.
        let first = try host.curl([signed("\(base)/aac-128/index.m3u8")], authenticated: false)
        let text = first.body
        #expect(first.status == 200, "\(first)")
        for tag in ["#EXT-X-PART-INF:PART-TARGET=0.32", "CAN-BLOCK-RELOAD=YES", "PART-HOLD-BACK=0.96", "#EXT-X-PRELOAD-HINT:TYPE=PART",
                    "#EXT-X-RENDITION-REPORT:URI=\"../aac-64/index.m3u8?token=\(token)\"", "#EXT-X-MAP:URI=\"init.mp4?token=\(token)\"", "#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-PART:"] {
            #expect(text.contains(tag), "missing \(tag) in:\n\(text)")
        }
        #expect(!text.contains("#EXT-X-ENDLIST"))
        // The API tells how far behind the source players are.
        let latency = try Self.mount(host, "radio")["latency"] as? [String: Double] ?? [:]
        #expect(latency["partSeconds"] == 0.32 && latency["playerTargetSeconds"] == 0.96 && (latency["lastPartPublishSeconds"] ?? 1) < 0.32, "\(latency)")
        // Blocking reload for the hinted part: answered once it exists, within about a part.
        guard let hint = text.firstMatch(of: /PRELOAD-HINT:TYPE=PART,URI="part-(\d+)\.(\d{1,2})\.m4s\?token=/) else {
            Issue.record("no preload hint: \(text)")
            return
        }
        let started = Date()
        let blocked = try host.curl([signed("\(base)/aac-128/index.m3u8?_HLS_msn=\(hint.1)&_HLS_part=\(hint.2)")], authenticated: false)
        let waited = Date().timeIntervalSince(started)
        #expect(blocked.status == 200 && blocked.body.contains("part-\(hint.1).\(hint.2).m4s"), "\(blocked.body)")
        #expect(waited < 1.5, "blocked \(waited) s for one 0.32 s part")
        // A blocking answer describes that moment for good: a cache may keep it for a segment.
        #expect(blocked.headers.lowercased().contains("cache-control: private, max-age=4") && first.headers.lowercased().contains("cache-control: private, no-cache"),
                "\(blocked.headers)")
        // The hinted part itself, requested before it exists, is held and then served.
        let next = blocked.body.firstMatch(of: /PRELOAD-HINT:TYPE=PART,URI="(part-\d+\.\d{1,2}\.m4s)\?token=/).map { String($0.1) } ?? ""
        let part = try host.curl([signed("\(base)/aac-128/\(next)")], authenticated: false)
        #expect(part.status == 200 && part.headers.lowercased().contains("content-type: audio/mp4"), "\(next): \(part.status) \(part.headers)")
        let tooFar = try host.curl([signed("\(base)/aac-128/index.m3u8?_HLS_msn=\(Int(hint.1)! + 50)")], authenticated: false)
        #expect(tooFar.status == 400)
        let partOnly = try host.curl([signed("\(base)/aac-128/index.m3u8?_HLS_part=1")], authenticated: false)
        #expect(partOnly.status == 400)
        // A sequence number that once overflowed the part arithmetic and stopped the host.
        let hostile = try host.curl([signed("\(base)/aac-128/index.m3u8?_HLS_msn=-9223372036854775808&_HLS_part=9223372036854775807")], authenticated: false)
        #expect(hostile.status == 400 && hostile.body.contains("_HLS_msn"), "\(hostile.status) \(hostile.body)")

        // ffmpeg plays both masters live: 8 s of the (transcoded) tone.
        for url in [signed("\(base)/master.m3u8"), signed("\(base)/master-opus.m3u8")] {
            let played = try Subprocess.run("ffmpeg", ["-v", "error", "-i", url, "-t", "8", "-ac", "1", "-ar", "44100", "-f", "s16le", "-"], timeLimit: 60)
            let samples = played.stdout.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
            let seconds = Double(samples.count) / 44_100
            #expect(seconds > 7.5, "\(url): \(seconds) s, \(played.stderr)")
            var crossings = 0
            for index in 1..<samples.count where (samples[index - 1] < 0) != (samples[index] < 0) { crossings += 1 }
            let frequency = Double(crossings) / 2 / max(seconds, 0.001)
            #expect(abs(frequency - 523) < 10, "\(url): \(frequency) Hz")
        }

        // Chromium's own HLS player plays the live master for 5 s.
        let chromium = try Subprocess.run("python3", [DeliveryTests.script("chromium_play.py"), signed("\(base)/master.m3u8"), "--native", "--live",
                                                      "--seconds", "5", "--timeout", "60"], timeLimit: 120)
        let chromiumOutput = String(decoding: chromium.stdout, as: UTF8.self)
        #expect(chromium.succeeded && chromiumOutput.contains(#""ok": true"#), "Chromium: \(chromiumOutput) \(chromium.stderr.suffix(800))")
        // The demo page lists the mount and plays it (the signed URLs of GET /v1/live/radio).
        let streamToken = try host.mint(["--scope", "stream"])
        let demo = try Subprocess.run("python3", [DeliveryTests.script("chromium_play.py"), "\(host.base)/demo?autoplay=live:radio#token=\(streamToken)",
                                                  "--seconds", "4", "--timeout", "60"], timeLimit: 120)
        let demoOutput = String(decoding: demo.stdout, as: UTF8.self)
        #expect(demo.succeeded && demoOutput.contains(#""ok": true"#) && demoOutput.contains("ladder (auto)"),
                "demo page: \(demoOutput) \(demo.stderr.suffix(800))")

        // Live DASH: a dynamic MPD with a SegmentTimeline, chunked low-latency availability and
        // a clock; ffmpeg plays it.
        let mpd = try host.curl([signed("\(base)/manifest.mpd")], authenticated: false)
        for text in [#"type="dynamic""#, "availabilityStartTime=", "timeShiftBufferDepth=", "<SegmentTimeline>", #"availabilityTimeComplete="false""#,
                     "availabilityTimeOffset=\"3.52\"", "urn:mpeg:dash:utc:direct:2014", #"media="$RepresentationID$/seg-$Number$.m4s?token=\#(token)""#,
                     #"<Representation id="opus-48""#, "<Latency target=\"960\""] {
            #expect(mpd.body.contains(text), "missing \(text) in:\n\(mpd.body)")
        }
        #expect(mpd.headers.lowercased().contains("content-type: application/dash+xml"))
        let dash = try Subprocess.run("ffmpeg", ["-v", "error", "-i", signed("\(base)/manifest.mpd"), "-t", "8", "-ac", "1", "-ar", "44100", "-f", "s16le", "-"],
                                      timeLimit: 60)
        let dashSamples = dash.stdout.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
        #expect(Double(dashSamples.count) / 44_100 > 7.5, "DASH: \(Double(dashSamples.count) / 44_100) s, \(dash.stderr)")
        #expect(abs(Self.frequency(dashSamples, seconds: 1..<8) - 523) < 10, "DASH: \(Self.frequency(dashSamples, seconds: 1..<8)) Hz")

        // Each rung as an ICY stream: ADTS for AAC, Ogg for Opus, with titles.
        for (rung, type) in [("aac-64.aac", "audio/aac"), ("opus-96.opus", "audio/ogg")] {
            let (report, audio) = try Self.listen(signed("\(base)/\(rung)"), seconds: 5)
            #expect(report["status"] as? Int == 200 && (report["headers"] as? [String: Any])?["content-type"] as? String == type, "\(rung): \(report)")
            #expect(report["malformedBlocks"] as? Int == 0)
            let decoded = try Self.decode(audio)
            #expect(decoded.seconds > 4.5 && abs(decoded.frequency - 523) < 10, "\(rung): \(decoded)")
        }
        let wrongRung = try host.curl([signed("\(base)/aac-999.aac")], authenticated: false)
        #expect(wrongRung.status == 404 && wrongRung.body.contains("aac-128.aac"), "\(wrongRung.body)")

        // The now-playing title reaches LL-HLS and DASH players as ID3 timed metadata: an emsg
        // before the next part's fragment (and the MPD declares the in-band events).
        let song = "Timed Title \(UUID().uuidString.prefix(4))"
        // The part hinted before the update is the first that may carry it: on a loaded machine
        // parts are published between the update and the next playlist request, so the parts
        // from that one on are read until the first with the new title.
        let hintPattern = /PRELOAD-HINT:TYPE=PART,URI="(part-\d+\.\d{1,2}\.m4s)\?token=/
        let before = try host.curl([signed("\(base)/aac-64/index.m3u8")], authenticated: false).body
        let firstCandidate = try #require(before.firstMatch(of: hintPattern).map { String($0.1) }, "\(before)")
        let update = try host.curl(["-u", "source:radio-pw-1", "\(host.base)/admin/metadata?mount=/radio&mode=updinfo&song=\(song.replacingOccurrences(of: " ", with: "%20"))"],
                                   authenticated: false)
        #expect(update.status == 200)
        let after = try host.curl([signed("\(base)/aac-64/index.m3u8")], authenticated: false).body
        let listed = after.matches(of: /#EXT-X-PART:[^\n]*URI="(part-\d+\.\d{1,2}\.m4s)\?token=/).map { String($0.1) }
            + (after.firstMatch(of: hintPattern).map { [String($0.1)] } ?? [])
        let candidates = listed.drop { $0 != firstCandidate }
        #expect(!candidates.isEmpty, "\(firstCandidate) is not in \(after)")
        var taggedBytes: [UInt8] = []
        for name in candidates {
            taggedBytes = [UInt8](try Subprocess.run("curl", ["-s", "--max-time", "10", signed("\(base)/aac-64/\(name)")]).stdout)
            // (A segment's first part also carries the title before, for players that join.)
            if taggedBytes.firstRange(of: Array(song.utf8)) != nil { break }
        }
        #expect(Array(taggedBytes.dropFirst(4).prefix(4)) == Array("emsg".utf8), "\(taggedBytes.prefix(16)) in \(candidates)")
        #expect(taggedBytes.firstRange(of: Array("https://aomedia.org/emsg/ID3".utf8)) != nil && taggedBytes.firstRange(of: Array(song.utf8)) != nil)
        #expect(try host.curl([signed("\(base)/manifest.mpd")], authenticated: false).body.contains(#"<InbandEventStream schemeIdUri="https://aomedia.org/emsg/ID3"/>"#))

        // A delta update (the show is past the 24 s skip boundary by now): older segments are
        // replaced by EXT-X-SKIP, the newest are listed with their parts.
        let full = try host.curl([signed("\(base)/aac-128/index.m3u8")], authenticated: false).body
        let delta = try host.curl([signed("\(base)/aac-128/index.m3u8?_HLS_skip=YES")], authenticated: false).body
        #expect(full.contains("CAN-SKIP-UNTIL=24") && !full.contains("EXT-X-SKIP"), "\(full)")
        #expect(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=") && delta.contains("#EXT-X-VERSION:9") && delta.contains("#EXT-X-PART:")
                && delta.split(separator: "\n").count < full.split(separator: "\n").count, "\(delta)")
        #expect(try host.curl([signed("\(base)/aac-128/index.m3u8?_HLS_skip=maybe")], authenticated: false).status == 400)

        // The source leaves: the playlist ends.
        Self.kill(source)
        _ = try Self.wait(host, "radio", state: "idle")
        Thread.sleep(forTimeInterval: 0.5)
        let ended = try host.curl([signed("\(base)/aac-128/index.m3u8")], authenticated: false)
        #expect(ended.status == 200 && ended.body.contains("#EXT-X-ENDLIST") && !ended.body.contains("PRELOAD-HINT"), "\(ended.body)")

        // Listening analytics: the LL-HLS and DASH players' sessions (each client ends once it
        // has been gone for the audience window, 12 s) and the rung streams' ICY sessions are
        // stored under live:radio.
        let report = try Self.liveListening(host, "radio", within: 40) { Set(Self.values($0, "renditions")).isSuperset(of: ["hls", "dash"]) }
        #expect(Set(Self.values(report, "renditions")).isSuperset(of: ["hls", "dash"]), "\(report)")
        #expect(Self.values(report, "renditions").contains { $0.hasPrefix("aac-") || $0.hasPrefix("opus-") }, "\(report)")
    }

    /// The listening report of `live:{mount}` over the last hour, once `ready` holds (or after `within` seconds).
    static func liveListening(_ host: HostProcess, _ mount: String, within: Double = 15,
                              until ready: ([String: Any]) -> Bool) throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(within)
        var report: [String: Any] = [:]
        repeat {
            let from = Int(Date().timeIntervalSince1970) - 3600
            let answer = try host.curl(["\(host.base)/v1/analytics/tracks/live:\(mount)?interval=minute&from=\(from)"])
            report = (try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]) ?? ["status": answer.status, "body": answer.body]
            if ready(report) { break }
            Thread.sleep(forTimeInterval: 0.5)
        } while Date() < deadline
        return report
    }

    /// The values of a listening report's breakdown (`codecs`, `renditions`, …), sorted.
    static func values(_ report: [String: Any], _ breakdown: String) -> [String] {
        (report[breakdown] as? [[String: Any]] ?? []).compactMap { $0["value"] as? String }.sorted()
    }

    @Test("mounts through the API: create (admin) with its own ladder, window and open listening, list, refuse a duplicate or bad settings, delete; kept across a restart")
    func mountAPI() throws {
        let host = try Self.startHost()
        defer { host.stop() }
        let created = try host.curl(["-X", "POST", "-H", "Content-Type: application/json", "-d", #"{"name":"talk","sourcePassword":"talk-pw-123"}"#,
                                     "\(host.base)/v1/live"])
        #expect(created.status == 201 && created.body.contains(#""state":"idle""#) && !created.body.contains("talk-pw-123"), "\(created)")
        let duplicate = try host.curl(["-X", "POST", "-H", "Content-Type: application/json", "-d", #"{"name":"talk","sourcePassword":"talk-pw-123"}"#,
                                       "\(host.base)/v1/live"])
        #expect(duplicate.status == 409)
        let list = try host.curl(["\(host.base)/v1/live"])
        #expect(list.status == 200 && list.body.contains(#""name":"talk""#) && list.body.contains(#""name":"radio""#))
        let anonymous = try host.curl(["-X", "POST", "-d", "{}", "\(host.base)/v1/live"], authenticated: false)
        #expect(anonymous.status == 401)
        // A mount with its own ladder and window, open to listeners; bad settings are refused.
        let own = try host.curl(["-X", "POST", "-H", "Content-Type: application/json", "-d",
                                 #"{"name":"club","sourcePassword":"club-pw-123","rungs":["aac-96","opus-32","mp3-128"],"dvrSeconds":120,"openListening":true}"#,
                                 "\(host.base)/v1/live"])
        #expect(own.status == 201 && own.body.contains(#""rungs":["aac-96","opus-32","mp3-128"]"#) && own.body.contains(#""openListening":true"#)
                && !own.body.contains("token="), "\(own.body)")
        let club = try Self.source(host, mount: "club", password: "club-pw-123",
                                   ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], seconds: 20)
        defer { Self.kill(club) }
        _ = try Self.wait(host, "club", state: "live")
        let clubMaster = try host.curl(["\(host.base)/live/club/master.m3u8"], authenticated: false)
        let clubOpus = try host.curl(["\(host.base)/live/club/master-opus.m3u8"], authenticated: false)
        #expect(clubMaster.status == 200 && clubMaster.body.contains("aac-96/index.m3u8") && !clubMaster.body.contains("aac-128")
                && clubOpus.body.contains("opus-32/index.m3u8") && !clubOpus.body.contains("token=") && !clubMaster.body.contains("mp3"),
                "\(clubMaster.body)\n\(clubOpus.body)")
        // The MP3 rung is an ICY stream (as VOD serves MP3 as a file only).
        Thread.sleep(forTimeInterval: 2)
        let (mp3Report, mp3Audio) = try Self.listen("\(host.base)/live/club/mp3-128.mp3", seconds: 4)
        #expect(mp3Report["status"] as? Int == 200 && (mp3Report["headers"] as? [String: Any])?["content-type"] as? String == "audio/mpeg", "\(mp3Report)")
        let mp3Decoded = try Self.decode(mp3Audio)
        #expect(mp3Decoded.seconds > 3 && abs(mp3Decoded.frequency - 523) < 10, "mp3 rung: \(mp3Decoded)")
        for bad in [#"{"name":"b1","sourcePassword":"","rungs":["mp4-1"]}"#, #"{"name":"b2","sourcePassword":"","dvrSeconds":5}"#,
                    #"{"name":"b3","sourcePassword":"","loudnessTarget":3}"#, #"{"name":"b 4","sourcePassword":""}"#,
                    #"{"name":"b5","sourcePassword":"","fallback":{"mount":"b5"}}"#, #"{"name":"b7","sourcePassword":"","rungs":["mp3-128"]}"#, #"{"name":"b6","sourcePassword":"","fallback":{"mount":"a","tracks":["t"]}}"#,
                    // 7 characters; the second is 7 characters in 14 bytes of UTF-8 (the schema counts characters)
                    #"{"name":"b8","sourcePassword":"short-7"}"#, #"{"name":"b9","sourcePassword":"ééééééé"}"#] {
            let refused = try host.curl(["-X", "POST", "-H", "Content-Type: application/json", "-d", bad, "\(host.base)/v1/live"])
            #expect(refused.status == 400, "\(bad): \(refused.status) \(refused.body)")
        }
        #expect(try host.curl(["-X", "DELETE", "\(host.base)/v1/live/talk"]).status == 204)
        #expect(try host.curl(["\(host.base)/v1/live/talk"]).status == 404)
        // Mounts made through the API are kept in the catalog: after a restart "club" is back
        // with its settings, "talk" (deleted) is not.
        Self.kill(club)
        host.stop()
        try host.start(workers: 1)
        let again = try host.curl(["\(host.base)/v1/live/club"])
        #expect(again.status == 200 && again.body.contains(#""rungs":["aac-96","opus-32","mp3-128"]"#) && again.body.contains(#""openListening":true"#), "\(again.body)")
        #expect(try host.curl(["\(host.base)/v1/live/talk"]).status == 404)
    }

    @Test("sub-second transports behind the mount's token: WebSocket (init + CMAF parts, in order and continuous, decoding to the tone) and WebRTC by WHEP (aiortc decodes the Opus: the tone, no gap, no loss); both counted per protocol; Chromium plays both on the demo page (getStats: no loss); bad requests get 401, 404, 415, 400, 405, 426")
    func subSecondTransports() throws {
        let host = try Self.startHost(["VEZA_LIVE_OPEN_LISTENING": "false"])
        defer { host.stop() }
        let source = try Self.radioShow(host, seconds: 90)
        defer { Self.kill(source) }
        Thread.sleep(forTimeInterval: 2)
        let token = try Self.token(host, "radio")
        let ws = "ws://127.0.0.1:\(host.port)/ws/live/radio"
        let whep = "\(host.base)/whep/radio"

        // Refusals: no token, an unknown rung, a plain GET, a bad offer, a PATCH.
        let wsScript = DeliveryTests.script("ws_live_client.py"), whepScript = DeliveryTests.script("whep_client.py")
        let refused = try Subprocess.run("python3", [wsScript, ws, "--seconds", "1", "--json"], timeLimit: 30)
        #expect(refused.status == 2 && (String(decoding: refused.stdout, as: UTF8.self) + refused.stderr).contains("401"), "\(refused)")
        let noRung = try Subprocess.run("python3", [wsScript, ws + "?rung=flac-1", "--token", token, "--seconds", "1", "--json"], timeLimit: 30)
        #expect(noRung.status == 2 && (String(decoding: noRung.stdout, as: UTF8.self) + noRung.stderr).contains("404"), "\(noRung)")
        #expect(try host.curl(["\(host.base)/ws/live/radio?token=\(token)"], authenticated: false).status == 426)
        #expect(try host.curl(["-X", "POST", "-H", "Content-Type: application/sdp", "--data-binary", "v=0", whep], authenticated: false).status == 401)
        #expect(try host.curl(["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "v=0", "\(whep)?token=\(token)"], authenticated: false).status == 415)
        let badOffer = try host.curl(["-X", "POST", "-H", "Content-Type: application/sdp", "--data-binary", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
                                      "\(whep)?token=\(token)"], authenticated: false)
        #expect(badOffer.status == 400 && badOffer.body.contains("bad_offer") && badOffer.body.contains("no audio section"), "\(badOffer)")
        #expect(try host.curl(["-X", "PATCH", "\(whep)/0123abcd"], authenticated: false).status == 405)
        #expect(try host.curl(["-X", "DELETE", "\(whep)/0123456789abcdef"], authenticated: false).status == 404)

        // A WebSocket listener and a WHEP session at once, counted while they play.
        let wsOut = Fixtures.directory + "/ws-\(UUID().uuidString.prefix(8)).mp4"
        let wsReport = Fixtures.directory + "/ws-\(UUID().uuidString.prefix(8)).json"
        let whepReport = Fixtures.directory + "/whep-\(UUID().uuidString.prefix(8)).json"
        let wsClient = try Self.background("python3", [wsScript, ws, "--token", token, "--seconds", "8", "--out", wsOut, "--json"], stdout: wsReport)
        let whepClient = try Self.background("python3", [whepScript, "\(whep)?token=\(token)", "--seconds", "8", "--expect-hz", "523", "--json"],
                                             stdout: whepReport)
        Thread.sleep(forTimeInterval: 5)
        let listeners = try Self.mount(host, "radio")["listeners"] as? [String: Int] ?? [:]
        #expect(listeners["webSocket"] == 1 && listeners["webRTC"] == 1, "\(listeners)")
        let metrics = try host.curl(["\(host.base)/metrics"]).body
        #expect(metrics.contains(#"veza_live_listeners{protocol="webrtc"} 1"#) && metrics.contains(#"veza_live_listeners{protocol="websocket"} 1"#),
                "\(metrics.split(separator: "\n").filter { $0.contains("live_listeners") })")
        wsClient.waitUntilExit()
        whepClient.waitUntilExit()
        let wsResult = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: wsReport))) as? [String: Any]) ?? [:]
        #expect(wsClient.terminationStatus == 0, "WebSocket: \(wsResult)")
        #expect(wsResult["gaps"] as? Int == 0 && (wsResult["parts"] as? Int ?? 0) >= 20 && (wsResult["mime"] as? String ?? "").contains("mp4a.40.2"),
                "WebSocket: \(wsResult)")
        #expect((wsResult["first_part_s"] as? Double ?? 9) < 0.5, "the first part comes at once: \(wsResult)")
        let (seconds, frequency) = try Self.decode(wsOut)
        #expect(seconds > 7 && abs(frequency - 523) < 10, "the WebSocket's parts decode to \(seconds) s at \(frequency) Hz")
        let whepResult = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: whepReport))) as? [String: Any]) ?? [:]
        #expect(whepClient.terminationStatus == 0, "WHEP: \(whepResult)")
        #expect(whepResult["gaps"] as? Int == 0 && whepResult["packets_lost"] as? Int == 0 && (whepResult["packets_received"] as? Int ?? 0) >= 380
                && whepResult["delete_status"] as? Int == 200 && abs((whepResult["dominant_hz"] as? Double ?? 0) - 523) < 10, "WHEP: \(whepResult)")
        // Both ended: the counts go back to zero (the WHEP session by its DELETE).
        Thread.sleep(forTimeInterval: 1)
        let after = try Self.mount(host, "radio")["listeners"] as? [String: Int] ?? [:]
        #expect(after["webSocket"] == 0 && after["webRTC"] == 0, "\(after)")

        // Chromium: the demo page plays the mount over each transport.
        let streamToken = try host.mint(["--scope", "stream"])
        for transport in ["ws", "webrtc"] {
            let demo = try Subprocess.run("python3", [DeliveryTests.script("chromium_play.py"), "\(host.base)/demo?autoplay=live:radio&transport=\(transport)#token=\(streamToken)",
                                                      "--seconds", "5", "--timeout", "60"], timeLimit: 120)
            let output = String(decoding: demo.stdout, as: UTF8.self)
            let report = (try? JSONSerialization.jsonObject(with: demo.stdout) as? [String: Any]) ?? [:]
            #expect(demo.succeeded && report["ok"] as? Bool == true, "demo page over \(transport): \(output) \(demo.stderr.suffix(800))")
            if transport == "ws" {
                #expect((report["engine"] as? String ?? "").contains("WebSocket") && (report["liveParts"] as? Int ?? 0) >= 15, "\(output)")
            } else {
                let stats = report["webrtc"] as? [String: Any] ?? [:]
                #expect((report["engine"] as? String ?? "").contains("WebRTC") && (stats["packetsReceived"] as? Int ?? 0) >= 200
                        && stats["packetsLost"] as? Int == 0 && (stats["totalSamplesReceived"] as? Int ?? 0) > 48_000 * 4, "\(output)")
            }
        }
    }

    @Test("veza-loadgen's WebRTC listeners (short version of make bench-live-listeners): 40 real WHEP sessions (ICE, DTLS, SRTP) on one mount for 8 s all connect and get every packet, none underruns; the host counts them, then none once they DELETE")
    func loadgenWebRTCSessions() throws {
        let host = try Self.startHost()
        defer { host.stop() }
        let source = try Self.radioShow(host, seconds: 40)
        defer { Self.kill(source) }
        Thread.sleep(forTimeInterval: 2)
        let report = Fixtures.directory + "/whep-load-\(UUID().uuidString.prefix(8)).json"
        let run = try Self.background(try Fixtures.builtProduct("veza-loadgen"), ["--whep", "\(host.base)/whep/radio", "--listeners", "40", "--duration", "8",
                                                                                 "--ramp-seconds", "2", "--json", report])
        Thread.sleep(forTimeInterval: 5)
        let during = try Self.mount(host, "radio")["listeners"] as? [String: Int] ?? [:]
        #expect(during["webRTC"] == 40, "\(during)")
        run.waitUntilExit()
        let result = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any]) ?? [:]
        #expect(run.terminationStatus == 0 && result["connected"] as? Int == 40 && (result["failed"] as? [String: Int] ?? ["?": 1]).isEmpty, "\(result)")
        // 40 sessions × about 6 s × 50 packets a second.
        #expect((result["packets"] as? Int ?? 0) > 40 * 250 && result["lost"] as? Int == 0 && result["underruns"] as? Int == 0, "\(result)")
        let delay = result["delayToLiveEdgeMs"] as? [String: Any] ?? [:]
        #expect((delay["count"] as? Int ?? 0) > 0 && (delay["p99"] as? Double ?? 1000) < 200, "\(result)")
        Thread.sleep(forTimeInterval: 1)
        let after = try Self.mount(host, "radio")["listeners"] as? [String: Int] ?? [:]
        #expect(after["webRTC"] == 0, "\(after)")
    }

    @Test("veza-loadgen's LL-HLS listeners (short version of make bench-live-listeners): 40 players of one rung for 10 s, each from PART-HOLD-BACK behind the edge with blocking reloads, play every part without a stall or an error, about a second behind the source")
    func loadgenLLHLSListeners() throws {
        let host = try Self.startHost()
        defer { host.stop() }
        let source = try Self.radioShow(host, seconds: 40)
        defer { Self.kill(source) }
        Thread.sleep(forTimeInterval: 5)
        let report = Fixtures.directory + "/llhls-load-\(UUID().uuidString.prefix(8)).json"
        let run = try Self.background(try Fixtures.builtProduct("veza-loadgen"), ["--llhls", "\(host.base)/live/radio/aac-128/index.m3u8", "--listeners", "40",
                                                                                 "--duration", "10", "--ramp-seconds", "2", "--json", report])
        run.waitUntilExit()
        let result = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any]) ?? [:]
        #expect(run.terminationStatus == 0 && result["errorsTotal"] as? Int == 0 && result["stalls"] as? Int == 0, "\(result)")
        // 40 players × about 8 s × 3.125 parts a second; once caught up (after the first three
        // parts), each part after its own blocking reload.
        let parts = (result["segments"] as? [String: Int])?["parts"] ?? 0
        #expect(parts > 40 * 20 && (result["requests"] as? Int ?? 0) >= 2 * parts - 40 * 4, "\(result)")
        let delay = result["delayToLiveEdgeMs"] as? [String: Any] ?? [:]
        #expect((delay["count"] as? Int ?? 0) == parts && (delay["p50"] as? Double ?? 0) > 300 && (delay["p99"] as? Double ?? 10_000) < 3_000, "\(result)")
    }

    @Test("source failover: kill -9 of the source mid-show; LL-HLS, DASH and ICY ladder listeners are counted per protocol and keep playing through the fallback and return to the new source (another format); the show becomes a track")
    func failoverAndArchive() throws {
        let host = try Self.startHost(["VEZA_LIVE_GRACE_SECONDS": "8", "VEZA_LIVE_RECORD": "true"])
        defer { host.stop() }
        let first = try Self.source(host, mount: "radio", password: "radio-pw-1",
                                    ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], seconds: 60)
        defer { Self.kill(first) }
        _ = try Self.wait(host, "radio", state: "live")
        let base = "\(host.base)/live/radio"
        // The first segment exists (the playlist request waits for it).
        #expect(try host.curl(["\(base)/aac-128/index.m3u8"], authenticated: false).status == 200)
        let seconds = 20
        let directory = Fixtures.directory + "/failover-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let hls = try Self.background("ffmpeg", ["-nostdin", "-v", "error", "-i", "\(base)/master.m3u8", "-t", String(seconds), "-ac", "1", "-ar", "44100",
                                                 "-f", "s16le", "-y", directory + "/hls.raw"])
        let dash = try Self.background("ffmpeg", ["-nostdin", "-v", "verbose", "-i", "\(base)/manifest.mpd", "-t", String(seconds), "-ac", "1", "-ar", "44100",
                                                  "-f", "s16le", "-y", directory + "/dash.raw"], stderr: directory + "/dash.log")
        let icy = try Self.background("python3", [DeliveryTests.script("icy_listen.py"), "\(base)/aac-128.aac", String(seconds), directory + "/icy.aac"],
                                      stdout: directory + "/icy.json")
        let listeners = [hls, dash, icy]
        defer { for process in listeners { Self.kill(process) } }
        Thread.sleep(forTimeInterval: 5)
        // Listeners per protocol: the LL-HLS and DASH players count (as the players that asked
        // lately), the ladder's ICY listener is connected.
        let listening = try Self.mount(host, "radio")["listeners"] as? [String: Int] ?? [:]
        #expect((listening["hls"] ?? 0) >= 1 && listening["dash"] == 1 && listening["icyLadder"] == 1, "\(listening)")
        let gauges = try host.curl(["\(host.base)/metrics"], authenticated: false).body
        #expect(gauges.contains(#"veza_live_listeners{protocol="dash"} 1"#), "\(gauges.split(separator: "\n").filter { $0.contains("live_listeners") })")
        // The encoder crashes: the show goes on with the fallback.
        Self.kill(first)
        let waiting = try Self.wait(host, "radio", state: "fallback", seconds: 5)
        #expect((waiting["show"] as? [String: Any])?["ended"] as? Bool == false, "\(waiting)")
        Thread.sleep(forTimeInterval: 3)
        // It comes back within the grace period, as Ogg Opus at another pitch.
        let second = try Self.source(host, mount: "radio", password: "radio-pw-1",
                                     ["-c:a", "libopus", "-b:a", "96k", "-content_type", "audio/ogg", "-f", "ogg"], seconds: 60, frequency: 880)
        defer { Self.kill(second) }
        _ = try Self.wait(host, "radio", state: "live")
        for process in listeners { process.waitUntilExit() }
        try? FileManager.default.copyItem(atPath: host.logPath, toPath: directory + "/host.log")
        for (name, file) in [("hls", directory + "/hls.raw"), ("dash", directory + "/dash.raw"), ("icy", directory + "/icy.aac")] {
            let samples = try Self.samples(file)
            let length = Double(samples.count) / 44_100
            // Every listener got its whole time: the stream never ended or stalled for long.
            let log = (try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8))?.split(separator: "\n").suffix(30).joined(separator: "\n") ?? ""
            #expect(length > Double(seconds) - 1, "\(name): \(length) s: \(Self.profile(samples))\n\(log)")
            #expect(abs(Self.frequency(samples, seconds: 0.5..<3) - 523) < 10, "\(name) starts on the first source: \(Self.frequency(samples, seconds: 0.5..<3)) Hz")
            let end = length - 3
            #expect(abs(Self.frequency(samples, seconds: end..<(end + 2.5)) - 880) < 12,
                    "\(name) ends on the second source: \(Self.profile(samples))")
        }
        let icyReport = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/icy.json"))) as? [String: Any]) ?? [:]
        #expect(icyReport["status"] as? Int == 200, "\(icyReport)")
        let state = try Self.mount(host, "radio")
        let show = state["show"] as? [String: Any] ?? [:]
        #expect(show["sourceReconnects"] as? Int == 1 && (show["fallbackSeconds"] as? Double ?? 0) >= 2.5, "\(state)")
        let metrics = try host.curl(["\(host.base)/metrics"], authenticated: false).body
        #expect(metrics.contains("veza_live_source_reconnects_total 1"), "\(metrics.split(separator: "\n").filter { $0.contains("live") })")
        #expect(metrics.contains("veza_live_part_publish_seconds_count"))

        // The show ends (no source for the grace period) and its recording becomes a track.
        Self.kill(second)
        _ = try Self.wait(host, "radio", state: "idle", seconds: 20)
        var trackID: String?
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, trackID == nil {
            trackID = (try Self.mount(host, "radio")["show"] as? [String: Any])?["recordingTrack"] as? String
            if trackID == nil { Thread.sleep(forTimeInterval: 0.5) }
        }
        let final = try Self.mount(host, "radio")
        let id = try #require(trackID, "\(final)")
        let track = try host.waitForTrack(id)
        #expect(track["status"] as? String == "ready", "\(track)")
        let metadata = track["metadata"] as? [String: Any] ?? [:]
        let duration = Double(metadata["sampleCount"] as? Int ?? 0) / Double(metadata["sampleRate"] as? Int ?? 1)
        // From the first source's start to the second's end: ~5 s + the gap + ~20 s, not the
        // fallback after the show.
        #expect(duration > 20 && duration < 45, "archived \(duration) s: \(metadata)")
    }

    @Test("fallbacks: while its source is away a show plays another mount's show, or catalog tracks in turn, instead of silence; LL-HLS listeners hear them and the API names them")
    func fallbackToMountAndTracks() throws {
        let host = try Self.startHost(["VEZA_LIVE_GRACE_SECONDS": "30"])
        defer { host.stop() }
        // A ready track: a 330 Hz tone.
        let file = try Fixtures.make("fallback-330.flac", source: ["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=12"], ["-c:a", "flac"])
        let uploaded = try host.upload(file, contentType: "audio/flac")
        let trackID = try #require(uploaded.json["id"] as? String, "\(uploaded)")
        #expect(try host.waitForTrack(trackID)["status"] as? String == "ready")
        for body in [#"{"name":"backup","sourcePassword":"backup-pw-1","openListening":true}"#,
                     #"{"name":"main","sourcePassword":"main-pw-123","openListening":true,"fallback":{"mount":"backup"}}"#,
                     #"{"name":"auto","sourcePassword":"auto-pw-123","openListening":true,"fallback":{"tracks":["\#(trackID)"]}}"#] {
            let created = try host.curl(["-X", "POST", "-H", "Content-Type: application/json", "-d", body, "\(host.base)/v1/live"])
            #expect(created.status == 201, "\(created.body)")
        }
        let mp3 = ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"]
        let backup = try Self.source(host, mount: "backup", password: "backup-pw-1", mp3, seconds: 60, frequency: 880)
        defer { Self.kill(backup) }
        let main = try Self.source(host, mount: "main", password: "main-pw-123", mp3, seconds: 60)
        defer { Self.kill(main) }
        let auto = try Self.source(host, mount: "auto", password: "auto-pw-123", mp3, seconds: 60)
        defer { Self.kill(auto) }
        for name in ["backup", "main", "auto"] { _ = try Self.wait(host, name, state: "live") }
        for name in ["main", "auto"] {
            #expect(try host.curl(["\(host.base)/live/\(name)/aac-128/index.m3u8"], authenticated: false).status == 200)
        }
        let directory = Fixtures.directory + "/fallbacks-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let seconds = 16
        let listeners = try ["main", "auto"].map { name in
            try Self.background("ffmpeg", ["-nostdin", "-v", "error", "-i", "\(host.base)/live/\(name)/master.m3u8", "-t", String(seconds), "-ac", "1", "-ar", "44100",
                                           "-f", "s16le", "-y", directory + "/\(name).raw"])
        }
        defer { for process in listeners { Self.kill(process) } }
        Thread.sleep(forTimeInterval: 4)
        Self.kill(main)
        Self.kill(auto)
        let away = try Self.wait(host, "main", state: "fallback", seconds: 5)
        #expect((away["show"] as? [String: Any])?["fallback"] as? String == "mount:backup", "\(away)")
        #expect((try Self.mount(host, "auto")["show"] as? [String: Any])?["fallback"] as? String == "tracks:1")
        for process in listeners { process.waitUntilExit() }
        for (name, expected) in [("main", 880.0), ("auto", 330.0)] {
            let samples = try Self.samples(directory + "/\(name).raw")
            let length = Double(samples.count) / 44_100
            #expect(length > Double(seconds) - 1, "\(name): \(length) s")
            #expect(abs(Self.frequency(samples, seconds: 0.5..<2.5) - 523) < 10, "\(name) starts on its source: \(Self.profile(samples))")
            let end = length - 4
            #expect(abs(Self.frequency(samples, seconds: end..<(end + 3)) - expected) < 12, "\(name) ends on its fallback (\(expected) Hz): \(Self.profile(samples))")
        }
    }

    @Test("the source clients and players people use: liquidsoap and ezstream as sources; mpv shows the ICY title changing, VLC plays the relay (HTTP/1.0) with its title, GStreamer and ffmpeg play the LL-HLS master and the live MPD for 60 s without a gap")
    func realClients() throws {
        let host = try Self.startHost(["VEZA_LIVE_GRACE_SECONDS": "10"])
        defer { host.stop() }
        let directory = Fixtures.directory + "/clients-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        // liquidsoap's output.icecast (SOURCE, MP3, titles by /admin/metadata): a 440 Hz sine,
        // titled at once and again 14 s in.
        let script = """
            settings.init.allow_root.set(true)
            s = insert_metadata(sine(440.))
            output.icecast(%mp3(bitrate=128), host="127.0.0.1", port=\(host.port), password="radio-pw-1", mount="/live/radio", name="Liquidsoap radio",
                           on_error=fun(e) -> begin print("ICECAST ERROR: #{e}"); shutdown(code=3); (-1.) end, s)
            thread.run(delay=1., fun() -> s.insert_metadata([("title", "First Title")]))
            thread.run(delay=14., fun() -> s.insert_metadata([("title", "Second Title")]))
            thread.run(delay=90., fun() -> shutdown())
            """
        let liquidsoap = try Self.background("liquidsoap", [script], stdout: directory + "/liquidsoap.log", stderr: directory + "/liquidsoap.err")
        defer { Self.kill(liquidsoap) }
        let state = try Self.wait(host, "radio", state: "live", seconds: 20)
        let liquidsoapAgent = (state["source"] as? [String: Any])?["userAgent"] as? String
        #expect(liquidsoapAgent?.hasPrefix("Liquidsoap") == true, "\(state)")
        // The first segment, then the players. The MPD answers 404 until every rung (Opus
        // too) has a whole segment; GStreamer gives up on a 404 at once, so wait for it.
        #expect(try host.curl(["\(host.base)/live/radio/aac-128/index.m3u8"], authenticated: false).status == 200)
        var mpdStatus = 0
        for _ in 0..<40 where mpdStatus != 200 {
            mpdStatus = try host.curl(["\(host.base)/live/radio/manifest.mpd"], authenticated: false).status
            if mpdStatus != 200 { Thread.sleep(forTimeInterval: 0.25) }
        }
        #expect(mpdStatus == 200)
        let seconds = 60
        func gstreamer(_ url: String, _ name: String) throws -> Process {
            // GST_DEBUG=1: the elements' errors in the log (gst-launch -q prints none of its own).
            try Self.background("env", ["GST_DEBUG=1", "timeout", "-k", "5", "-s", "INT", String(seconds), "gst-launch-1.0", "-q", "uridecodebin", "uri=\(url)", "!", "audioconvert", "!",
                                            "audioresample", "!", "audio/x-raw,format=S16LE,rate=44100,channels=1", "!", "filesink", "location=\(directory)/\(name).raw",
                                            "sync=true"], stderr: directory + "/\(name).log")
        }
        let gstHLS = try gstreamer("\(host.base)/live/radio/master.m3u8", "gst-hls")
        let gstDASH = try gstreamer("\(host.base)/live/radio/manifest.mpd", "gst-dash")
        // ffmpeg beside them, for the same minute.
        let ffmpegPlayers = try [("ffmpeg-hls", "master.m3u8"), ("ffmpeg-dash", "manifest.mpd")].map { name, file in
            try Self.background("ffmpeg", ["-nostdin", "-v", "error", "-i", "\(host.base)/live/radio/\(file)", "-t", String(seconds), "-ac", "1", "-ar", "44100",
                                           "-f", "s16le", "-y", "\(directory)/\(name).raw"], stderr: directory + "/\(name).log")
        }
        defer { Self.kill(gstHLS); Self.kill(gstDASH); for player in ffmpegPlayers { Self.kill(player) } }
        let mpv = try Self.background("mpv", ["--no-config", "--ytdl=no", "--no-video", "--ao=null", "--length=22", "--msg-level=all=warn,display-tags=info",
                                              "\(host.base)/live/radio"], stdout: directory + "/mpv.log", stderr: directory + "/mpv.err")
        defer { Self.kill(mpv) }
        // VLC refuses to run as root; its ICY client (icyx://) speaks HTTP/1.0.
        let vlc = try Self.background("runuser", ["-u", "nobody", "--", "env", "HOME=\(directory)", "cvlc", "--no-video", "--aout=dummy", "--run-time=8",
                                                  "--play-and-exit", "-vv", "--sout",
                                                  "#transcode{acodec=s16l,channels=1,samplerate=44100}:std{access=file,mux=raw,dst=\(directory)/vlc.raw}",
                                                  "icyx://127.0.0.1:\(host.port)/live/radio"], stderr: directory + "/vlc.log")
        defer { Self.kill(vlc) }

        // ezstream (libshout) on another mount, meanwhile: a 12 s MP3 file, its tags as the title.
        let file = try Fixtures.make("ezstream-660.mp3", source: ["-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100:duration=12"],
                                     ["-c:a", "libmp3lame", "-b:a", "128k", "-metadata", "title=Ez Title", "-metadata", "artist=Ez Artist"])
        let configuration = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ezstream>
              <servers><server><protocol>HTTP</protocol><hostname>127.0.0.1</hostname><port>\(host.port)</port><user>source</user>
                <password>aac-pw-12</password><tls>None</tls><reconnect_attempts>0</reconnect_attempts></server></servers>
              <streams><stream><mountpoint>/live/aac</mountpoint><format>MP3</format><stream_name>Ezstream test</stream_name></stream></streams>
              <intakes><intake><type>file</type><filename>\(file)</filename><stream_once>Yes</stream_once></intake></intakes>
            </ezstream>
            """
        let ezConfiguration = directory + "/ezstream.xml"
        try configuration.write(toFile: ezConfiguration, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: ezConfiguration)
        let ezstream = try Self.background("ezstream", ["-v", "-c", ezConfiguration], stdout: directory + "/ezstream.log", stderr: directory + "/ezstream.err")
        defer { Self.kill(ezstream) }
        let ez = try Self.wait(host, "aac", state: "live", seconds: 15)
        let ezAgent = (ez["source"] as? [String: Any])?["userAgent"] as? String
        #expect(ezAgent?.hasPrefix("libshout") == true, "\(ez)")
        Thread.sleep(forTimeInterval: 3)
        let ezState = try Self.mount(host, "aac")
        #expect(ezState["title"] as? String == "Ez Artist - Ez Title", "\(ezState)")
        #expect((ezState["show"] as? [String: Any])?["sourceReconnects"] as? Int == 0, "libshout's probe connection is not a reconnect: \(ezState)")
        ezstream.waitUntilExit()
        #expect(ezstream.terminationStatus == 0, "ezstream: \((try? String(contentsOfFile: directory + "/ezstream.err", encoding: .utf8)) ?? "")")

        // mpv prints each ICY title as playback reaches it.
        mpv.waitUntilExit()
        let mpvLog = ((try? String(contentsOfFile: directory + "/mpv.log", encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: directory + "/mpv.err", encoding: .utf8)) ?? "")
        #expect(mpv.terminationStatus == 0 && mpvLog.contains("icy-title: First Title") && mpvLog.contains("icy-title: Second Title"), "mpv: \(mpvLog)")
        // VLC decoded the relay and read its title.
        vlc.waitUntilExit()
        let vlcLog = (try? String(contentsOfFile: directory + "/vlc.log", encoding: .utf8)) ?? ""
        let vlcSamples = try Self.samples(directory + "/vlc.raw")
        #expect(Double(vlcSamples.count) / 44_100 > 6 && vlcLog.contains("Icy-Title=First Title"),
                "VLC: \(Double(vlcSamples.count) / 44_100) s, \(vlcLog.split(separator: "\n").filter { $0.contains("rror") || $0.contains("Icy") }.suffix(10))")
        #expect(abs(Self.frequency(vlcSamples, seconds: 1..<6) - 440) < 10)
        // GStreamer: the whole minute, minus its start-up, with no silence or jump after it.
        gstHLS.waitUntilExit()
        gstDASH.waitUntilExit()
        for player in ffmpegPlayers { player.waitUntilExit() }
        // dashdemux starts on the lowest representation and moves up after its first segment
        // (GST_DEBUG=dashdemux:5 says "Switching bitrate"); its decoder then fades in over
        // ~9 ms: a jump the player makes at a switch, not a gap in the stream. So jumps count
        // from its third segment on; silence counts from the start for both.
        for (name, startUp, jumpsAfter) in [("gst-hls", 8.0, 0.5), ("gst-dash", 12.0, 8.0), ("ffmpeg-hls", 1.0, 0.5), ("ffmpeg-dash", 1.0, 0.5)] {
            let samples = try Self.samples(directory + "/\(name).raw")
            let length = Double(samples.count) / 44_100
            let log = ((try? String(contentsOfFile: directory + "/\(name).log", encoding: .utf8)) ?? "").suffix(600)
            #expect(length > Double(seconds) - startUp, "\(name): \(length) s of \(seconds): \(log)")
            let gaps = Self.gaps(samples, after: 0.5, jumpsAfter: jumpsAfter)
            #expect(gaps.isEmpty, "\(name): gaps at \(gaps.prefix(10)) s: \(Self.profile(samples))")
            // (A player that wrote under 2 s has failed above; the range must not be empty.)
            #expect(abs(Self.frequency(samples, seconds: 1..<max(length - 1, 2)) - 440) < 10, "\(name): \(Self.profile(samples))")
        }
    }

    /// Where a steady tone has a gap after `start` seconds: a run of 10 ms or more of near
    /// silence, or (after `jumpsAfter`) a jump between samples that the tone cannot make
    /// (44.1 kHz mono).
    static func gaps(_ samples: [Int16], after start: Double, jumpsAfter: Double) -> [Double] {
        let first = Int(start * 44_100)
        guard samples.count > first + 1 else { return [] }
        let peak = samples[first...].reduce(0) { max($0, abs(Int($1))) }
        let quiet = max(peak / 50, 8)
        // A 440 Hz sine moves at most 2π·440/44100·peak per sample.
        let step = Int(3 * 2 * Double.pi * 440 / 44_100 * Double(peak)) + 200
        var found: [Double] = []
        var run = 0
        for index in (first + 1)..<samples.count {
            if abs(Int(samples[index])) <= quiet {
                run += 1
                if run == 441 { found.append(Double(index - run) / 44_100) }
            } else {
                run = 0
            }
            if Double(index) / 44_100 > jumpsAfter, abs(Int(samples[index]) - Int(samples[index - 1])) > step { found.append(Double(index) / 44_100) }
        }
        return found
    }

    @Test("a host killed mid-show: its recording up to the crash becomes a track at the next start, and the mount resumes when the source reconnects")
    func crashKeepsTheRecording() throws {
        let host = try Self.startHost(["VEZA_LIVE_RECORD": "true"])
        defer { host.stop() }
        let source = try Self.source(host, mount: "radio", password: "radio-pw-1",
                                     ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], seconds: 60)
        _ = try Self.wait(host, "radio", state: "live")
        Thread.sleep(forTimeInterval: 8)
        host.kill9()
        Self.kill(source)
        try host.start(workers: 1)
        var tracks: [[String: Any]] = []
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, tracks.isEmpty {
            let list = try host.curl(["\(host.base)/v1/tracks"])
            tracks = ((try? JSONSerialization.jsonObject(with: Data(list.body.utf8)) as? [String: Any])?["tracks"] as? [[String: Any]]) ?? []
            if tracks.isEmpty { Thread.sleep(forTimeInterval: 0.5) }
        }
        let id = try #require(tracks.first?["id"] as? String, "no track from the recording")
        let track = try host.waitForTrack(id)
        let metadata = track["metadata"] as? [String: Any] ?? [:]
        let duration = Double(metadata["sampleCount"] as? Int ?? 0) / Double(metadata["sampleRate"] as? Int ?? 1)
        #expect(track["status"] as? String == "ready" && duration > 5 && duration < 20, "\(duration) s: \(track)")
        let again = try Self.source(host, mount: "radio", password: "radio-pw-1",
                                    ["-c:a", "libmp3lame", "-b:a", "128k", "-content_type", "audio/mpeg", "-f", "mp3"], seconds: 30)
        defer { Self.kill(again) }
        _ = try Self.wait(host, "radio", state: "live")
        #expect(try host.curl(["\(Self.base(host))/aac-128/index.m3u8"], authenticated: false).status == 200)
    }

    static func base(_ host: HostProcess) -> String { "\(host.base)/live/radio" }
}
