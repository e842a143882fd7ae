/// One rung of a bit-rate ladder.
public struct LadderRung: Sendable, Hashable {
    /// The rendition id.
    public var id: String
    /// The nominal (or measured average) bit rate of the rendition.
    public var bitrate: Bitrate

    /// Creates a rung.
    public init(id: String, bitrate: Bitrate) {
        self.id = id
        self.bitrate = bitrate
    }
}

/// A bit-rate ladder: rungs in ascending bit rate (index 0 is the lowest).
public struct Ladder: Sendable, Hashable {
    /// The rungs, ascending.
    public let rungs: [LadderRung]

    /// Creates a ladder (rungs are sorted by bit rate); `nil` when empty or a bit rate is not positive.
    public init?(rungs: [LadderRung]) {
        guard !rungs.isEmpty, rungs.allSatisfy({ $0.bitrate.bitsPerSecond > 0 }) else { return nil }
        self.rungs = rungs.sorted { $0.bitrate < $1.bitrate }
    }

    /// The ladder of the given renditions, using their average bit rates.
    public init?(renditions: [Rendition]) {
        self.init(rungs: renditions.map { LadderRung(id: $0.id, bitrate: $0.averageBitrate) })
    }

    /// The highest rung whose bit rate is at most `bitsPerSecond`, or 0 when none is.
    public func highestIndex(notAbove bitsPerSecond: Double) -> Int {
        rungs.lastIndex { $0.bitrate.doubleValue <= bitsPerSecond } ?? 0
    }
}

/// A throughput estimator: exponentially weighted moving averages with two half-lives, the estimate
/// being the lower of the two (fast to react to drops, slow to believe rises), with zero-bias
/// correction. Modelled on shaka-packager / Shaka Player's estimator. All rates are **bits per second**.
public struct ThroughputEstimator: Sendable, Hashable {
    struct EWMA: Sendable, Hashable {
        let alpha: Double
        var estimate = 0.0
        var totalWeight = 0.0

        init(halfLifeSeconds: Double) {
            alpha = Math.exp(Math.log(0.5) / halfLifeSeconds)
        }

        mutating func sample(weight: Double, value: Double) {
            let adjusted = Math.pow(alpha, weight)
            estimate = value * (1 - adjusted) + adjusted * estimate
            totalWeight += weight
        }

        var value: Double {
            let zeroFactor = 1 - Math.pow(alpha, totalWeight)
            return zeroFactor > 0 ? estimate / zeroFactor : 0
        }
    }

    private var fast: EWMA
    private var slow: EWMA
    /// Samples smaller than this many bytes are ignored (they mostly measure latency).
    public let minimumSampleBytes: Int64
    /// Number of samples recorded.
    public private(set) var sampleCount = 0

    /// Creates an estimator.
    /// - Parameters:
    ///   - fastHalfLifeSeconds: half-life of the fast average, in seconds of download time (default 2).
    ///   - slowHalfLifeSeconds: half-life of the slow average (default 5).
    ///   - minimumSampleBytes: smaller transfers are ignored (default 0: audio segments are small).
    public init(fastHalfLifeSeconds: Double = 2, slowHalfLifeSeconds: Double = 5, minimumSampleBytes: Int64 = 0) {
        precondition(fastHalfLifeSeconds > 0 && slowHalfLifeSeconds > 0)
        fast = EWMA(halfLifeSeconds: fastHalfLifeSeconds)
        slow = EWMA(halfLifeSeconds: slowHalfLifeSeconds)
        self.minimumSampleBytes = minimumSampleBytes
    }

    /// Records one transfer of `bytes` that took `durationSeconds` (weighted by its duration).
    public mutating func record(bytes: Int64, durationSeconds: Double) {
        guard bytes >= minimumSampleBytes, bytes > 0, durationSeconds > 0 else { return }
        let bitsPerSecond = Double(bytes) * 8 / durationSeconds
        fast.sample(weight: durationSeconds, value: bitsPerSecond)
        slow.sample(weight: durationSeconds, value: bitsPerSecond)
        sampleCount += 1
    }

    /// Records one transfer of `bytes` that took `duration`.
    public mutating func record(bytes: Int64, duration: MediaTime) {
        record(bytes: bytes, durationSeconds: duration.seconds)
    }

    /// The estimate in bits per second, or `nil` before the first sample.
    public var estimate: Bitrate? {
        guard sampleCount > 0 else { return nil }
        return Bitrate(bitsPerSecond: Int64(min(fast.value, slow.value).rounded()))
    }
}

/// A sliding-window harmonic mean of throughput samples (robust to outliers; used by FESTIVE, MPC).
/// Rates are bits per second.
public struct HarmonicMeanEstimator: Sendable, Hashable {
    /// The number of most recent samples kept.
    public let windowSize: Int
    private var samples: [Double] = []

    /// Creates an estimator keeping the last `windowSize` samples.
    public init(windowSize: Int = 5) {
        precondition(windowSize > 0)
        self.windowSize = windowSize
    }

    /// Records a transfer of `bytes` that took `durationSeconds`.
    public mutating func record(bytes: Int64, durationSeconds: Double) {
        guard bytes > 0, durationSeconds > 0 else { return }
        samples.append(Double(bytes) * 8 / durationSeconds)
        if samples.count > windowSize { samples.removeFirst(samples.count - windowSize) }
    }

    /// The harmonic mean of the window in bits per second, or `nil` before the first sample.
    public var estimate: Bitrate? {
        guard !samples.isEmpty else { return nil }
        let denominator = samples.reduce(0) { $0 + 1 / $1 }
        return Bitrate(bitsPerSecond: Int64((Double(samples.count) / denominator).rounded()))
    }
}

/// What a rule sees before choosing the next segment's rung. All observations, no clock.
public struct ABRContext: Sendable, Hashable {
    /// The ladder.
    public var ladder: Ladder
    /// Seconds of media buffered ahead of the playhead.
    public var bufferSeconds: Double
    /// The current throughput estimate, if any.
    public var throughputEstimate: Bitrate?
    /// The rung of the previous segment, if any.
    public var previousRung: Int?
    /// Duration of the next segment in seconds.
    public var segmentDurationSeconds: Double
    /// Size in bytes of the next segment at each rung, if known (else `bitrate × duration` is assumed).
    public var nextSegmentBytes: [Int64]?

    /// Creates a context.
    public init(ladder: Ladder, bufferSeconds: Double, throughputEstimate: Bitrate?, previousRung: Int?,
                segmentDurationSeconds: Double, nextSegmentBytes: [Int64]? = nil) {
        self.ladder = ladder
        self.bufferSeconds = bufferSeconds
        self.throughputEstimate = throughputEstimate
        self.previousRung = previousRung
        self.segmentDurationSeconds = segmentDurationSeconds
        self.nextSegmentBytes = nextSegmentBytes
    }

    /// The size in bits of the next segment at `rung`.
    public func segmentBits(rung: Int) -> Double {
        if let sizes = nextSegmentBytes, sizes.indices.contains(rung) { return Double(sizes[rung]) * 8 }
        return ladder.rungs[rung].bitrate.doubleValue * segmentDurationSeconds
    }
}

/// A bit-rate selection rule: a function of observations (and, for hybrid rules, its own mode).
public protocol ABRRule: Sendable {
    /// The rung index for the next segment.
    mutating func chooseRung(_ context: ABRContext) -> Int
}

/// Throughput rule: the highest rung whose bit rate fits the estimate times a safety factor.
/// Without an estimate it picks ``startRung``.
public struct ThroughputRule: ABRRule, Hashable {
    /// Fraction of the estimated throughput the chosen bit rate may use (default 0.9, as dash.js).
    public var safetyFactor: Double
    /// The rung used before any estimate exists.
    public var startRung: Int

    /// Creates a throughput rule.
    public init(safetyFactor: Double = 0.9, startRung: Int = 0) {
        self.safetyFactor = safetyFactor
        self.startRung = startRung
    }

    /// The highest rung within `estimate × safetyFactor`, or ``startRung`` without an estimate.
    public mutating func chooseRung(_ context: ABRContext) -> Int {
        guard let estimate = context.throughputEstimate else {
            return min(startRung, context.ladder.rungs.count - 1)
        }
        return context.ladder.highestIndex(notAbove: estimate.doubleValue * safetyFactor)
    }
}

/// BOLA (Spiteri, Urgaonkar, Sitaraman, "BOLA: Near-Optimal Bitrate Adaptation for Online Videos",
/// IEEE/ACM ToN 2020), in the BOLA-BASIC form dash.js uses.
///
/// Utilities are `v_m = ln(S_m / S_1) + 1`; with buffer target `Q_max` (seconds),
/// `γp = (v_M − 1) / (Q_max / Q_min − 1)` and `V = Q_min / γp`, the rule picks
/// `argmax_m (V (v_m + γp) − Q) / S_m` for buffer level `Q`. With ``limitsUpswitchToThroughput``
/// (dash.js's oscillation guard), an upswitch goes no higher than the throughput-sustainable rung
/// (or stays at the previous rung).
public struct BOLARule: ABRRule, Hashable {
    /// `Q_min`: the buffer level (seconds) below which the lowest rung is chosen (dash.js: 10).
    public var minimumBufferSeconds: Double
    /// The stable buffer target (dash.js: 12); `Q_max` is at least `Q_min + 2 s × rungs`.
    public var bufferTargetSeconds: Double
    /// Apply the throughput cap to upswitches.
    public var limitsUpswitchToThroughput: Bool
    /// Safety factor of the throughput cap.
    public var safetyFactor: Double

    /// Creates a BOLA rule.
    public init(minimumBufferSeconds: Double = 10, bufferTargetSeconds: Double = 12,
                limitsUpswitchToThroughput: Bool = true, safetyFactor: Double = 0.9) {
        self.minimumBufferSeconds = minimumBufferSeconds
        self.bufferTargetSeconds = bufferTargetSeconds
        self.limitsUpswitchToThroughput = limitsUpswitchToThroughput
        self.safetyFactor = safetyFactor
    }

    /// The effective `Q_max` for a ladder of `rungCount` rungs.
    public func maximumBufferSeconds(rungCount: Int) -> Double {
        max(bufferTargetSeconds, minimumBufferSeconds + 2 * Double(rungCount))
    }

    /// The rung BOLA's objective alone picks at `bufferSeconds` (no throughput cap).
    public func bufferBasedRung(_ context: ABRContext) -> Int {
        let rungs = context.ladder.rungs
        guard rungs.count > 1 else { return 0 }
        let sizes = rungs.indices.map { context.segmentBits(rung: $0) }
        let utilities = sizes.map { Math.log($0 / sizes[0]) + 1 }
        let qMax = maximumBufferSeconds(rungCount: rungs.count)
        let gp = (utilities[utilities.count - 1] - 1) / (qMax / minimumBufferSeconds - 1)
        let v = minimumBufferSeconds / gp
        var best = 0
        var bestScore = -Double.infinity
        for index in rungs.indices {
            let score = (v * (utilities[index] + gp) - context.bufferSeconds) / sizes[index]
            if score >= bestScore {
                best = index
                bestScore = score
            }
        }
        return best
    }

    /// The lowest buffer level (seconds) at which BOLA's objective picks `rung` or higher:
    /// the level where the scores of `rung` and `rung - 1` are equal (0 for the lowest rung).
    public func minimumBufferSeconds(forRung rung: Int, _ context: ABRContext) -> Double {
        let rungs = context.ladder.rungs
        guard rungs.count > 1, rung > 0 else { return 0 }
        let sizes = rungs.indices.map { context.segmentBits(rung: $0) }
        let utilities = sizes.map { Math.log($0 / sizes[0]) + 1 }
        let qMax = maximumBufferSeconds(rungCount: rungs.count)
        let gp = (utilities[utilities.count - 1] - 1) / (qMax / minimumBufferSeconds - 1)
        let v = minimumBufferSeconds / gp
        let r = min(rung, rungs.count - 1)
        let numerator = (utilities[r] + gp) * sizes[r - 1] - (utilities[r - 1] + gp) * sizes[r]
        return max(0, v * numerator / (sizes[r - 1] - sizes[r]))
    }

    /// BOLA's buffer-based rung, with upswitches capped by throughput when ``limitsUpswitchToThroughput``.
    public mutating func chooseRung(_ context: ABRContext) -> Int {
        var rung = bufferBasedRung(context)
        if limitsUpswitchToThroughput, let previous = context.previousRung, rung > previous {
            if let estimate = context.throughputEstimate {
                let sustainable = context.ladder.highestIndex(notAbove: estimate.doubleValue * safetyFactor)
                if rung > sustainable { rung = max(sustainable, previous) }
            } else {
                rung = previous
            }
        }
        return rung
    }
}

/// Hybrid rule (like dash.js's DYNAMIC strategy): the throughput rule while the buffer is low,
/// BOLA once it is built, with hysteresis between the two modes.
///
/// In throughput mode it also applies dash.js's insufficient-buffer rule: the bit rate may not exceed
/// `estimate × bufferSafetyFactor × buffer / segment duration`, so the next download survives a
/// throughput drop while the buffer is still thin (the lowest rung is used until a buffer exists).
///
/// On entering BOLA mode it adds a *placeholder* buffer (as dash.js's BOLA does) so that BOLA starts
/// at the rung the throughput rule had reached instead of dropping: BOLA's thresholds assume a
/// buffer that a throughput-driven start has not built yet. The placeholder is consumed as the
/// real buffer grows, and a falling real buffer lowers BOLA's choice at once.
public struct HybridRule: ABRRule, Hashable {
    /// The throughput rule used at low buffer.
    public var throughput: ThroughputRule
    /// The BOLA rule used once the buffer is built.
    public var bola: BOLARule
    /// Switch to BOLA when the buffer reaches this level (seconds).
    public var switchOnSeconds: Double
    /// Switch back to throughput when the buffer falls below this level (seconds).
    public var switchOffSeconds: Double
    /// Fraction of the buffer a download may take at the estimated throughput, in throughput mode.
    public var bufferSafetyFactor: Double
    /// Whether BOLA is in charge.
    public private(set) var usingBOLA = false
    /// Virtual seconds added to the buffer level BOLA sees.
    public private(set) var placeholderSeconds = 0.0
    private var lastBufferSeconds = 0.0

    /// Creates a hybrid rule.
    public init(throughput: ThroughputRule = ThroughputRule(), bola: BOLARule = BOLARule(),
                switchOnSeconds: Double = 12, switchOffSeconds: Double = 6, bufferSafetyFactor: Double = 0.5) {
        precondition(switchOffSeconds <= switchOnSeconds)
        self.bufferSafetyFactor = bufferSafetyFactor
        self.throughput = throughput
        self.bola = bola
        self.switchOnSeconds = switchOnSeconds
        self.switchOffSeconds = switchOffSeconds
    }

    /// Updates the mode from the buffer level, then asks the throughput rule (capped by the
    /// insufficient-buffer rule) or BOLA (with the placeholder buffer).
    public mutating func chooseRung(_ context: ABRContext) -> Int {
        let buffer = context.bufferSeconds
        if usingBOLA {
            if buffer < switchOffSeconds {
                usingBOLA = false
                placeholderSeconds = 0
            }
        } else if buffer >= switchOnSeconds {
            usingBOLA = true
            let current = context.previousRung ?? 0
            // A millisecond above the threshold, so floating-point ties do not flip the choice.
            placeholderSeconds = max(0, bola.minimumBufferSeconds(forRung: current, context) + 0.001 - buffer)
            lastBufferSeconds = buffer
        }
        guard usingBOLA else {
            let rung = throughput.chooseRung(context)
            guard let estimate = context.throughputEstimate else { return rung }
            let affordable = estimate.doubleValue * bufferSafetyFactor * buffer / context.segmentDurationSeconds
            return min(rung, context.ladder.highestIndex(notAbove: affordable))
        }
        if buffer > lastBufferSeconds {
            placeholderSeconds = max(0, placeholderSeconds - (buffer - lastBufferSeconds))
        }
        lastBufferSeconds = buffer
        var adjusted = context
        adjusted.bufferSeconds = buffer + placeholderSeconds
        return bola.chooseRung(adjusted)
    }
}
