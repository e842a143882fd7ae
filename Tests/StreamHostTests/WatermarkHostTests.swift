import Foundation
import Testing
import TestSupport

/// Runs `tool` without the environment's proxy (players must reach 127.0.0.1 directly).
private func direct(_ tool: String, _ arguments: [String], timeLimit: Double = 300) throws -> ProcessResult {
    try Subprocess.run("env", ["-u", "http_proxy", "-u", "https_proxy", "-u", "HTTP_PROXY", "-u", "HTTPS_PROXY", "-u", "all_proxy",
                               try Subprocess.locate(tool)] + arguments, timeLimit: timeLimit)
}

private func json(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
}

/// Forensic A/B watermarking in the host (issue 23): a watermarked upload, per-session playlists,
/// and `streamhost watermark detect` naming the session of a copy leaked through a real player.
@Suite("Forensic watermarking in the host", .serialized)
struct WatermarkHostTests {
    /// 150 s of real music, as FLAC.
    static func music() throws -> String {
        let directory = "/usr/share/games/singularity/music"
        let tracks = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".ogg") }.sorted()
        let track = try #require(tracks.dropFirst().first { duration(directory + "/" + $0) >= 200 }, "singularity-music is installed")
        return try Fixtures.make("watermark-host-150.flac", source: ["-ss", "20", "-t", "150", "-i", directory + "/" + track], ["-c:a", "flac"])
    }

    static func duration(_ path: String) -> Double {
        guard let result = try? Subprocess.run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path]), result.succeeded else { return 0 }
        return Double(String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// `streamhost watermark detect` on the host's data directory; its JSON report.
    static func detect(_ host: HostProcess, _ file: String, track: String?) throws -> [String: Any] {
        let variables = host.environment.map { "\($0.key)=\($0.value)" }
        let result = try Subprocess.run("env", variables + [try Fixtures.builtProduct("streamhost"), "watermark", "detect", "--data-directory",
                                                            host.dataDirectory, "--json", file] + (track.map { ["--track", $0] } ?? []),
                                        timeLimit: 300)
        try #require(result.succeeded, "detect failed: \(result.stderr)")
        return json(String(decoding: result.stdout, as: UTF8.self))
    }

    @Test("a track uploaded with ?watermark=on has no progressive files; each session's media playlists and MPD name the same keyed variant URIs of its own (ffmpeg plays both); a copy of one session's HLS played by ffmpeg, cut and re-encoded to MP3 128k, names that session and its subject with streamhost watermark detect, and the clear source names nobody")
    func leakNamesSession() throws {
        let host = HostProcess(name: "watermark")
        try host.start()
        defer { host.stop() }
        let source = try Self.music()
        let upload = try host.curl(["-X", "POST", "-H", "Content-Type: audio/flac", "--data-binary", "@" + source, host.base + "/v1/tracks?watermark=on"])
        let id = try #require(json(upload.body)["id"] as? String, "\(upload.status) \(upload.body)")
        let track = try host.waitForTrack(id)
        try #require(track["status"] as? String == "ready", "\(track)")
        #expect(track["watermarked"] as? Bool == true)
        let renditions = (track["renditions"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(!renditions.isEmpty && renditions.allSatisfy { $0.hasPrefix("aac-") || $0.hasPrefix("opus-") }, "\(renditions)")
        #expect(try host.curl(["-X", "POST", "--data-binary", "@" + source, host.base + "/v1/tracks?watermark=maybe"]).status == 400)

        // Sessions of three listeners (a platform's backend naming its users).
        func session(_ listener: String) throws -> [String: Any] {
            let reply = try host.curl([host.base + "/v1/tracks/\(id)?listener=\(listener)"])
            return try #require(json(reply.body)["playback"] as? [String: Any], "\(reply.body)")
        }
        let alice = try session("alice"), bob = try session("bob")
        _ = try session("carol")
        #expect(alice["dash"] != nil && (alice["progressive"] as? [Any] ?? []).isEmpty, "\(alice)")
        let aliceMaster = try #require(alice["hls"] as? String)
        let bobMaster = try #require(bob["hls"] as? String)
        func mediaPlaylist(_ master: String, _ rendition: String) throws -> String {
            let url = host.base + master.replacingOccurrences(of: "master.m3u8", with: "\(rendition).m3u8")
            let reply = try host.curl([url], authenticated: false)
            #expect(reply.status == 200, "\(reply.status) \(reply.body)")
            return reply.body
        }
        let rendition = renditions[0]
        let alicePlaylist = try mediaPlaylist(aliceMaster, rendition)
        let bobPlaylist = try mediaPlaylist(bobMaster, rendition)
        func segmentFiles(_ playlist: String) -> [String] {
            playlist.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
                line.split(separator: "?").first?.split(separator: "/").last.map(String.init)
            }
        }
        let aliceSegments = segmentFiles(alicePlaylist), bobSegments = segmentFiles(bobPlaylist)
        #expect(aliceSegments.count >= 75 && aliceSegments.count == bobSegments.count)
        #expect(aliceSegments.allSatisfy { $0.range(of: #"^seg-\d+-[0-9a-f]{16}\.m4s$"#, options: .regularExpression) != nil }, "\(aliceSegments.prefix(3))")
        let differing = zip(aliceSegments, bobSegments).filter { $0 != $1 }.count
        #expect(differing > aliceSegments.count / 4 && differing < aliceSegments.count * 3 / 4, "\(differing) of \(aliceSegments.count) differ")
        #expect(try mediaPlaylist(aliceMaster, rendition) == alicePlaylist, "a session's playlist is stable")
        // The session's MPD names the same variants (a SegmentList of SegmentURL@media), and
        // ffmpeg plays it to the end.
        let aliceDash = try #require(alice["dash"] as? String)
        let mpd = try host.curl([host.base + aliceDash], authenticated: false)
        #expect(mpd.status == 200 && mpd.body.contains("<SegmentURL media="), "\(mpd.status) \(mpd.body.prefix(300))")
        let dashFiles = mpd.body.components(separatedBy: "<SegmentURL media=\"").dropFirst().compactMap { item -> String? in
            let url = item.prefix { $0 != "\"" }
            guard url.contains("/cmaf/\(rendition)/") else { return nil }
            return url.split(separator: "?").first?.split(separator: "/").last.map(String.init)
        }
        #expect(dashFiles == aliceSegments, "the MPD and the media playlist give the session the same variants")
        let dashPCM = Fixtures.directory + "/watermark-dash-\(UUID().uuidString).wav"
        defer { try? FileManager.default.removeItem(atPath: dashPCM) }
        let dashPlay = try direct("ffmpeg", ["-v", "error", "-nostdin", "-i", host.base + aliceDash, "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-y", dashPCM])
        #expect(dashPlay.succeeded, "\(dashPlay.stderr)")
        #expect(abs(Self.duration(dashPCM) - 150) < 0.2, "ffmpeg played \(Self.duration(dashPCM)) s of the MPD")
        // Without a playback session there is nothing to trace: no media playlist, no MPD.
        let publicMPD = try host.curl([host.base + "/dash/\(id)/manifest.mpd"], authenticated: false)
        #expect(publicMPD.status == 401, "\(publicMPD.status)")

        // Alice's copy: ffmpeg plays her HLS, the pirate cuts 2 minutes from 17 s and makes an MP3.
        let played = Fixtures.directory + "/watermark-played-\(UUID().uuidString).wav"
        let leak = Fixtures.directory + "/watermark-leak-\(UUID().uuidString).mp3"
        defer { for file in [played, leak] { try? FileManager.default.removeItem(atPath: file) } }
        let play = try direct("ffmpeg", ["-v", "error", "-nostdin", "-i", host.base + aliceMaster, "-map", "0:a:0", "-ar", "44100", "-y", played])
        try #require(play.succeeded, "\(play.stderr)")
        let encode = try Subprocess.run("ffmpeg", ["-v", "error", "-nostdin", "-ss", "17", "-t", "120", "-i", played, "-c:a", "libmp3lame", "-b:a", "128k", "-y", leak])
        try #require(encode.succeeded, "\(encode.stderr)")

        let report = try Self.detect(host, leak, track: nil)
        let accused = report["accused"] as? [[String: Any]] ?? []
        #expect(report["track"] as? String == id, "\(report)")
        #expect(accused.count == 1 && accused.first?["subject"] as? String == "alice", "\(report)")
        let bound = try #require(accused.first?["falseAccusationChance"] as? Double)
        #expect(bound <= 1e-6)
        #expect((report["segmentsRead"] as? Int ?? 0) >= 55, "\(report)")
        #expect(abs((report["offsetSeconds"] as? Double ?? 0) - 17) < 0.05, "\(report)")

        // The clear source, cut and encoded the same way: nobody is named.
        let unmarked = Fixtures.directory + "/watermark-unmarked-\(UUID().uuidString).mp3"
        defer { try? FileManager.default.removeItem(atPath: unmarked) }
        try #require(try Subprocess.run("ffmpeg", ["-v", "error", "-nostdin", "-ss", "17", "-t", "120", "-i", source, "-c:a", "libmp3lame", "-b:a", "128k", "-y", unmarked]).succeeded)
        let clear = try Self.detect(host, unmarked, track: id)
        #expect((clear["accused"] as? [Any] ?? []).isEmpty, "\(clear)")
        #expect(clear["track"] as? String == id)
    }
}
