import Foundation
import MediaCore
import Synchronization
import Testing
import TestSupport

/// Keeps every file a packaging run writes.
private final class Collected: PackageSink {
    let files = Mutex<[String: [UInt8]]>([:])
    func write(_ bytes: [UInt8], to relativePath: String) async throws(MediaError) { files.withLock { $0[relativePath] = bytes } }
}

/// The four-character codes of the boxes in `bytes`, depth first, descending into the containers
/// this test looks inside.
private func boxTypes(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) -> [String] {
    let containers: [String: Int] = ["moov": 0, "trak": 0, "mdia": 0, "minf": 0, "stbl": 0, "moof": 0, "traf": 0, "sinf": 0, "schi": 0,
                                     "stsd": 8, "enca": 28]
    var types: [String] = []
    var offset = start
    let limit = end ?? bytes.count
    while offset + 8 <= limit {
        let size = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
        guard size >= 8, offset + size <= limit else { break }
        let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
        types.append(type)
        if let skip = containers[type] { types += boxTypes(bytes, from: offset + 8 + skip, to: offset + size) }
        offset += size
    }
    return types
}

/// `path` piped into ffmpeg (`-f mp4 -i pipe:0`, with `-decryption_key` when `key` is given),
/// decoded to 48 kHz stereo s16.
func pipedDecode(_ path: String, key: [UInt8]?) throws -> (pcm: Data?, stderr: String) {
    let out = path + ".raw"
    defer { try? FileManager.default.removeItem(atPath: out) }
    let keyArgument = key.map { "-decryption_key " + $0.map { String(format: "%02x", $0) }.joined() } ?? ""
    let result = try Subprocess.run("sh", ["-c", "ffmpeg -v error -nostdin \(keyArgument) -f mp4 -i pipe:0 -ac 2 -ar 48000 -f s16le -y '\(out)' < '\(path)'"])
    return (result.succeeded ? try? Data(contentsOf: URL(fileURLWithPath: out)) : nil, result.stderr)
}

@Suite("Common Encryption (cenc, cbcs) in the CMAF writer", .serialized)
struct CommonEncryptionTests {
    /// Packages a 10 s source clear and with `protection`; returns both runs' files.
    static func packageBoth(_ protection: SegmentProtection) async throws -> (clear: [String: [UInt8]], protected: [String: [UInt8]]) {
        let source = try Fixtures.make("cenc-10.flac", source: Fixtures.sourceArguments(seconds: 10), ["-c:a", "flac"])
        var configuration = LadderConfiguration()
        configuration.renditions = try LadderRendition.parse("aac-128,opus-96,flac")
        let clear = Collected()
        _ = try await LadderPackager.package(source: source, configuration: configuration, sink: clear)
        configuration.protection = protection
        let protected = Collected()
        _ = try await LadderPackager.package(source: source, configuration: configuration, sink: protected)
        return (clear.files.withLock { $0 }, protected.files.withLock { $0 })
    }

    /// `init.mp4` and every segment of `rendition`, in order, as one fragmented MP4 file.
    static func fragmentedFile(_ files: [String: [UInt8]], _ rendition: String) throws -> String {
        var bytes = try #require(files["cmaf/\(rendition)/init.mp4"])
        var number = 1
        while let segment = files["cmaf/\(rendition)/seg-\(number).m4s"] {
            bytes += segment
            number += 1
        }
        #expect(number > 2, "\(rendition) has segments")
        let path = Fixtures.directory + "/cenc-\(UUID().uuidString).mp4"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The PCM ffmpeg decodes from `path` (48 kHz stereo s16), with `key` when given.
    ///
    /// The file goes in through a pipe, as a player streams fragments: FFmpeg 5.1's mov demuxer,
    /// given a seekable file, reads every `moof` up front and then decrypts each sample with the
    /// last fragment's IVs ("Incorrect number of samples in encryption info"; fixed upstream by
    /// looking the fragment up from the packet). Read in order it decrypts each with its own.
    static func decode(_ path: String, key: [UInt8]? = nil) throws -> (pcm: Data?, stderr: String) {
        try pipedDecode(path, key: key)
    }

    @Test("AAC, Opus and FLAC renditions encrypted as cenc (saiz/saio/senc in each fragment) or cbcs (the constant IV in tenc) carry enca/sinf/schm/tenc and a common-system pssh in the init segment; ffmpeg with -decryption_key decodes them (streamed in order) to exactly the clear package's PCM, and without it (or with another key) does not",
          arguments: ["cenc", "cbcs"])
    func ffmpegDecrypts(scheme: String) async throws {
        let key = ContentKey.random()
        let keyID = ContentKey.random().bytes
        let protection: SegmentProtection = scheme == "cenc" ? .cenc(key, keyID: keyID) : .cbcs(key, keyID: keyID, constantIV: ContentKey.random().bytes)
        let (clear, protected) = try await Self.packageBoth(protection)
        for rendition in ["aac-128", "opus-96", "flac"] {
            let initBytes0 = try #require(protected["cmaf/\(rendition)/init.mp4"])
            let initBoxes = boxTypes(initBytes0)
            for type in ["enca", "sinf", "frma", "schm", "tenc", "pssh"] { #expect(initBoxes.contains(type), "\(rendition) init: \(initBoxes)") }
            #expect(Data(initBytes0).range(of: Data(scheme.utf8)) != nil, "schm names \(scheme)")
            #expect(!boxTypes(try #require(clear["cmaf/\(rendition)/init.mp4"])).contains("enca"))
            let segmentBoxes = boxTypes(try #require(protected["cmaf/\(rendition)/seg-1.m4s"]))
            for type in scheme == "cenc" ? ["saiz", "saio", "senc", "mdat"] : ["mdat"] {
                #expect(segmentBoxes.contains(type), "\(rendition) segment: \(segmentBoxes)")
            }
            #expect(segmentBoxes.contains("senc") == (scheme == "cenc"), "\(rendition) segment: \(segmentBoxes)")
            let initBytes = try #require(protected["cmaf/\(rendition)/init.mp4"])
            #expect(Data(initBytes).range(of: Data(keyID)) != nil, "the KID is in the init segment")
            #expect(Data(initBytes).range(of: Data(key.bytes)) == nil, "the key is not")

            let clearFile = try Self.fragmentedFile(clear, rendition)
            let protectedFile = try Self.fragmentedFile(protected, rendition)
            defer { try? FileManager.default.removeItem(atPath: clearFile); try? FileManager.default.removeItem(atPath: protectedFile) }
            let reference = try #require(try Self.decode(clearFile).pcm, "the clear \(rendition) decodes")
            #expect(reference.count > 48_000 * 4 * 9, "\(rendition): \(reference.count) bytes")
            let decrypted = try Self.decode(protectedFile, key: key.bytes)
            #expect(decrypted.pcm == reference, "\(rendition) with the key: \(decrypted.pcm?.count ?? -1) bytes against \(reference.count); \(decrypted.stderr.suffix(400))")
            #expect(try Self.decode(protectedFile).pcm != reference, "\(rendition) without the key decoded to the clear PCM")
            #expect(try Self.decode(protectedFile, key: ContentKey.random().bytes).pcm != reference, "\(rendition) with another key decoded to the clear PCM")
        }
    }

    @Test("a key id that is not 16 bytes is a typed error")
    func badKeyID() async throws {
        let source = try Fixtures.make("cenc-1.flac", source: Fixtures.sourceArguments(seconds: 1), ["-c:a", "flac"])
        var configuration = LadderConfiguration()
        configuration.protection = .cenc(ContentKey.random(), keyID: [1, 2, 3])
        await #expect(throws: MediaError.self) { try await LadderPackager.package(source: source, configuration: configuration, sink: Collected()) }
    }
}
