import Foundation

/// Audio files made by the real `ffmpeg` for tests, cached for the test process.
public enum Fixtures {
    /// A fresh directory for this test process.
    public static let directory: String = {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("veza-fixtures-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    private static let lock = NSLock()

    /// Tags written into every tagged fixture.
    public static let tagArguments = [
        "-metadata", "title=Fixture Tone", "-metadata", "artist=Veza Test", "-metadata", "album=Test Album",
        "-metadata", "album_artist=Various", "-metadata", "track=3/12", "-metadata", "disc=1/2",
        "-metadata", "date=2024", "-metadata", "genre=Electronic", "-metadata", "comment=made by ffmpeg",
    ]

    /// The lavfi source used by most fixtures: a distinct tone per channel plus a little noise,
    /// so that a swapped, dropped or shifted channel shows.
    public static func sourceArguments(seconds: Double = 3, rate: Int = 44100, channels: Int = 2) -> [String] {
        let layout = [1: "mono", 2: "stereo", 6: "5.1(side)"][channels] ?? "\(channels)c"
        let expressions = (0..<channels).map { c in
            "\(0.5 / Double(c + 1))*sin(2*PI*\(220 * (c + 1) + 7 * c)*t)+0.05*(random(\(c))-0.5)"
        }
        return ["-f", "lavfi", "-i", "aevalsrc=\(expressions.joined(separator: "|")):s=\(rate):d=\(seconds):c=\(layout)"]
    }

    /// Makes (once) `name` with `ffmpeg -y <source> <encode…> path` and returns its path.
    public static func make(_ name: String, source: [String]? = nil, _ encode: [String]) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let path = "\(directory)/\(name)"
        if FileManager.default.fileExists(atPath: path) { return path }
        try Subprocess.check("ffmpeg", ["-v", "error", "-y"] + (source ?? sourceArguments()) + encode + [path + ".part." + (name as NSString).pathExtension])
        try FileManager.default.moveItem(atPath: path + ".part." + (name as NSString).pathExtension, toPath: path)
        return path
    }

    /// A small PNG cover image (made by ffmpeg).
    public static func cover() throws -> String {
        try make("cover.png", source: ["-f", "lavfi", "-i", "color=c=red:s=64x48:d=1"], ["-frames:v", "1"])
    }

    /// The samples ffmpeg decodes from `path` as interleaved Float32 (`ffmpeg -f f32le`).
    public static func ffmpegPCM(_ path: String, extra: [String] = []) throws -> [Float] {
        let out = "\(directory)/pcm-\(UUID().uuidString).f32"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try Subprocess.run("ffmpeg", ["-v", "error", "-i", path] + extra + ["-map", "0:a:0", "-f", "f32le", "-"], stdoutPath: out)
        guard result.succeeded else { throw TestError.failed("ffmpeg could not decode \(path): \(result.stderr)") }
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    /// Path of an executable product built next to the test bundle (e.g. `streamhost`).
    public static func builtProduct(_ name: String) throws -> String {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        throw TestError.toolMissing(name)
    }
}
