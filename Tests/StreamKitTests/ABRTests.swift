import Testing
@testable import StreamKit

@Suite struct ABRTests {
    /// Opus 48/96/160, AAC 320, FLAC ~900 kb/s: a wide audio ladder.
    static let ladder = Ladder(rungs: [900, 48, 160, 96, 320].map { LadderRung(id: "r\($0)", bitrate: .kilobitsPerSecond($0)) })!
    static let sizes = ABRSimulator.constantBitrateSizes(ladder: ladder, segmentCount: 100, segmentDurationSeconds: 6)

    static let traces: [BandwidthTrace] = [
        .stepDown(high: .kilobitsPerSecond(1_000), low: .kilobitsPerSecond(150), atSeconds: 60, totalSeconds: 600),
        .stepUp(low: .kilobitsPerSecond(150), high: .kilobitsPerSecond(1_000), atSeconds: 60, totalSeconds: 600),
        .oscillating(high: .kilobitsPerSecond(600), low: .kilobitsPerSecond(100), halfPeriodSeconds: 20, totalSeconds: 600),
        .oscillating(high: .kilobitsPerSecond(400), low: .kilobitsPerSecond(120), halfPeriodSeconds: 10, totalSeconds: 600),
    ] + (1...6).map { .generated(.threeG, seconds: 700, seed: UInt64($0)) }
      + (1...3).map { .generated(.fourG, seconds: 700, seed: UInt64($0)) }

    static func run(_ rule: some ABRRule, _ trace: BandwidthTrace) -> SimulationReport {
        ABRSimulator().run(rule: rule, ladder: ladder, segmentSizes: sizes, segmentDurationSeconds: 6, trace: trace)
    }

    @Test(arguments: traces.map(\.name))
    func hybridNeverRebuffersWhenTheLowestRungFits(_ name: String) {
        let trace = Self.traces.first { $0.name == name }!
        #expect(trace.minimumBitsPerSecond > Self.ladder.rungs[0].bitrate.doubleValue)
        let report = Self.run(HybridRule(), trace)
        #expect(report.rebufferSeconds == 0, "\(name): \(report)")
        #expect(report.rebufferRatio == 0)
        #expect(report.chosenRungs.count == 100)
        #expect(report.startupDelaySeconds > 0 && report.startupDelaySeconds < 3)
    }

    @Test func throughputRuleRebuffersWhereTheHybridDoesNot() {
        // The baseline is not trivially safe: with a thin buffer it picks 320 kb/s just before the drop.
        let trace = Self.traces[3]
        let throughput = Self.run(ThroughputRule(), trace)
        #expect(throughput.rebufferSeconds > 0.5)
        #expect(throughput.rebufferRatio > 0 && throughput.rebufferRatio < 0.01)
        #expect(Self.run(HybridRule(), trace).rebufferSeconds == 0)
    }

    @Test(arguments: [2, 3])
    func hybridSwitchesLessThanThroughputOnOscillation(_ index: Int) {
        let trace = Self.traces[index]
        let throughput = Self.run(ThroughputRule(), trace)
        let hybrid = Self.run(HybridRule(), trace)
        #expect(hybrid.switchCount < throughput.switchCount / 4, "hybrid \(hybrid.switchCount) vs throughput \(throughput.switchCount)")
        #expect(hybrid.averageBitrate >= throughput.averageBitrate)
    }

    @Test func reportsAreDeterministicAndSensible() {
        let trace = BandwidthTrace.generated(.threeG, seconds: 700, seed: 7)
        #expect(BandwidthTrace.generated(.threeG, seconds: 700, seed: 7) == trace)
        #expect(BandwidthTrace.generated(.threeG, seconds: 700, seed: 8) != trace)
        let first = Self.run(HybridRule(), trace)
        #expect(Self.run(HybridRule(), trace) == first)
        let rates = first.chosenRungs.map { Self.ladder.rungs[$0].bitrate.doubleValue }
        #expect(abs(first.averageBitrate.doubleValue - rates.reduce(0, +) / Double(rates.count)) < 1)
        #expect(first.switchCount == zip(first.chosenRungs, first.chosenRungs.dropFirst()).filter { $0 != $1 }.count)
        for period in trace.periods {
            #expect(period.durationSeconds == 1)
            #expect(period.bitsPerSecond >= 250_000 && period.bitsPerSecond <= 2_500_000)
        }
        // Always the lowest rung on a constant trace far above the top rung: no switches after start-up.
        let fast = Self.run(ThroughputRule(), BandwidthTrace(name: "fast", periods: [.init(durationSeconds: 1, bitsPerSecond: 50_000_000)]))
        #expect(fast.chosenRungs.dropFirst().allSatisfy { $0 == 4 })
        #expect(fast.switchCount == 1)
    }

    @Test func startupDelayAndRebufferAccounting() {
        // One rung of 80 kb/s (60 000 B per 6 s segment) over a constant 160 kb/s link with no latency:
        // each download takes 3 s; playback starts after the first segment (6 s ≥ 4 s); never stalls.
        let ladder = Ladder(rungs: [LadderRung(id: "a", bitrate: .kilobitsPerSecond(80))])!
        let sizes = ABRSimulator.constantBitrateSizes(ladder: ladder, segmentCount: 10, segmentDurationSeconds: 6)
        let link = BandwidthTrace(name: "flat", periods: [.init(durationSeconds: 10, bitsPerSecond: 160_000)])
        let simulator = ABRSimulator(startupBufferSeconds: 4, maximumBufferSeconds: 30, requestLatencySeconds: 0)
        let report = simulator.run(rule: ThroughputRule(), ladder: ladder, segmentSizes: sizes, segmentDurationSeconds: 6, trace: link)
        #expect(report.startupDelaySeconds == 3)
        #expect(report.rebufferSeconds == 0)
        #expect(report.averageBitrate == .kilobitsPerSecond(80))
        // Over a 40 kb/s link each download takes 12 s for 6 s of audio: 6 s of stall per segment after the first.
        let slow = BandwidthTrace(name: "slow", periods: [.init(durationSeconds: 10, bitsPerSecond: 40_000)])
        let stalled = simulator.run(rule: ThroughputRule(), ladder: ladder, segmentSizes: sizes, segmentDurationSeconds: 6, trace: slow)
        #expect(stalled.startupDelaySeconds == 12)
        #expect(stalled.rebufferSeconds == 54)
        #expect(abs(stalled.rebufferRatio - 54.0 / 114.0) < 1e-12)
        let empty = simulator.run(rule: ThroughputRule(), ladder: ladder, segmentSizes: [[]], segmentDurationSeconds: 6, trace: slow)
        #expect(empty.averageBitrate == Bitrate(bitsPerSecond: 0) && empty.rebufferRatio == 0)
    }

    @Test func traceTransferTimes() {
        let trace = BandwidthTrace(name: "t", periods: [.init(durationSeconds: 10, bitsPerSecond: 1_000_000),
                                                        .init(durationSeconds: 10, bitsPerSecond: 500_000)])
        #expect(trace.durationSeconds == 20)
        #expect(trace.transferSeconds(bits: 5_000_000, startingAt: 0) == 5)
        #expect(trace.transferSeconds(bits: 12_000_000, startingAt: 0) == 14)
        #expect(trace.transferSeconds(bits: 1_000_000, startingAt: 15) == 2)
        // The trace repeats: 2.5 Mbit from t = 19 s is 0.5 Mbit in the last second, then 2 s at 1 Mb/s.
        #expect(trace.transferSeconds(bits: 2_500_000, startingAt: 19) == 3)
        #expect(trace.transferSeconds(bits: 1_000_000, startingAt: 45) == 1) // 45 s is 5 s into the second pass
        let oscillating = BandwidthTrace.oscillating(high: .kilobitsPerSecond(600), low: .kilobitsPerSecond(100), halfPeriodSeconds: 20, totalSeconds: 100)
        #expect(oscillating.periods.map(\.bitsPerSecond) == [600_000, 100_000, 600_000, 100_000, 600_000])
        #expect(BandwidthTrace.stepDown(high: .kilobitsPerSecond(2), low: .kilobitsPerSecond(1), atSeconds: 3, totalSeconds: 10).periods
                == [.init(durationSeconds: 3, bitsPerSecond: 2_000), .init(durationSeconds: 7, bitsPerSecond: 1_000)])
    }

    @Test func splitMix64IsTheReferenceGenerator() {
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
        let unit = rng.nextUnit()
        #expect(unit >= 0 && unit < 1)
    }

    @Test func throughputEstimator() {
        var estimator = ThroughputEstimator()
        #expect(estimator.estimate == nil)
        estimator.record(bytes: 125_000, durationSeconds: 1) // 1 Mb/s
        #expect(estimator.estimate == .kilobitsPerSecond(1_000))
        for _ in 0..<10 { estimator.record(bytes: 125_000, durationSeconds: 1) }
        #expect(estimator.estimate == .kilobitsPerSecond(1_000))
        // A drop pulls the estimate down quickly (fast EWMA); a rise is believed slowly (slow EWMA).
        estimator.record(bytes: 25_000, durationSeconds: 1) // 200 kb/s
        let afterDrop = estimator.estimate!.doubleValue
        #expect(afterDrop < 800_000 && afterDrop > 200_000)
        var rising = ThroughputEstimator()
        for _ in 0..<10 { rising.record(bytes: 25_000, durationSeconds: 1) }
        rising.record(bytes: 125_000, durationSeconds: 1)
        #expect(rising.estimate!.doubleValue < 400_000)
        // Ignored samples.
        var filtered = ThroughputEstimator(minimumSampleBytes: 16_000)
        filtered.record(bytes: 1_000, durationSeconds: 0.01)
        filtered.record(bytes: 20_000, durationSeconds: 0)
        #expect(filtered.estimate == nil && filtered.sampleCount == 0)
        filtered.record(bytes: 20_000, duration: .milliseconds(500))
        #expect(filtered.estimate == .kilobitsPerSecond(320))
    }

    @Test func harmonicMeanEstimator() {
        var estimator = HarmonicMeanEstimator(windowSize: 2)
        #expect(estimator.estimate == nil)
        estimator.record(bytes: 125_000, durationSeconds: 1)  // 1 Mb/s
        estimator.record(bytes: 62_500, durationSeconds: 1)   // 500 kb/s
        #expect(estimator.estimate == Bitrate(bitsPerSecond: 666_667))
        estimator.record(bytes: 62_500, durationSeconds: 1)   // the 1 Mb/s sample leaves the window
        #expect(estimator.estimate == .kilobitsPerSecond(500))
        estimator.record(bytes: 0, durationSeconds: 1)
        #expect(estimator.estimate == .kilobitsPerSecond(500))
    }

    @Test func bolaIsBufferDriven() {
        var bola = BOLARule(limitsUpswitchToThroughput: false)
        func context(_ buffer: Double, previous: Int? = nil, estimate: Bitrate? = nil) -> ABRContext {
            ABRContext(ladder: Self.ladder, bufferSeconds: buffer, throughputEstimate: estimate, previousRung: previous, segmentDurationSeconds: 6)
        }
        #expect(bola.chooseRung(context(0)) == 0)
        #expect(bola.chooseRung(context(bola.maximumBufferSeconds(rungCount: 5))) == 4)
        var last = 0
        for tenth in 0...300 {
            let rung = bola.bufferBasedRung(context(Double(tenth) / 10))
            #expect(rung >= last)
            last = rung
            // The thresholds agree with the objective.
            #expect(Double(tenth) / 10 >= bola.minimumBufferSeconds(forRung: rung, context(0)) - 1e-9)
        }
        #expect(bola.minimumBufferSeconds(forRung: 0, context(0)) == 0)
        // With the throughput cap, an upswitch stops at what the throughput sustains (or the previous rung).
        var capped = BOLARule()
        #expect(capped.chooseRung(context(30, previous: 1, estimate: .kilobitsPerSecond(200))) == 2)
        #expect(capped.chooseRung(context(30, previous: 3, estimate: .kilobitsPerSecond(100))) == 3)
        #expect(capped.chooseRung(context(30, previous: 1)) == 1)
        #expect(capped.chooseRung(context(0, previous: 3, estimate: .kilobitsPerSecond(100))) == 0)
        // A one-rung ladder.
        let single = Ladder(rungs: [LadderRung(id: "x", bitrate: .kilobitsPerSecond(64))])!
        #expect(bola.bufferBasedRung(ABRContext(ladder: single, bufferSeconds: 5, throughputEstimate: nil, previousRung: nil, segmentDurationSeconds: 6)) == 0)
        #expect(bola.minimumBufferSeconds(forRung: 0, ABRContext(ladder: single, bufferSeconds: 5, throughputEstimate: nil, previousRung: nil, segmentDurationSeconds: 6)) == 0)
        // Real segment sizes take precedence over nominal bit rates.
        let sized = ABRContext(ladder: Self.ladder, bufferSeconds: 0, throughputEstimate: nil, previousRung: nil,
                               segmentDurationSeconds: 6, nextSegmentBytes: [1, 2, 3, 4, 5])
        #expect(sized.segmentBits(rung: 2) == 24)
        #expect(context(0).segmentBits(rung: 0) == 288_000)
    }

    @Test func hybridModes() {
        var hybrid = HybridRule()
        func context(_ buffer: Double, previous: Int?) -> ABRContext {
            ABRContext(ladder: Self.ladder, bufferSeconds: buffer, throughputEstimate: .kilobitsPerSecond(1_000), previousRung: previous, segmentDurationSeconds: 6)
        }
        #expect(hybrid.chooseRung(context(0, previous: nil)) == 0) // no buffer yet: the lowest rung
        #expect(!hybrid.usingBOLA)
        #expect(hybrid.chooseRung(context(6, previous: 0)) == 3) // throughput says 900; 1 Mb/s × 0.5 × 6/6 = 500 kb/s caps it at 320
        #expect(hybrid.chooseRung(context(12, previous: 3)) == 3) // BOLA, placeholder keeps rung 3
        #expect(hybrid.usingBOLA && hybrid.placeholderSeconds > 0)
        let placeholder = hybrid.placeholderSeconds
        _ = hybrid.chooseRung(context(15, previous: 3))
        #expect(hybrid.placeholderSeconds == max(0, placeholder - 3))
        _ = hybrid.chooseRung(context(5, previous: 3)) // below the switch-off level
        #expect(!hybrid.usingBOLA && hybrid.placeholderSeconds == 0)
        var noEstimate = HybridRule(throughput: ThroughputRule(startRung: 1))
        #expect(noEstimate.chooseRung(ABRContext(ladder: Self.ladder, bufferSeconds: 0, throughputEstimate: nil, previousRung: nil, segmentDurationSeconds: 6)) == 1)
    }

    @Test func ladders() {
        #expect(Ladder(rungs: []) == nil)
        #expect(Ladder(rungs: [LadderRung(id: "z", bitrate: Bitrate(bitsPerSecond: 0))]) == nil)
        #expect(Self.ladder.rungs.map(\.id) == ["r48", "r96", "r160", "r320", "r900"])
        #expect(Self.ladder.highestIndex(notAbove: 10) == 0)
        #expect(Self.ladder.highestIndex(notAbove: 320_000) == 3)
        let fromRenditions = Ladder(renditions: [Fixtures.aac256, Fixtures.aac128])!
        #expect(fromRenditions.rungs.map(\.id) == ["aac-128", "aac-256"])
        #expect(fromRenditions.rungs[0].bitrate == Fixtures.aac128.averageBitrate)
    }

    @Test func startingRenditionFromClientHints() {
        let ladder = Self.ladder
        func start(_ saveData: String?, _ ect: String?, _ downlink: String?) -> Int {
            startingRendition(ladder: ladder, hints: ClientHints(saveDataHeader: saveData, ectHeader: ect, downlinkHeader: downlink))
        }
        #expect(start("on", "4g", "10") == 0)
        #expect(start(" On ", nil, nil) == 0)
        #expect(start("off", nil, nil) == 2) // no bandwidth hint: the middle rung
        #expect(start(nil, nil, nil) == 2)
        #expect(start(nil, "slow-2g", nil) == 0)
        #expect(start(nil, "2g", nil) == 0)
        #expect(start(nil, "3g", nil) == 3)      // 700 kb/s × 0.5 = 350 kb/s → 320
        #expect(start(nil, "4g", nil) == 2)      // 4g alone caps nothing
        #expect(start(nil, "4g", "10") == 4)     // 5 Mb/s → FLAC
        #expect(start(nil, "4G", "1.7") == 3)    // 850 kb/s → 320
        #expect(start(nil, "3g", "10") == 3)     // the smaller hint wins
        #expect(start(nil, nil, "0.25") == 1)    // 125 kb/s → 96
        #expect(start(nil, nil, "0") == 0)
        #expect(start(nil, "5g", "fast") == 2)   // unknown values are ignored
        #expect(start(nil, nil, "-1") == 2)
        #expect(ClientHints(saveDataHeader: nil, ectHeader: nil, downlinkHeader: "1.725").downlink == Bitrate(bitsPerSecond: 1_725_000))
        #expect(startingRendition(ladder: ladder, hints: ClientHints(), policy: StartingRenditionPolicy(defaultRung: 9)) == 4)
        #expect(startingRendition(ladder: ladder, hints: ClientHints(downlink: .kilobitsPerSecond(1_000)), policy: StartingRenditionPolicy(safetyFactor: 1)) == 4)
        #expect(ClientHints.EffectiveConnectionType.fourG.typicalBitsPerSecond == nil)
    }
}
