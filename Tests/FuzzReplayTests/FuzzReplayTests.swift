import Foundation
import StreamKit
import Testing

/// The fuzz harnesses (Harness.swift, shared with the libFuzzer binary in Fuzz/ through a
/// symbolic link) replayed in the optimised test build: every committed seed
/// (`Fuzz/Corpus/<harness>`) and every input of a crash found and fixed
/// (`Fuzz/Regressions/<harness>`), then a short run of blind mutations of them.
///
/// This is CI's short fuzzing step. It needs no build of its own, where libFuzzer's needs a
/// debug build of the whole package with AddressSanitizer (about 10 minutes of CI on 2 cores);
/// `make fuzz` (600 s a harness) and `make fuzz-short` keep libFuzzer's coverage-guided search
/// and AddressSanitizer. What this run finds is what libFuzzer finds without ASan: a trap, a
/// broken invariant (the harnesses' `precondition`s hold in optimised code) or a hang.
///
/// The mutations are reproducible: the generator is seeded from the harness' name and the input
/// being mutated is written to `Fuzz/Findings/replay-<harness>.current` before it runs, so a
/// crash leaves its input where `make fuzz` leaves its findings.
@Suite struct FuzzReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Seconds of mutations per harness (`VEZA_FUZZ_REPLAY_SECONDS`, default 3).
    static let mutationSeconds = Double(ProcessInfo.processInfo.environment["VEZA_FUZZ_REPLAY_SECONDS"] ?? "") ?? 3

    static func inputs(_ folder: String, _ harness: Harness) -> [[UInt8]] {
        let directory = root.appendingPathComponent("Fuzz/\(folder)/\(harness.rawValue)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()) ?? []
        return names.compactMap { try? Array(Data(contentsOf: directory.appendingPathComponent($0))) }
    }

    @Test(arguments: Harness.allCases)
    func replay(_ harness: Harness) async throws {
        // Several harnesses wait for async work with a semaphore (`blocking`, as libFuzzer's
        // synchronous entry point must): on the cooperative pool, two of them at once would
        // hold both of its threads (2 cores) while the tasks they wait for need one.
        let failure: String? = await withCheckedContinuation { continuation in
            Thread {
                do {
                    try Self.run(harness)
                    continuation.resume(returning: nil)
                } catch {
                    continuation.resume(returning: "\(error)")
                }
            }.start()
        }
        #expect(failure == nil)
    }

    static func run(_ harness: Harness) throws {
        let seeds = Self.inputs("Corpus", harness)
        let regressions = Self.inputs("Regressions", harness)
        // A harness without seeds would make the mutations below blind to its format.
        guard !seeds.isEmpty else { throw ReplayError.noSeeds(harness.rawValue) }
        for input in regressions + seeds { harness.run(input) }

        let findings = Self.root.appendingPathComponent("Fuzz/Findings")
        try FileManager.default.createDirectory(at: findings, withIntermediateDirectories: true)
        let current = findings.appendingPathComponent("replay-\(harness.rawValue).current")
        var generator = SplitMix64(seed: harness.rawValue.utf8.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 })
        let pool = regressions + seeds
        let deadline = Date().addingTimeInterval(Self.mutationSeconds)
        var runs = 0
        // The media harness runs FFmpeg on each input: its inputs are written for it anyway.
        while Date() < deadline {
            let input = Mutator.mutate(pool[Int(generator.next() % UInt64(pool.count))], pool: pool, using: &generator)
            try Data(input).write(to: current)
            harness.run(input)
            runs += 1
        }
        try? FileManager.default.removeItem(at: current)
        guard runs > 0 else { throw ReplayError.noMutations(harness.rawValue) }
        print("fuzz replay \(harness.rawValue): \(regressions.count) regressions, \(seeds.count) seeds, \(runs) mutations")
    }
}

enum ReplayError: Error {
    case noSeeds(String)
    case noMutations(String)
}

/// libFuzzer's basic mutations without its coverage feedback: flip, set, insert and erase
/// bytes, overwrite with an interesting value, duplicate a run, splice with another input.
enum Mutator {
    static let interesting: [[UInt8]] = [[0], [0xff], [0x7f], [0x80], [0, 0, 0, 0], [0xff, 0xff, 0xff, 0xff], [0x7f, 0xff, 0xff, 0xff],
                                         Array("\n".utf8), Array("\r\n".utf8), Array("-1".utf8), Array("99999999999999999999".utf8),
                                         Array("%00".utf8), Array("..".utf8), Array("=".utf8), Array(",".utf8), Array("\"".utf8)]

    static func mutate<G: RandomNumberGenerator>(_ input: [UInt8], pool: [[UInt8]], using generator: inout G) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &generator) {
            let position = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<7, using: &generator) {
            case 0 where !bytes.isEmpty: bytes[position] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
            case 1 where !bytes.isEmpty: bytes[position] = UInt8.random(in: 0...255, using: &generator)
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: position)
            case 3 where !bytes.isEmpty: bytes.removeSubrange(position..<min(bytes.count, position + Int.random(in: 1...16, using: &generator)))
            case 4:
                let value = interesting.randomElement(using: &generator)!
                bytes.replaceSubrange(position..<min(bytes.count, position + value.count), with: value)
            case 5 where !bytes.isEmpty:
                let run = bytes[position..<min(bytes.count, position + Int.random(in: 1...64, using: &generator))]
                bytes.insert(contentsOf: Array(run), at: position)
            default:
                let other = pool.randomElement(using: &generator)!
                guard !other.isEmpty else { continue }
                let start = Int.random(in: 0..<other.count, using: &generator)
                bytes = Array(bytes[..<position]) + Array(other[start...])
            }
        }
        return Array(bytes.prefix(65_536))
    }
}
