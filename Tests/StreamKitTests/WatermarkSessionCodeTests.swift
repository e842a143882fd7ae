import Foundation
import Testing
@testable import StreamKit

@Suite struct WatermarkSessionCodeTests {
    let key = Array(repeating: UInt8(3), count: 32)

    @Test func codesAreStableKeyedAndBalanced() {
        let code = WatermarkSessionCode(key: key, session: "s-1")
        let bits = code.bits(count: 600)
        #expect(bits == WatermarkSessionCode(key: key, session: "s-1").bits(count: 600))
        #expect((0..<600).allSatisfy { code.bit(segment: $0) == bits[$0] })
        #expect(bits != WatermarkSessionCode(key: key, session: "s-2").bits(count: 600))
        #expect(bits != WatermarkSessionCode(key: Array(repeating: 4, count: 32), session: "s-1").bits(count: 600))
        let ones = bits.filter { $0 }.count
        #expect((240...360).contains(ones), "\(ones) of 600")
        // Two sessions agree on about half their bits.
        let other = WatermarkSessionCode(key: key, session: "s-2").bits(count: 600)
        let agreements = zip(bits, other).filter { $0 == $1 }.count
        #expect((240...360).contains(agreements))
    }

    @Test func binomialTailIsExact() {
        #expect(WatermarkAccusation.binomialTail(10, atLeast: 0) == 1)
        #expect(WatermarkAccusation.binomialTail(10, atLeast: 11) == 0)
        #expect(abs(WatermarkAccusation.binomialTail(10, atLeast: 10) - 1.0 / 1024) < 1e-15)
        // P(Bin(10, ½) ≥ 8) = (45 + 10 + 1) / 1024.
        #expect(abs(WatermarkAccusation.binomialTail(10, atLeast: 8) - 56.0 / 1024) < 1e-12)
        #expect(abs(WatermarkAccusation.binomialTail(90, atLeast: 45) - 0.5420) < 1e-3)
        #expect(WatermarkAccusation.minimumSegments(population: 1_000_000) == 40)
    }

    /// The right session among 100,000 from 60 clean segments; a 13 % error rate over 90 still
    /// names it; nothing is accused from noise or from too few segments.
    @Test func accusesTheRightSessionAndNoInnocentOne() {
        let sessions = (0..<100_000).map { "session-\($0)" }
        let leaker = sessions[31_337]
        let bits = WatermarkSessionCode(key: key, session: leaker).bits(count: 200)
        let clean = (40..<100).map { (segment: $0, value: bits[$0] ? 0.8 : -0.8) }
        let ranked = WatermarkAccusation.rank(readings: clean, candidates: sessions, key: key, population: 1_000_000)
        #expect(ranked[0].session == leaker && ranked[0].accused && ranked[0].agreements == 60)
        #expect(!ranked[1].accused)

        var generator = SystemRandomNumberGenerator()
        // 12 of 90 wrong (13 %): 78 agreements, an innocent session's chance 1.6e-13 each.
        let noisy = (100..<190).map { segment -> (segment: Int, value: Double) in
            let flipped = segment % 8 == 0
            return (segment, (bits[segment] != flipped) ? 0.5 : -0.5)
        }
        let noisyRanked = WatermarkAccusation.rank(readings: noisy, candidates: sessions, key: key, population: 1_000_000)
        #expect(noisyRanked[0].session == leaker && noisyRanked[0].accused, "\(noisyRanked[0])")

        let noise = (0..<90).map { (segment: $0, value: Double.random(in: -1...1, using: &generator)) }
        #expect(!WatermarkAccusation.rank(readings: noise, candidates: sessions, key: key, population: 1_000_000)[0].accused)
        let short = Array(clean.prefix(30))
        #expect(!WatermarkAccusation.rank(readings: short, candidates: sessions, key: key, population: 1_000_000)[0].accused)
    }
}
