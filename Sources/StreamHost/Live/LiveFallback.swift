import Foundation
import Logging
import MediaCore
import Synchronization

/// Audio a show plays while its source is away, instead of silence: another mount's show (as
/// its ladder hears it), or tracks of the catalog in turn. 48 kHz interleaved stereo, taken in
/// real time by the show's fallback clock (``take(frames:)``); what is missing is silence.
///
/// Another mount's audio arrives as that show publishes it (``push(_:)``) and at most
/// ``capacityFrames`` are kept (the newest). Tracks are decoded ahead by a task of their own,
/// about ``leadSeconds`` ahead of what the show has taken, and cost nothing once that lead is
/// full.
final class LiveFallbackFeed: Sendable {
    /// What the feed plays, for the API and logs (`mount:talk`, `tracks:3`).
    let description: String
    let channelCount: Int
    let capacityFrames: Int
    private let samples = Mutex<[Float]>([])
    private let onClose = Mutex<(@Sendable () -> Void)?>(nil)

    /// Seconds of catalog tracks decoded ahead.
    static let leadSeconds = 5.0

    init(description: String, channelCount: Int, capacityFrames: Int) {
        self.description = description
        self.channelCount = channelCount
        self.capacityFrames = capacityFrames
    }

    /// Adds audio at the end, dropping the oldest beyond the capacity.
    func push(_ audio: [Float]) {
        samples.withLock { samples in
            samples += audio
            let excess = samples.count - capacityFrames * channelCount
            if excess > 0 { samples.removeFirst(excess) }
        }
    }

    /// Frames buffered now.
    var bufferedFrames: Int { samples.withLock { $0.count } / channelCount }

    /// `frames` frames: the oldest buffered, then silence for what is missing.
    func take(frames: Int) -> [Float] {
        var out = samples.withLock { samples in
            let count = min(samples.count, frames * channelCount)
            defer { samples.removeFirst(count) }
            return Array(samples[0..<count])
        }
        if out.count < frames * channelCount { out += [Float](repeating: 0, count: frames * channelCount - out.count) }
        return out
    }

    /// Runs `action` when the feed is closed (its show ended).
    func whenClosed(_ action: @escaping @Sendable () -> Void) {
        onClose.withLock { $0 = action }
    }

    /// Stops the feed: no more audio is decoded or received for it.
    func close() {
        onClose.withLock { action in
            action?()
            action = nil
        }
    }

    // MARK: Catalog tracks

    /// A feed of `tracks` played in turn, again from the first after the last, decoded from
    /// the local files `audio` finds for them (a track that cannot be played is skipped and
    /// logged; when none can, the feed is silence).
    static func tracks(_ tracks: [String], sampleRate: Int, channelCount: Int, logger: Logger,
                       audio: @escaping @Sendable (String) async throws -> String) -> LiveFallbackFeed {
        let feed = LiveFallbackFeed(description: "tracks:\(tracks.count)", channelCount: channelCount,
                                    capacityFrames: Int(leadSeconds * 2) * sampleRate)
        let task = Task.detached(priority: .utility) {
            var failures = 0
            while !Task.isCancelled, failures < tracks.count {
                for id in tracks where !Task.isCancelled {
                    do {
                        let path = try await audio(id)
                        try await feed.decode(path: path, sampleRate: sampleRate)
                        failures = 0
                    } catch is CancellationError {
                        return
                    } catch {
                        failures += 1
                        logger.warning("live fallback track cannot be played", metadata: ["track": "\(id)", "error": "\(error)"])
                    }
                }
            }
        }
        feed.whenClosed { task.cancel() }
        return feed
    }

    /// Decodes a file into the feed at `sampleRate`, keeping about ``leadSeconds`` ahead.
    private func decode(path: String, sampleRate: Int) async throws {
        let decoder = try AudioDecoder(path: path)
        var resampler: Resampler?
        while let block = try decoder.read() {
            try Task.checkCancellation()
            var audio = block.samples
            if block.sampleRate != sampleRate {
                if resampler == nil {
                    resampler = try Resampler(inputRate: block.sampleRate, outputRate: sampleRate, channelCount: block.channelCount)
                }
                audio = resampler!.process(audio)
            }
            if block.channelCount != channelCount {
                audio = block.channelCount == 1 ? audio.flatMap { [Float](repeating: $0, count: channelCount) } : []
            }
            push(audio)
            while bufferedFrames > Int(Self.leadSeconds * Double(sampleRate)) {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }
}
