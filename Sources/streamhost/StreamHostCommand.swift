import ArgumentParser
import Foundation
import MediaCore
import StreamHost

@main
struct StreamHostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streamhost",
        abstract: "Veza Stream: ingest, package and serve audio.",
        subcommands: [Probe.self, Decode.self, Version.self]
    )
}

/// Exit codes: 0 success, 2 usage, 3 unsupported or invalid media, 4 I/O, 5 timed out.
func exitCode(for error: MediaError) -> ExitCode {
    switch error.code {
    case .fileNotFound, .ioError: ExitCode(4)
    case .timedOut: ExitCode(5)
    default: ExitCode(3)
    }
}

func fail(_ error: MediaError) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
    return exitCode(for: error)
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

    enum Channels: String, ExpressibleByArgument, CaseIterable { case preserve, stereo, mono }

    @Argument(help: "The audio file.") var file: String
    @Option(name: .shortAndLong, help: "Where to write PCM: a path, or '-' for stdout. Omit to decode without output.")
    var output: String?
    @Option(help: "Channel handling: preserve, stereo (BS.775 downmix of surround), mono.")
    var channels: Channels = .stereo
    @Option(help: "Give up after this many seconds.") var timeLimit: Double?

    func run() throws {
        var options = DecoderOptions()
        switch channels {
        case .preserve: options.channelMode = .preserve
        case .stereo: options.channelMode = .downmixToStereo(.bs775)
        case .mono: options.channelMode = .mono(.bs775)
        }
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

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the versions of the codec libraries in use.")

    func run() throws {
        print(MediaTools.encode(LibraryVersions.current))
    }
}
