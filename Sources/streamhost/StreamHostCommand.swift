import ArgumentParser
import Foundation
import MediaCore
import StreamHost

@main
struct StreamHostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streamhost",
        abstract: "Veza Stream: ingest, package and serve audio.",
        subcommands: [Serve.self, Worker.self, Ingest.self, Token.self, Sign.self, Watermark.self, Probe.self, Decode.self, Loudness.self, Waveform.self, Package.self, Version.self]
    )
}

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print what a media file is, as JSON.")

    @Argument(help: "The audio file.") var file: String

    func run() throws {
        do {
            print(try MediaTools.probeJSON(path: file))
        } catch {
            throw fail(error)
        }
    }
}

struct Decode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode a file to raw interleaved Float32 little-endian PCM and report on it.",
        discussion: "Writes PCM to --output ('-' for stdout) and a JSON report to stderr, or to stdout when no PCM goes there."
    )

    @Argument(help: "The audio file.") var file: String
    @Option(name: .shortAndLong, help: "Where to write PCM: a path, or '-' for stdout. Omit to decode without output.")
    var output: String?
    @Option(help: "Channel handling: preserve, stereo (BS.775 downmix of surround), mono.")
    var channels: Channels = .stereo
    @Option(help: "Give up after this many seconds.") var timeLimit: Double?

    func run() throws {
        var options = DecoderOptions(channelMode: channels.mode)
        options.timeLimit = timeLimit.map { .milliseconds(Int64($0 * 1000)) }
        var fd: Int32? = nil
        if let output {
            if output == "-" {
                fd = 1
            } else {
                let opened = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                guard opened >= 0 else { throw fail(MediaError(.ioError, "cannot create \(output)")) }
                fd = opened
            }
        }
        defer { if let fd, fd > 2 { close(fd) } }
        let summary: MediaTools.DecodeSummary
        do {
            summary = try MediaTools.decode(path: file, options: options, writeTo: fd)
        } catch {
            // The report is JSON in every case, so scripts can read the failure and the memory used.
            let failure = MediaTools.DecodeFailure(code: error.code.rawValue, message: error.message,
                                                   peakResidentBytes: ProcessStatistics.peakResidentBytes)
            let json = MediaTools.encode(failure) + "\n"
            FileHandle(fileDescriptor: fd == 1 ? 2 : 1).write(Data(json.utf8))
            throw fail(error)
        }
        let json = MediaTools.encode(summary) + "\n"
        if fd == 1 {
            FileHandle.standardError.write(Data(json.utf8))
        } else {
            FileHandle.standardOutput.write(Data(json.utf8))
        }
        if let error = summary.error {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(3)
        }
    }
}

enum Channels: String, ExpressibleByArgument, CaseIterable {
    case preserve, stereo, mono

    var mode: ChannelMode {
        switch self {
        case .preserve: .preserve
        case .stereo: .downmixToStereo(.bs775)
        case .mono: .mono(.bs775)
        }
    }
}

struct Loudness: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure loudness per EBU R 128: integrated, range, true peak, sample peak."
    )

    @Argument(help: "The audio file.") var file: String
    @Flag(help: "Print JSON instead of text.") var json = false
    @Option(help: "Channels measured: preserve (default, BS.1770 weights), stereo, mono.")
    var channels: Channels = .preserve

    func run() throws {
        do {
            let result = try MediaAnalysis.analyze(path: file, decoder: DecoderOptions(channelMode: channels.mode))
            print(json ? MediaTools.encode(result.loudness) : MediaTools.describe(result.loudness))
        } catch {
            throw fail(error)
        }
    }
}

struct Waveform: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compute min/max waveform peaks in audiowaveform's JSON (or .dat) format.",
        discussion: "With several --samples-per-pixel values, one file per zoom level is written, named OUTPUT with -SPP before the extension."
    )

    @Argument(help: "The audio file.") var file: String
    @Option(name: .shortAndLong, help: "Output path (.json or .dat).") var output: String
    @Option(help: "Pixels per second of audio (sets samples per pixel from the sample rate).") var pixelsPerSecond: Int?
    @Option(parsing: .upToNextOption, help: "Samples per pixel; several values make several zoom levels.")
    var samplesPerPixel: [Int] = []
    @Option(help: "8 or 16.") var bits: Int = 8
    @Flag(help: "Keep channels apart instead of mixing them.") var splitChannels = false

    func validate() throws {
        guard bits == 8 || bits == 16 else { throw ValidationError("--bits must be 8 or 16") }
        if pixelsPerSecond != nil && !samplesPerPixel.isEmpty {
            throw ValidationError("give --pixels-per-second or --samples-per-pixel, not both")
        }
        if let pixelsPerSecond, pixelsPerSecond <= 0 { throw ValidationError("--pixels-per-second must be positive") }
    }

    func run() throws {
        do {
            let probe = try MediaProbe.probe(fileAt: file)
            let levels = samplesPerPixel.isEmpty
                ? [WaveformBuilder.samplesPerPixel(pixelsPerSecond: pixelsPerSecond ?? 100, sampleRate: probe.sampleRate)]
                : samplesPerPixel
            let options = MediaAnalysis.WaveformOptions(samplesPerPixel: levels, bits: bits == 8 ? .eight : .sixteen, splitChannels: splitChannels)
            let result = try MediaAnalysis.analyze(path: file, decoder: DecoderOptions(channelMode: .preserve), waveform: options)
            for waveform in result.waveforms {
                var path = output
                if result.waveforms.count > 1 {
                    let ext = (output as NSString).pathExtension
                    path = (output as NSString).deletingPathExtension + "-\(waveform.samplesPerPixel)" + (ext.isEmpty ? "" : "." + ext)
                }
                try MediaTools.writeWaveform(waveform, to: path)
                FileHandle.standardError.write(Data("wrote \(path): \(waveform.length) pixels at \(waveform.samplesPerPixel) samples per pixel\n".utf8))
            }
        } catch {
            throw fail(error)
        }
    }
}

struct Package: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Package a file offline: every rendition of the ladder, CMAF segments, HLS and DASH manifests, progressive files, waveforms."
    )

    @Argument(help: "The audio file.") var file: String
    @Option(help: "Output directory.") var out: String
    @Option(help: "Ladder, e.g. aac-256,aac-128,opus-96,mp3-320,flac (default: the full default ladder).")
    var ladder: String?
    @Option(help: "Target segment duration in seconds.") var segmentDuration: Double = 6
    @Option(help: "Target loudness in LUFS.") var target: Double = -14
    @Option(help: "Normalisation policy: off, reduce-only, full.") var normalization: String = "full"
    @Flag(help: "CMAF segments only: no progressive files (renditions that have only a progressive file are left out).")
    var cmafOnly = false
    @Option(help: "Forensic A/B watermarking with the key in this file (base64 of 32 bytes; created, mode 0600, when missing): each AAC and Opus rendition is packaged in two variants of 1.92-s segments; progressive, MP3 and FLAC outputs are left out.")
    var watermarkKey: String?

    func run() async throws {
        var configuration = LadderConfiguration()
        do {
            if let ladder { configuration.renditions = try LadderRendition.parse(ladder) }
        } catch {
            throw ValidationError(error.message)
        }
        if cmafOnly || watermarkKey != nil {
            configuration.renditions = configuration.renditions.compactMap { rendition in
                guard rendition.outputs.contains(.cmaf), watermarkKey == nil || [.aac, .opus].contains(rendition.settings.codec) else { return nil }
                var rendition = rendition
                rendition.outputs = .cmaf
                return rendition
            }
            guard !configuration.renditions.isEmpty else { throw ValidationError("the ladder has no rendition to package that way") }
        }
        if let watermarkKey {
            do {
                let bytes = try loadSecretKey(configured: nil, file: nil, defaultPath: watermarkKey, names: ("--watermark-key", "the watermark key file"))
                configuration.watermark = WatermarkPackaging(key: WatermarkKey(bytes: bytes)!)
            } catch {
                throw ValidationError(error.message)
            }
        }
        guard let policy = NormalizationPolicy(rawValue: normalization) else {
            throw ValidationError("--normalization must be off, reduce-only or full")
        }
        guard segmentDuration >= 1, segmentDuration <= 30 else { throw ValidationError("--segment-duration must be within 1…30 s") }
        configuration.segmentDuration = segmentDuration
        configuration.normalization = NormalizationConfiguration(targetLoudness: target, ceiling: -1, policy: policy)
        // Progress on standard error: standard output carries the report.
        let bar = ProgressDisplay(labels: [(file as NSString).lastPathComponent], output: .standardError)
        do {
            let manifest = try await OfflinePackager.package(file: file, to: out, configuration: configuration) {
                bar.update(0, fraction: $0, status: "packaging")
            }
            bar.update(0, fraction: 1, status: "done", done: true)
            print("Packaged \(manifest.renditions.count) renditions, \(String(format: "%.2f", manifest.durationSeconds)) s, into \(out)")
            print(String(format: "Loudness %.1f LUFS → %.1f LUFS (gain %+.1f dB), true peak %.1f dBTP",
                         manifest.loudness.integratedLoudness, manifest.normalizedLoudness.integratedLoudness,
                         manifest.gainDB, manifest.normalizedLoudness.truePeak))
            for r in manifest.renditions {
                let size = (r.segments + (r.variantSegments ?? [])).reduce(0) { $0 + $1.byteSize } + (r.progressiveByteSize ?? 0)
                print("  \(r.id.padding(toLength: 9, withPad: " ", startingAt: 0)) \(r.codecs.padding(toLength: 10, withPad: " ", startingAt: 0)) \(r.segments.count) segments, \(size / 1024) KiB")
            }
        } catch {
            bar.update(0, fraction: 0, status: "failed", done: true)
            throw fail(error)
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of the codec libraries in use.")

    func run() throws {
        print(MediaTools.encode(LibraryVersions.current))
    }
}
