import Foundation
import MediaCore
import Testing
import TestSupport

@Suite("Hostile input never crashes, hangs or grows without bound")
struct HostileInputTests {
    /// The corpus, made once.
    static let corpus: [HostileCorpus.Entry] = (try? HostileCorpus.make()) ?? []

    @Test func corpusIsLargeEnough() {
        #expect(Self.corpus.count >= 30, "the corpus could not be made or is too small")
    }

    @Test("each hostile file gives a typed error or a clean partial result", arguments: corpus)
    func decodeInIsolation(entry: HostileCorpus.Entry) throws {
        let streamhost = try Fixtures.builtProduct("streamhost")
        // The decoder's own time limit (20 s) is far above what any entry needs; the harness kills at 60 s.
        let result = try Subprocess.run(streamhost, ["decode", entry.path, "--time-limit", "20"], timeLimit: 60)
        #expect(result.signal == nil, "crashed with signal \(result.signal ?? 0): \(result.stderr)")
        #expect(!result.timedOut)
        #expect(result.status == 0 || result.status == 3, "exit \(result.status ?? -1): \(result.stderr)")
        #expect(result.seconds < 10, "took \(result.seconds) s")
        let summary = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any]
        let peak = try #require(summary?["peakResidentBytes"] as? Int, "no JSON report: \(result.stderr)")
        #expect(peak < 96 << 20, "peak RSS \(peak >> 20) MiB")
        if result.status == 3 {
            // A typed error with a message, never a stack trace.
            #expect(result.stderr.hasPrefix("error: "))
            #expect(!result.stderr.contains("Fatal error"))
            #expect(summary?["code"] is String)
        } else {
            #expect(summary?["report"] != nil)
        }
    }

    @Test("probing the corpus in process never crashes")
    func probeInProcess() {
        var outcomes: [String: Int] = [:]
        for entry in Self.corpus {
            do {
                let probe = try MediaProbe.probe(fileAt: entry.path, timeLimit: .seconds(10))
                outcomes["ok", default: 0] += 1
                #expect(probe.sampleRate > 0 && probe.channelCount > 0)
            } catch {
                outcomes[error.code.rawValue, default: 0] += 1
                #expect(!error.message.isEmpty)
            }
        }
        #expect(outcomes.values.reduce(0, +) == Self.corpus.count)
        #expect(outcomes[MediaError.Code.unsupportedFormat.rawValue, default: 0] > 0)
        #expect(outcomes[MediaError.Code.invalidData.rawValue, default: 0] > 0)
    }
}
