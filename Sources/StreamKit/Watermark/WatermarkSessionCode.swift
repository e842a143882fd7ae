import Foundation
internal import Crypto

/// The A/B sequence of one playback session: which variant of each segment of a watermarked
/// track the session is served, one bit per segment.
///
/// The bits are HMAC-SHA-256(key, session ‖ block) (256 segments a block): a keyed random code.
/// Without the key the sequence cannot be predicted or read off a segment's name, and for any
/// other session it is independent of this one's, bit by bit, which is what the false-accusation
/// bound of ``WatermarkAccusation`` rests on. Random codes are also the error-correcting code:
/// the detector never needs a particular bit, only enough of them to agree.
public struct WatermarkSessionCode: Sendable, Hashable {
    /// The session's label (from its playback token).
    public let session: String
    private let key: [UInt8]

    /// The code of `session` under the track's `key` (32 bytes).
    public init(key: [UInt8], session: String) {
        precondition(key.count == 32, "a watermark session key has 32 bytes")
        self.key = key
        self.session = session
    }

    /// The bit of segment `segment` (0-based): true serves variant B, false variant A.
    public func bit(segment: Int) -> Bool {
        precondition(segment >= 0)
        let block = bits(block: segment / 256)
        let index = segment % 256
        return block[index / 8] & (1 << UInt8(index % 8)) != 0
    }

    /// The bits of segments `0..<count`.
    public func bits(count: Int) -> [Bool] {
        var result: [Bool] = []
        result.reserveCapacity(count)
        var block = 0
        while result.count < count {
            let bytes = bits(block: block)
            for index in 0..<min(256, count - result.count) { result.append(bytes[index / 8] & (1 << UInt8(index % 8)) != 0) }
            block += 1
        }
        return result
    }

    private func bits(block: Int) -> [UInt8] {
        var message = Array(session.utf8)
        message.append(0)
        withUnsafeBytes(of: UInt32(block).bigEndian) { message += $0 }
        return Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }
}

/// Names the session a leaked recording came from, from the detector's per-segment readings,
/// with a stated bound on accusing an innocent one.
///
/// Each reading is decided hard (variant B for a positive value, A for a negative one); readings
/// weaker than ``erasureThreshold`` (silence, or two copies averaged where their bits differ) are
/// left out. For a session that did not make the recording, each of the `n` decided bits agrees
/// with its code with probability ½, independently (the code is a keyed pseudo-random function),
/// so it agrees in `a` or more with probability `P(Bin(n, ½) ≥ a)`. Among `N` candidate sessions
/// the chance that any innocent one reaches `a` is at most `N · P(Bin(n, ½) ≥ a)` (the union
/// bound); a session is accused only when that bound is at most ``falseAccusationBound``.
public enum WatermarkAccusation {
    /// Readings with a smaller magnitude are erased (the embedded sign reads as ±1).
    public static let erasureThreshold = 0.05
    /// The largest accepted chance of naming an innocent session in one detection (10⁻⁶).
    public static let falseAccusationBound = 1e-6

    /// One candidate's standing.
    public struct Verdict: Sendable, Hashable {
        /// The session.
        public var session: String
        /// Decided segments that agree with the session's code.
        public var agreements: Int
        /// Decided segments.
        public var decided: Int
        /// The union bound on an innocent session scoring this well among the candidates:
        /// `candidates · P(Bin(decided, ½) ≥ agreements)`, at most 1.
        public var falseAccusationChance: Double
        /// Whether the bound is at most ``WatermarkAccusation/falseAccusationBound``.
        public var accused: Bool { falseAccusationChance <= WatermarkAccusation.falseAccusationBound }
    }

    /// Scores every candidate against `readings` (segment index → detector value), best first.
    ///
    /// - Parameters:
    ///   - readings: The detector's value per segment read (about −1 for A, +1 for B).
    ///   - candidates: The sessions that could have made the recording (those that played the track).
    ///   - key: The track's session-code key.
    ///   - population: The number of sessions the bound is taken over; at least the candidates'
    ///     count (a larger figure gives a stricter bound, for example 1,000,000).
    public static func rank(readings: [(segment: Int, value: Double)], candidates: [String], key: [UInt8], population: Int? = nil) -> [Verdict] {
        let decided = readings.filter { abs($0.value) >= erasureThreshold }
        let count = max(candidates.count, population ?? 0)
        let last = (decided.map(\.segment).max() ?? -1) + 1
        let tails = (0...decided.count).map { min(1, Double(count) * binomialTail(decided.count, atLeast: $0)) }
        var verdicts = candidates.map { session -> Verdict in
            let bits = WatermarkSessionCode(key: key, session: session).bits(count: last)
            let agreements = decided.reduce(0) { $0 + ((($1.value > 0) == bits[$1.segment]) ? 1 : 0) }
            return Verdict(session: session, agreements: agreements, decided: decided.count,
                           falseAccusationChance: tails[agreements])
        }
        verdicts.sort { $0.agreements > $1.agreements || ($0.agreements == $1.agreements && $0.session < $1.session) }
        return verdicts
    }

    /// Scores every candidate against the readings at each of several placements of the recording
    /// in the track (MediaCore's `WatermarkDetector` readings), keeping each candidate's best; the bound
    /// counts every placement tried (the population times the placements), best first.
    ///
    /// - Parameters:
    ///   - placements: The readings at each placement.
    ///   - candidates: The sessions that could have made the recording.
    ///   - key: The track's session-code key.
    ///   - population: As in ``rank(readings:candidates:key:population:)``.
    public static func rank(placements: [[(segment: Int, value: Double)]], candidates: [String], key: [UInt8], population: Int? = nil) -> [Verdict] {
        let tried = max(candidates.count, population ?? 0) * max(1, placements.count)
        var best: [String: Verdict] = [:]
        for readings in placements {
            for verdict in rank(readings: readings, candidates: candidates, key: key, population: tried) {
                if let known = best[verdict.session], known.falseAccusationChance <= verdict.falseAccusationChance { continue }
                best[verdict.session] = verdict
            }
        }
        return best.values.sorted {
            $0.falseAccusationChance < $1.falseAccusationChance || ($0.falseAccusationChance == $1.falseAccusationChance && $0.session < $1.session)
        }
    }

    /// `P(Bin(n, ½) ≥ k)`, computed in logarithms (exact to rounding for any `n`).
    public static func binomialTail(_ n: Int, atLeast k: Int) -> Double {
        guard k > 0 else { return 1 }
        guard k <= n else { return 0 }
        let logHalf = Double(n) * log(0.5)
        func logFactorial(_ m: Int) -> Double { Foundation.lgamma(Double(m + 1)) }
        let logFactorialN = logFactorial(n)
        var terms: [Double] = []
        for i in k...n {
            let logChoose: Double = logFactorialN - logFactorial(i) - logFactorial(n - i)
            terms.append(logChoose + logHalf)
        }
        let top = terms.max()!
        return exp(top) * terms.reduce(0) { $0 + exp($1 - top) }
    }

    /// The fewest decided segments for which a recording that agrees with its session's code in
    /// every one can be accused among `population` sessions: ⌈log2(population / bound)⌉.
    public static func minimumSegments(population: Int) -> Int {
        Int((log2(Double(population) / falseAccusationBound)).rounded(.up))
    }
}
