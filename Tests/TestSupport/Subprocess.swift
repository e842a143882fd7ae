public import Foundation

/// Runs a program and waits for it with `posix_spawn` + `wait4`, so that a test sees the
/// child's exit status, the signal that killed it (a crash) and its wall time. (Its `ru_maxrss`
/// is not reported: after a vfork-style spawn it includes this test process's own memory.)
/// Output goes to temporary files (no pipe can fill up and dead-lock).
public struct ProcessResult: Sendable {
    public var status: Int32?
    /// The signal that ended the process (e.g. 11 for a segfault), if one did.
    public var signal: Int32?
    public var stdout: Data
    public var stderr: String
    public var seconds: Double
    /// True when the process had to be killed at the time limit.
    public var timedOut: Bool

    public var succeeded: Bool { status == 0 }
}

public enum TestError: Error, CustomStringConvertible {
    case toolMissing(String)
    case failed(String)
    public var description: String {
        switch self {
        case .toolMissing(let tool): "required tool '\(tool)' is not installed (run scripts/install-deps.sh)"
        case .failed(let message): message
        }
    }
}

public enum Subprocess {
    /// Finds `tool` on PATH (or takes an absolute path).
    public static func locate(_ tool: String) throws -> String {
        if tool.hasPrefix("/") { return tool }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestError.toolMissing(tool)
    }

    /// Runs `tool` with `arguments`; stdout is captured (or sent to `stdoutPath`).
    public static func run(_ tool: String, _ arguments: [String], stdoutPath: String? = nil, timeLimit: Double = 300) throws -> ProcessResult {
        let executable = try locate(tool)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("veza-run-\(UUID().uuidString)")
        let outPath = stdoutPath ?? scratch.path + ".out"
        let errPath = scratch.path + ".err"
        defer {
            if stdoutPath == nil { try? FileManager.default.removeItem(atPath: outPath) }
            try? FileManager.default.removeItem(atPath: errPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let start = Date()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw TestError.failed("cannot start \(executable): errno \(spawned)") }
        var status: Int32 = 0
        var usage = rusage()
        var timedOut = false
        while true {
            let waited = wait4(pid, &status, WNOHANG, &usage)
            if waited == pid { break }
            if waited < 0 && errno != EINTR { throw TestError.failed("wait4 failed: errno \(errno)") }
            if Date().timeIntervalSince(start) > timeLimit && !timedOut {
                kill(pid, SIGKILL)
                timedOut = true
            }
            usleep(2_000)
        }
        let seconds = Date().timeIntervalSince(start)
        let termSignal = status & 0x7F
        let exited = termSignal == 0
        return ProcessResult(
            status: exited ? (status >> 8) & 0xFF : nil,
            signal: exited ? nil : termSignal,
            stdout: (try? Data(contentsOf: URL(fileURLWithPath: outPath))) ?? Data(),
            stderr: String(decoding: (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data(), as: UTF8.self),
            seconds: seconds,
            timedOut: timedOut
        )
    }

    /// Runs and throws unless the tool exits 0.
    @discardableResult
    public static func check(_ tool: String, _ arguments: [String], timeLimit: Double = 300) throws -> ProcessResult {
        let result = try run(tool, arguments, timeLimit: timeLimit)
        guard result.succeeded else {
            throw TestError.failed("\(tool) \(arguments.joined(separator: " ")) failed (status \(String(describing: result.status)), signal \(String(describing: result.signal))): \(result.stderr.suffix(2000))")
        }
        return result
    }
}
