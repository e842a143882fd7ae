import Foundation
import Testing
import TestSupport

/// The gRPC API (StreamRPC) end to end: `streamhost serve` with `VEZA_GRPC_PORT=0` and Python's grpcio
/// with stubs that grpcio-tools makes from Protos/ (Tests/scripts/grpc_client.py): tokens minted
/// and revoked, a track created from an object in storage and watched until ready, read, listed,
/// played over HTTP, deleted; each refusal with its status code; the event stream from now, after
/// a cursor and from the start.
@Suite("gRPC API from Python's grpcio")
struct GRPCTests {
    @Test("tracks from storage, watch, tokens, events and every refusal, called with grpcio")
    func pythonClient() throws {
        let host = HostProcess(name: "grpc", environment: ["VEZA_GRPC_PORT": "0"])
        try host.start()
        defer { host.stop() }
        // The objects a platform staged in the host's storage (local disk, or the bucket under
        // make test-scale) before calling CreateTrack.
        let staged = "incoming/\(UUID().uuidString.prefix(8))/"
        let tone = try Fixtures.make("grpc-tone.mp3", source: ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=12"],
                                     ["-c:a", "libmp3lame", "-b:a", "128k"])
        try host.putObject(file: tone, key: staged + "tone.mp3")
        let notes = Fixtures.directory + "/grpc-notes-\(UUID().uuidString.prefix(6)).txt"
        try "not audio at all\n".write(toFile: notes, atomically: true, encoding: .utf8)
        try host.putObject(file: notes, key: staged + "notes.txt")
        #expect(host.grpcPort > 0)

        let result = try Subprocess.run("python3", [DeliveryTests.script("grpc_client.py"), "--target", "127.0.0.1:\(host.grpcPort)",
                                                    "--http", host.base, "--admin", host.adminToken,
                                                    "--source", staged + "tone.mp3", "--junk", staged + "notes.txt"], timeLimit: 400)
        let output = String(decoding: result.stdout, as: UTF8.self)
        #expect(result.succeeded && output.hasSuffix("PASS\n"), "\(output)\n\(result.stderr.suffix(2000))")
        // The staged object is the platform's: the track has its own copy.
        #expect(try host.objectExists(staged + "tone.mp3"))
    }

    @Test("the token subject's API rate limit applies to gRPC calls: the burst passes, the next call is RESOURCE_EXHAUSTED with rate_limited")
    func rateLimited() throws {
        let host = HostProcess(name: "grpc-limits", environment: ["VEZA_GRPC_PORT": "0", "VEZA_LIMITS_API_RATE": "0.01", "VEZA_LIMITS_API_BURST": "4"])
        try host.start()
        defer { host.stop() }
        let result = try Subprocess.run("python3", [DeliveryTests.script("grpc_client.py"), "--target", "127.0.0.1:\(host.grpcPort)",
                                                    "--http", host.base, "--admin", host.adminToken, "--source", "-", "--junk", "-",
                                                    "--burst", "4"], timeLimit: 120)
        let output = String(decoding: result.stdout, as: UTF8.self)
        #expect(result.succeeded && output.hasSuffix("PASS\n"), "\(output)\n\(result.stderr.suffix(2000))")
    }
}
