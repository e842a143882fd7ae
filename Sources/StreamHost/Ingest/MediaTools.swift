public import MediaCore
import Foundation

/// The offline media commands of `streamhost` (`probe`, `decode`), as library calls so that
/// scripts and other hosts can run them without the executable.
public enum MediaTools {
    /// The probe of `path` as pretty-printed JSON with sorted keys.
    public static func probeJSON(path: String) throws(MediaError) -> String {
        let probe = try MediaProbe.probe(fileAt: path)
        return encode(probe)
    }

    /// Result of ``decode(path:options:writeTo:)``.
    public struct DecodeSummary: Sendable, Codable, Hashable {
        public var probe: MediaProbe
        public var report: DecodeReport
        public var channelCount: Int
        public var sampleRate: Int
        /// Wall time of the decode in seconds.
        public var seconds: Double
        /// Peak resident set size of this process so far, in bytes.
        public var peakResidentBytes: Int
        /// Error that ended the decode early, if any.
        public var error: String?
    }

    /// The report of a decode that could not start.
    public struct DecodeFailure: Sendable, Codable, Hashable {
        public var code: String
        public var message: String
        public var peakResidentBytes: Int
        public init(code: String, message: String, peakResidentBytes: Int) {
            self.code = code
            self.message = message
            self.peakResidentBytes = peakResidentBytes
        }
    }

    /// Decodes `path`, optionally writing raw interleaved Float32 little-endian PCM to
    /// `output` (a file descriptor, e.g. 1 for stdout), and summarises the run.
    ///
    /// A failure after decoding began still returns a summary (with ``DecodeSummary/error``),
    /// since the samples before it were delivered.
    public static func decode(path: String, options: DecoderOptions = DecoderOptions(), writeTo output: Int32? = nil) throws(MediaError) -> DecodeSummary {
        let start = ContinuousClock.now
        let decoder = try AudioDecoder(path: path, options: options)
        var failure: String?
        do throws(MediaError) {
            while let block = try decoder.read() {
                if let output {
                    let errorNumber = block.samples.withUnsafeBytes { raw in writeAll(raw, to: output) }
                    if errorNumber != 0 {
                        throw MediaError(.ioError, "writing PCM failed: \(String(cString: strerror(errorNumber)))")
                    }
                }
            }
        } catch {
            failure = error.description
        }
        let elapsed = ContinuousClock.now - start
        return DecodeSummary(
            probe: decoder.probe,
            report: decoder.report,
            channelCount: decoder.channelCount,
            sampleRate: decoder.sampleRate,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18,
            peakResidentBytes: ProcessStatistics.peakResidentBytes,
            error: failure
        )
    }

    /// The loudness report as text lines, like the summary of `ffmpeg -af ebur128`.
    public static func describe(_ report: LoudnessReport) -> String {
        func level(_ v: Double, _ unit: String) -> String {
            v.isFinite ? String(format: "%7.1f %@", v, unit) : "   -inf \(unit)"
        }
        return """
        Integrated loudness: \(level(report.integratedLoudness, "LUFS"))
        Loudness range:      \(level(report.loudnessRange, "LU"))
        True peak:           \(level(report.truePeak, "dBTP"))
        Sample peak:         \(level(report.samplePeak, "dBFS"))
        Max momentary:       \(level(report.maximumMomentaryLoudness, "LUFS"))
        Max short-term:      \(level(report.maximumShortTermLoudness, "LUFS"))
        """
    }

    /// Writes `waveform` to `path`: audiowaveform binary when the path ends in `.dat`, JSON otherwise.
    public static func writeWaveform(_ waveform: Waveform, to path: String) throws(MediaError) {
        let data = path.hasSuffix(".dat") ? Data(waveform.dat()) : Data(waveform.json().utf8)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw MediaError(.ioError, "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// JSON text of any encodable value, pretty-printed with sorted keys.
    public static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes every byte; returns 0 or the errno that stopped it.
    private static func writeAll(_ bytes: UnsafeRawBufferPointer, to fd: Int32) -> Int32 {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return 0
    }
}

/// Figures about this process, for reports and tests.
public enum ProcessStatistics {
    /// Peak resident set size of this process's address space, in bytes.
    ///
    /// On Linux this is `VmHWM` from `/proc/self/status`: unlike `getrusage`'s `ru_maxrss`, it
    /// does not include the parent's memory that a `vfork`-style spawn (glibc's `posix_spawn`)
    /// leaves in the high-water mark at `exec`.
    public static var peakResidentBytes: Int {
        #if os(Linux)
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") {
            return kilobytes * 1024
        }
        #endif
        return maximumResidentBytesFromRusage
    }

    /// `getrusage` `ru_maxrss` in bytes (see ``peakResidentBytes`` for why it can overstate).
    public static var maximumResidentBytesFromRusage: Int {
        var usage = rusage()
        #if os(Linux)
        let who = __rusage_who_t(RUSAGE_SELF.rawValue)
        #else
        let who = RUSAGE_SELF
        #endif
        guard getrusage(who, &usage) == 0 else { return 0 }
        #if os(Linux)
        return usage.ru_maxrss * 1024  // kilobytes on Linux
        #else
        return usage.ru_maxrss  // bytes on Darwin
        #endif
    }
}
