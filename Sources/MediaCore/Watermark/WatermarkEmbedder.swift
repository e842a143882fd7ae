/// Embeds the watermark of one variant into a stream of PCM, block by block, as the ladder
/// produces it: the output has exactly the input's frames, time-aligned (the transform's latency
/// of one hop is held back and released by ``finish()``).
///
/// A stream embedded with ``WatermarkVariant/a`` and the same stream embedded with
/// ``WatermarkVariant/b`` differ only by the sign of the pattern, so a player can be served
/// either variant of each segment and hear the same music; which one it got, segment by
/// segment, is what ``WatermarkDetector`` reads back. Every channel gets the same factor per
/// time-frequency cell, so the watermark survives a downmix.
///
/// Not thread-safe (it holds transform scratch); one per stream.
public final class WatermarkEmbedder {
    /// The variant this embedder writes.
    public let variant: WatermarkVariant
    /// Interleaved channels of the stream.
    public let channelCount: Int
    /// The layout and strength.
    public let parameters: WatermarkParameters

    private let transform: WatermarkTransform
    /// Per channel: the last hop of input (the first half of the next frame), input not yet
    /// framed, and the second half of the last frame's synthesis waiting to be overlapped.
    private var history: [[Float]]
    private var queue: [[Float]]
    private var overlap: [[Float]]
    private var frame = 0
    private var inputFrames: Int64 = 0
    private var outputFrames: Int64 = 0
    private var chipScratch: [Float] = []
    private var spectrum: [Float]
    private var time: [Float]

    /// An embedder for `variant` of the watermark spread by `key`.
    ///
    /// - Parameters:
    ///   - key: The track's watermark key.
    ///   - variant: Which sign to embed.
    ///   - channelCount: Interleaved channels of the blocks given to `process(_:)`.
    ///   - parameters: Layout and strength; the detector must be given the same.
    /// - Throws: ``MediaError`` when the transform cannot be set up.
    public init(key: WatermarkKey, variant: WatermarkVariant, channelCount: Int, parameters: WatermarkParameters = .default) throws(MediaError) {
        precondition(channelCount > 0)
        self.variant = variant
        self.channelCount = channelCount
        self.parameters = parameters
        transform = try WatermarkTransform(key: key, parameters: parameters)
        let hop = parameters.hop
        history = Array(repeating: [Float](repeating: 0, count: hop), count: channelCount)
        queue = Array(repeating: [], count: channelCount)
        overlap = Array(repeating: [Float](repeating: 0, count: hop), count: channelCount)
        spectrum = [Float](repeating: 0, count: parameters.frameSize + 2)
        time = [Float](repeating: 0, count: parameters.frameSize)
    }

    /// Takes interleaved samples (a multiple of ``channelCount``) and returns the watermarked
    /// samples ready so far, interleaved (up to one hop fewer than given, in total).
    public func process(_ samples: [Float]) -> [Float] {
        precondition(samples.count % channelCount == 0, "a partial frame")
        let frames = samples.count / channelCount
        for channel in 0..<channelCount {
            queue[channel].reserveCapacity(queue[channel].count + frames)
            for index in 0..<frames { queue[channel].append(samples[index * channelCount + channel]) }
        }
        inputFrames += Int64(frames)
        return drain()
    }

    /// Takes a block; the returned block's ``PCMBuffer/startFrame`` continues the output's.
    public func process(_ buffer: PCMBuffer) -> PCMBuffer {
        precondition(buffer.channelCount == channelCount)
        let start = outputFrames
        let samples = process(buffer.samples)
        return PCMBuffer(samples: samples, channelCount: channelCount, sampleRate: buffer.sampleRate, startFrame: start)
    }

    /// The rest of the stream: the output then has exactly as many frames as the input.
    public func finish() -> [Float] {
        let hop = parameters.hop
        let owed = Int(inputFrames - outputFrames)
        // Zeros through two more frames release the held-back hop and the partial one.
        for channel in 0..<channelCount { queue[channel] += [Float](repeating: 0, count: 2 * hop - queue[channel].count % hop) }
        var output = drain()
        output.removeLast(output.count - owed * channelCount)
        outputFrames = inputFrames
        return output
    }

    private func drain() -> [Float] {
        let hop = parameters.hop
        let (fft, window, band, alphas) = (transform.fft, transform.window, transform.band, transform.alphas)
        var output: [Float] = []
        output.reserveCapacity((queue[0].count / hop) * hop * channelCount)
        var consumed = 0
        while queue[0].count - consumed >= hop {
            transform.chips.chips(frame: frame, into: &chipScratch)
            let sign = variant.sign
            let first = output.count
            output += [Float](repeating: 0, count: hop * channelCount)
            for channel in 0..<channelCount {
                for n in 0..<hop {
                    time[n] = history[channel][n] * window[n]
                    time[hop + n] = queue[channel][consumed + n] * window[hop + n]
                }
                spectrum.withUnsafeMutableBufferPointer { bins in
                    time.withUnsafeBufferPointer { fft.forward($0, into: bins) }
                    for (index, bin) in band.enumerated() {
                        let factor = 1 + sign * alphas[index] * chipScratch[index]
                        bins[2 * bin] *= factor
                        bins[2 * bin + 1] *= factor
                    }
                }
                spectrum.withUnsafeBufferPointer { bins in
                    time.withUnsafeMutableBufferPointer { fft.inverse(bins, into: $0) }
                }
                for n in 0..<hop {
                    output[first + n * channelCount + channel] = overlap[channel][n] + time[n] * window[n]
                    overlap[channel][n] = time[hop + n] * window[hop + n]
                    history[channel][n] = queue[channel][consumed + n]
                }
            }
            consumed += hop
            frame += 1
        }
        for channel in 0..<channelCount { queue[channel].removeFirst(consumed) }
        // Frame 0 covers the hop of zeros before the stream: its first half is not output.
        var result = output
        if !droppedLead, !result.isEmpty {
            result.removeFirst(hop * channelCount)
            droppedLead = true
        }
        let frames = result.count / channelCount
        outputFrames += Int64(frames)
        return result
    }

    private var droppedLead = false
}
