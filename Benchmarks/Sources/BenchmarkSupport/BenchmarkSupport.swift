import Foundation

/// Where benchmark inputs are made once (with the real ffmpeg) and kept between runs.
public let benchmarkInputDirectory: String = {
    let path = NSTemporaryDirectory() + "veza-bench-inputs"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

/// Runs `tool` with stdout and stderr to /dev/null and waits; returns its exit status, its
/// peak RSS in KiB and its CPU time (user + system) in milliseconds, from wait4(2), so a child
/// is measured on its own.
public func spawn(_ tool: String, _ arguments: [String]) -> (status: Int32, peakKiB: Int, cpuMilliseconds: Int) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([tool] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    guard posix_spawn(&pid, tool, &actions, nil, argv, environ) == 0 else {
        fatalError("cannot run \(tool) (ffmpeg is installed by scripts/install-deps.sh)")
    }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    func milliseconds(_ t: timeval) -> Int { Int(t.tv_sec) * 1000 + Int(t.tv_usec) / 1000 }
    return ((status >> 8) & 0xFF, usage.ru_maxrss, milliseconds(usage.ru_utime) + milliseconds(usage.ru_stime))
}

/// Runs `/usr/bin/ffmpeg` with `arguments`; returns its exit status.
@discardableResult
public func ffmpeg(_ arguments: [String]) -> Int32 { spawn("/usr/bin/ffmpeg", arguments).status }
