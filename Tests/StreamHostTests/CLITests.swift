import Foundation
import MediaCore
import Testing
import TestSupport

@Suite("streamhost command line")
struct CLITests {
    @Test("probe prints the probe as JSON")
    func probeJSON() throws {
        let file = try Fixtures.make("cli.flac", Fixtures.tagArguments + ["-c:a", "flac", "-sample_fmt", "s16"])
        let result = try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["probe", file])
        let probe = try JSONDecoder().decode(MediaProbe.self, from: result.stdout)
        #expect(probe.container == "flac")
        #expect(probe.sampleCount == Int64(3 * 44100))
        #expect(probe.durationIsExact)
        #expect(probe.bitDepth == 16)
        #expect(probe.tags.title == "Fixture Tone")
        #expect(probe.tags.trackNumber == 3)
    }

    @Test("ingest --server streams files to a running host (typed client) and waits for them; a refused file exits 3 with the API's message; local ingest packages in process")
    func ingest() throws {
        let host = HostProcess(name: "ingest")
        try host.start(workers: 1)
        defer { host.stop() }
        let token = try host.mint(["--scope", "upload", "stream"])
        let good = try Fixtures.make("ingest-3.flac", source: Fixtures.sourceArguments(seconds: 3), ["-c:a", "flac"])
        let bad = Fixtures.directory + "/ingest-not-audio.txt"
        try Data(String(repeating: "not audio at all ", count: 40).utf8).write(to: URL(fileURLWithPath: bad))
        let streamhost = try Fixtures.builtProduct("streamhost")
        let remote = try Subprocess.run("env", ["-u", "http_proxy", "-u", "HTTP_PROXY", streamhost, "ingest", "--server", host.base, "--token", token, good],
                                        timeLimit: 120)
        let remoteOutput = String(decoding: remote.stdout, as: UTF8.self)
        #expect(remote.status == 0, "\(remoteOutput) \(remote.stderr)")
        #expect(remoteOutput.contains("ingest-3.flac: ready "), "\(remoteOutput)")
        let refused = try Subprocess.run("env", ["-u", "http_proxy", "-u", "HTTP_PROXY", streamhost, "ingest", "--server", host.base, "--token", token, bad],
                                         timeLimit: 60)
        let refusedOutput = String(decoding: refused.stdout, as: UTF8.self)
        #expect(refused.status == 3)
        #expect(refusedOutput.contains("refused: unsupported_media_type:"), "\(refusedOutput)")

        let data = Fixtures.directory + "/ingest-local-\(UUID().uuidString.prefix(6))"
        let local = try Subprocess.run(streamhost, ["ingest", "--data-directory", data, good, bad], timeLimit: 180)
        let localOutput = String(decoding: local.stdout, as: UTF8.self)
        #expect(local.status == 3, "one of two files refused: \(localOutput) \(local.stderr)")
        #expect(localOutput.contains("ingest-3.flac: ready"), "\(localOutput)")
        #expect(localOutput.contains("ingest-not-audio.txt: refused:"), "\(localOutput)")
    }

    @Test("probe of non-audio exits 3 with the detected type")
    func probeRefuses() throws {
        let path = Fixtures.directory + "/not-audio.pdf"
        try Data("%PDF-1.7\n".utf8).write(to: URL(fileURLWithPath: path))
        let result = try Subprocess.run(try Fixtures.builtProduct("streamhost"), ["probe", path])
        #expect(result.status == 3)
        #expect(result.stderr == "error: PDF document\n")
        let missing = try Subprocess.run(try Fixtures.builtProduct("streamhost"), ["probe", "/nonexistent.mp3"])
        #expect(missing.status == 4)
    }

    @Test("decode writes the same PCM as ffmpeg -f f32le")
    func decodeToFile() throws {
        let file = try Fixtures.make("cli.ogg", ["-c:a", "libvorbis"])
        let out = Fixtures.directory + "/cli-decode.f32"
        let result = try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["decode", file, "--channels", "preserve", "-o", out])
        let summary = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]
        #expect((summary?["report"] as? [String: Any])?["framesDecoded"] as? Int == 3 * 44100)
        let ours = try Data(contentsOf: URL(fileURLWithPath: out))
        let theirs = try Fixtures.ffmpegPCM(file)
        #expect(ours.count == theirs.count * 4)
    }

    /// Acceptance (issue 2): a 60-minute stereo 44.1 kHz FLAC decodes with peak RSS under 64 MiB.
    /// The child's peak RSS comes from wait4(2); about 48 MiB of it is the cost of mapping
    /// libavcodec and its dependencies (`ffmpeg -version` alone peaks at the same figure).
    @Test("a 60-minute FLAC decodes in bounded memory", .timeLimit(.minutes(5)))
    func longFileMemory() throws {
        let file = try Fixtures.make("sixty-minutes.flac", source: Fixtures.sourceArguments(seconds: 3600),
                                     ["-c:a", "flac", "-sample_fmt", "s16", "-compression_level", "0"])
        let result = try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["decode", file])
        let summary = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]
        #expect((summary?["report"] as? [String: Any])?["framesDecoded"] as? Int == 3600 * 44100)
        let peak = try #require(summary?["peakResidentBytes"] as? Int)
        #expect(peak < 64 << 20, "peak RSS \(Double(peak) / 1048576) MiB")
        // Bounded independently of length: a 3-second file peaks within 4 MiB of the hour.
        let short = try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["decode", try Fixtures.make("cli.flac", Fixtures.tagArguments + ["-c:a", "flac", "-sample_fmt", "s16"])])
        let shortPeak = try #require((try JSONSerialization.jsonObject(with: short.stdout) as? [String: Any])?["peakResidentBytes"] as? Int)
        #expect(peak - shortPeak < 4 << 20, "hour \(peak >> 20) MiB vs 3 s \(shortPeak >> 20) MiB")
        print("60-minute FLAC: peak RSS \(Double(peak) / 1048576) MiB (3-second file: \(Double(shortPeak) / 1048576) MiB), \(result.seconds) s")
    }
}

@Suite("streamhost loudness and waveform")
struct AnalysisCLITests {
    @Test("loudness --json agrees with ffmpeg's ebur128 filter")
    func loudness() throws {
        let file = try Fixtures.make("loud.flac", source: Fixtures.sourceArguments(seconds: 12), ["-c:a", "flac", "-sample_fmt", "s16"])
        let result = try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["loudness", file, "--json"])
        let report = try JSONDecoder().decode(LoudnessReport.self, from: result.stdout)
        let ffmpeg = try Subprocess.run("ffmpeg", ["-hide_banner", "-nostats", "-i", file, "-af", "ebur128=peak=true", "-f", "null", "-"])
        let summary = ffmpeg.stderr.components(separatedBy: "Summary:").last ?? ""
        func value(_ label: String) -> Double? {
            summary.components(separatedBy: "\n").first { $0.contains(label) }?
                .split(separator: " ").compactMap { Double($0) }.first
        }
        let integrated = try #require(value("I:"))
        let peak = try #require(value("Peak:"))
        #expect(abs(report.integratedLoudness - integrated) <= 0.1)
        #expect(abs(report.truePeak - peak) <= 0.2)
        let text = try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["loudness", file])
        #expect(String(decoding: text.stdout, as: UTF8.self).contains("Integrated loudness:"))
    }

    @Test("waveform writes JSON and .dat at the requested resolution")
    func waveform() throws {
        let file = try Fixtures.make("wave.wav", ["-c:a", "pcm_s16le"])
        let json = Fixtures.directory + "/peaks.json"
        try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["waveform", file, "-o", json, "--pixels-per-second", "100"])
        let object = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        #expect(object?["samples_per_pixel"] as? Int == 441)
        #expect(object?["length"] as? Int == 300)
        #expect((object?["data"] as? [Int])?.count == 600)
        let dat = Fixtures.directory + "/peaks.dat"
        try Subprocess.check(try Fixtures.builtProduct("streamhost"), ["waveform", file, "-o", dat, "--samples-per-pixel", "512", "--bits", "16"])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dat))
        #expect(bytes.count == 24 + 259 * 2 * 2)
        let bad = try Subprocess.run(try Fixtures.builtProduct("streamhost"), ["waveform", file, "-o", dat, "--bits", "12"])
        #expect(bad.status == 64)
    }
}
