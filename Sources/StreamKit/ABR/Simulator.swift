/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast PRNG with identical output on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform `Double` in [0, 1) from the top 53 bits (platform-independent, unlike `Double.random(in:using:)`).
    public mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}

/// A network bandwidth trace: consecutive periods of constant bandwidth, repeated when exhausted.
public struct BandwidthTrace: Sendable, Hashable {
    /// One period of constant bandwidth.
    public struct Period: Sendable, Hashable {
        /// Length of the period in seconds.
        public var durationSeconds: Double
        /// Available bandwidth in bits per second.
        public var bitsPerSecond: Double

        /// Creates a period.
        public init(durationSeconds: Double, bitsPerSecond: Double) {
            self.durationSeconds = durationSeconds
            self.bitsPerSecond = bitsPerSecond
        }
    }

    /// A name for reports.
    public var name: String
    /// The periods; each has a positive duration and bandwidth.
    public var periods: [Period]

    /// Creates a trace.
    /// - Precondition: at least one period, all with positive duration and bandwidth.
    public init(name: String, periods: [Period]) {
        precondition(!periods.isEmpty && periods.allSatisfy { $0.durationSeconds > 0 && $0.bitsPerSecond > 0 })
        self.name = name
        self.periods = periods
    }

    /// Total length of one pass through the trace, in seconds.
    public var durationSeconds: Double { periods.reduce(0) { $0 + $1.durationSeconds } }

    /// The lowest bandwidth of the trace, in bits per second.
    public var minimumBitsPerSecond: Double { periods.map(\.bitsPerSecond).min()! }

    /// The time needed to transfer `bits` starting at `startSeconds` (the trace repeats).
    public func transferSeconds(bits: Double, startingAt startSeconds: Double) -> Double {
        let cycle = durationSeconds
        var remaining = bits
        var time = startSeconds
        var offset = startSeconds.truncatingRemainder(dividingBy: cycle)
        var index = 0
        while offset >= periods[index].durationSeconds {
            offset -= periods[index].durationSeconds
            index += 1
        }
        while remaining > 0 {
            let period = periods[index]
            let available = period.durationSeconds - offset
            let capacity = available * period.bitsPerSecond
            if capacity >= remaining {
                time += remaining / period.bitsPerSecond
                remaining = 0
            } else {
                remaining -= capacity
                time += available
                offset = 0
                index = (index + 1) % periods.count
            }
        }
        return time - startSeconds
    }

    /// `high` for `atSeconds`, then `low`, for `totalSeconds` in all.
    public static func stepDown(high: Bitrate, low: Bitrate, atSeconds: Double, totalSeconds: Double) -> BandwidthTrace {
        BandwidthTrace(name: "step-down", periods: [
            Period(durationSeconds: atSeconds, bitsPerSecond: high.doubleValue),
            Period(durationSeconds: totalSeconds - atSeconds, bitsPerSecond: low.doubleValue),
        ])
    }

    /// `low` for `atSeconds`, then `high`.
    public static func stepUp(low: Bitrate, high: Bitrate, atSeconds: Double, totalSeconds: Double) -> BandwidthTrace {
        BandwidthTrace(name: "step-up", periods: [
            Period(durationSeconds: atSeconds, bitsPerSecond: low.doubleValue),
            Period(durationSeconds: totalSeconds - atSeconds, bitsPerSecond: high.doubleValue),
        ])
    }

    /// Alternates `high` and `low` every `halfPeriodSeconds`, for `totalSeconds`.
    public static func oscillating(high: Bitrate, low: Bitrate, halfPeriodSeconds: Double, totalSeconds: Double) -> BandwidthTrace {
        var periods: [Period] = []
        var elapsed = 0.0
        while elapsed < totalSeconds {
            periods.append(Period(durationSeconds: halfPeriodSeconds, bitsPerSecond: (periods.count % 2 == 0 ? high : low).doubleValue))
            elapsed += halfPeriodSeconds
        }
        return BandwidthTrace(name: "oscillating", periods: periods)
    }

    /// The shape of a generated mobile trace.
    public struct MobileProfile: Sendable, Hashable {
        /// Name for reports.
        public var name: String
        /// Median bandwidth, bits per second.
        public var medianBitsPerSecond: Double
        /// Lower clamp, bits per second.
        public var floorBitsPerSecond: Double
        /// Upper clamp, bits per second.
        public var ceilingBitsPerSecond: Double
        /// Standard deviation of the per-second step of log-bandwidth (a mean-reverting random walk).
        public var volatility: Double

        /// Creates a profile.
        public init(name: String, medianBitsPerSecond: Double, floorBitsPerSecond: Double,
                    ceilingBitsPerSecond: Double, volatility: Double) {
            self.name = name
            self.medianBitsPerSecond = medianBitsPerSecond
            self.floorBitsPerSecond = floorBitsPerSecond
            self.ceilingBitsPerSecond = ceilingBitsPerSecond
            self.volatility = volatility
        }

        /// HSDPA-like 3G: median 800 kb/s, 250 kb/s – 2.5 Mb/s.
        public static let threeG = MobileProfile(name: "3g", medianBitsPerSecond: 800_000, floorBitsPerSecond: 250_000,
                                                 ceilingBitsPerSecond: 2_500_000, volatility: 0.35)
        /// LTE-like 4G: median 8 Mb/s, 1 – 40 Mb/s.
        public static let fourG = MobileProfile(name: "4g", medianBitsPerSecond: 8_000_000, floorBitsPerSecond: 1_000_000,
                                                ceilingBitsPerSecond: 40_000_000, volatility: 0.5)
    }

    /// A deterministic trace of one-second periods from a seeded generator: log-bandwidth follows a
    /// mean-reverting random walk around the median, clamped to the profile's range.
    public static func generated(_ profile: MobileProfile, seconds: Int, seed: UInt64) -> BandwidthTrace {
        var rng = SplitMix64(seed: seed)
        let median = Math.log(profile.medianBitsPerSecond)
        var level = median
        var periods: [Period] = []
        for _ in 0..<max(1, seconds) {
            // Approximately normal step: sum of four uniforms, centred and scaled to unit variance.
            let normal = ((0..<4).reduce(0.0) { sum, _ in sum + rng.nextUnit() } - 2) * 1.7320508075688772
            level += 0.2 * (median - level) + profile.volatility * normal
            let value = min(max(Math.exp(level), profile.floorBitsPerSecond), profile.ceilingBitsPerSecond)
            periods.append(Period(durationSeconds: 1, bitsPerSecond: value.rounded()))
        }
        return BandwidthTrace(name: "\(profile.name)-seed\(seed)", periods: periods)
    }
}

/// What the simulator reports for one run.
public struct SimulationReport: Sendable, Hashable {
    /// Mean bit rate of the chosen rungs, weighted by segment duration.
    public var averageBitrate: Bitrate
    /// Total stall time after start-up, seconds.
    public var rebufferSeconds: Double
    /// `rebufferSeconds / (played + rebufferSeconds)`.
    public var rebufferRatio: Double
    /// Number of rung changes between consecutive segments.
    public var switchCount: Int
    /// Time from the first request to the start of playback, seconds.
    public var startupDelaySeconds: Double
    /// The rung chosen for each segment.
    public var chosenRungs: [Int]
}

/// A deterministic ABR simulator: downloads a sequence of segments over a bandwidth trace, one at a
/// time, with a player buffer that drains in real time once playback has started.
public struct ABRSimulator: Sendable, Hashable {
    /// Seconds of media needed before playback starts.
    public var startupBufferSeconds: Double
    /// The player stops requesting while this much is buffered.
    public var maximumBufferSeconds: Double
    /// Request latency added to every download, seconds.
    public var requestLatencySeconds: Double

    /// Creates a simulator.
    public init(startupBufferSeconds: Double = 4, maximumBufferSeconds: Double = 30, requestLatencySeconds: Double = 0.05) {
        self.startupBufferSeconds = startupBufferSeconds
        self.maximumBufferSeconds = maximumBufferSeconds
        self.requestLatencySeconds = requestLatencySeconds
    }

    /// Segment sizes for a ladder at constant bit rates: `[rung][segment]` bytes.
    public static func constantBitrateSizes(ladder: Ladder, segmentCount: Int, segmentDurationSeconds: Double) -> [[Int64]] {
        ladder.rungs.map { rung in
            Array(repeating: Int64((rung.bitrate.doubleValue * segmentDurationSeconds / 8).rounded()), count: segmentCount)
        }
    }

    /// Replays `trace` for `segmentSizes[rung][segment]` using `rule` and `estimator`.
    public func run(rule: some ABRRule, estimator: ThroughputEstimator = ThroughputEstimator(), ladder: Ladder,
                    segmentSizes: [[Int64]], segmentDurationSeconds: Double, trace: BandwidthTrace) -> SimulationReport {
        precondition(segmentSizes.count == ladder.rungs.count && segmentDurationSeconds > 0)
        var rule = rule
        var estimator = estimator
        let segmentCount = segmentSizes.map(\.count).min() ?? 0
        var clock = 0.0
        var buffer = 0.0
        var playing = false
        var startup = 0.0
        var rebuffer = 0.0
        var chosen: [Int] = []
        var bitrateSum = 0.0
        for segment in 0..<segmentCount {
            let context = ABRContext(
                ladder: ladder, bufferSeconds: buffer, throughputEstimate: estimator.estimate, previousRung: chosen.last,
                segmentDurationSeconds: segmentDurationSeconds, nextSegmentBytes: segmentSizes.map { $0[segment] })
            let rung = min(max(rule.chooseRung(context), 0), ladder.rungs.count - 1)
            let bytes = segmentSizes[rung][segment]
            let download = requestLatencySeconds + trace.transferSeconds(bits: Double(bytes) * 8, startingAt: clock + requestLatencySeconds)
            if playing {
                if download > buffer {
                    rebuffer += download - buffer
                    buffer = 0
                } else {
                    buffer -= download
                }
            }
            clock += download
            buffer += segmentDurationSeconds
            estimator.record(bytes: bytes, durationSeconds: download)
            chosen.append(rung)
            bitrateSum += Double(bytes) * 8 / segmentDurationSeconds
            if !playing && (buffer >= startupBufferSeconds || segment == segmentCount - 1) {
                playing = true
                startup = clock
            }
            if buffer > maximumBufferSeconds {
                let wait = buffer - maximumBufferSeconds
                clock += wait
                if playing { buffer = maximumBufferSeconds }
            }
        }
        let played = Double(segmentCount) * segmentDurationSeconds
        let switches = zip(chosen, chosen.dropFirst()).filter { $0 != $1 }.count
        return SimulationReport(
            averageBitrate: Bitrate(bitsPerSecond: segmentCount == 0 ? 0 : Int64((bitrateSum / Double(segmentCount)).rounded())),
            rebufferSeconds: rebuffer,
            rebufferRatio: played + rebuffer > 0 ? rebuffer / (played + rebuffer) : 0,
            switchCount: switches, startupDelaySeconds: startup, chosenRungs: chosen)
    }
}

/// Client hints a server can use to pick the first rendition (Save-Data, ECT, Downlink).
public struct ClientHints: Sendable, Hashable {
    /// Value of the ECT hint (Network Information API effective connection type).
    public enum EffectiveConnectionType: String, Sendable, Hashable, CaseIterable {
        /// `slow-2g`.
        case slow2G = "slow-2g"
        /// `2g`.
        case twoG = "2g"
        /// `3g`.
        case threeG = "3g"
        /// `4g`.
        case fourG = "4g"

        /// The throughput the type stands for (NetInfo's table), bits per second; `nil` for 4g (no cap).
        public var typicalBitsPerSecond: Double? {
            switch self {
            case .slow2G: 50_000
            case .twoG: 70_000
            case .threeG: 700_000
            case .fourG: nil
            }
        }
    }

    /// `Save-Data: on`.
    public var saveData: Bool
    /// The ECT hint.
    public var effectiveConnectionType: EffectiveConnectionType?
    /// The Downlink hint (sent in Mb/s, rounded to 25 kb/s).
    public var downlink: Bitrate?

    /// Creates hints from values.
    public init(saveData: Bool = false, effectiveConnectionType: EffectiveConnectionType? = nil, downlink: Bitrate? = nil) {
        self.saveData = saveData
        self.effectiveConnectionType = effectiveConnectionType
        self.downlink = downlink
    }

    /// Parses the raw header values (`Save-Data`, `ECT`, `Downlink`); unknown or malformed values are ignored.
    public init(saveDataHeader: String?, ectHeader: String?, downlinkHeader: String?) {
        let saveValue = saveDataHeader?.trimmingOWS().lowercased()
        saveData = saveValue == "on"
        effectiveConnectionType = ectHeader.flatMap { EffectiveConnectionType(rawValue: String($0.trimmingOWS()).lowercased()) }
        if let text = downlinkHeader?.trimmingOWS(), let megabits = MediaTime(decimalSeconds: text), megabits.value >= 0 {
            // MediaTime parses the decimal exactly; "seconds" here are megabits per second.
            downlink = Bitrate(bitsPerSecond: megabits.rounded(toUnitsPerSecond: 1_000_000))
        } else {
            downlink = nil
        }
    }
}

/// How the server turns client hints into a starting rung.
public struct StartingRenditionPolicy: Sendable, Hashable {
    /// Fraction of the hinted bandwidth the first rendition may use (default 0.5: the first segment also
    /// pays for connection set-up and the playlists).
    public var safetyFactor: Double
    /// The rung used without any bandwidth hint; `nil` means the middle rung.
    public var defaultRung: Int?

    /// Creates a policy.
    public init(safetyFactor: Double = 0.5, defaultRung: Int? = nil) {
        self.safetyFactor = safetyFactor
        self.defaultRung = defaultRung
    }
}

/// The server-side choice of a starting rung from client hints: the lowest rung with Save-Data;
/// otherwise the highest rung within `safetyFactor ×` the smaller of Downlink and the ECT's typical
/// throughput; otherwise the policy's default.
public func startingRendition(ladder: Ladder, hints: ClientHints, policy: StartingRenditionPolicy = StartingRenditionPolicy()) -> Int {
    if hints.saveData { return 0 }
    let candidates = [hints.downlink.map(\.doubleValue), hints.effectiveConnectionType?.typicalBitsPerSecond].compactMap { $0 }
    guard let bandwidth = candidates.min() else {
        return min(policy.defaultRung ?? (ladder.rungs.count - 1) / 2, ladder.rungs.count - 1)
    }
    return ladder.highestIndex(notAbove: bandwidth * policy.safetyFactor)
}
