/// Streaming state of a polyphase conversion: planar history buffer, position and counters.
///
/// Buffer coordinates: frame 0 of the buffer is `K/2 − 1` frames before the first input frame
/// (those are zeros), so output frame `n`, at input position `p = n·M/L`, uses the window of
/// `K` frames starting at buffer index `floor(p)`. `windowStart` and `phase` hold `floor(p)` and
/// `(n·M) mod L` for the next output frame.
struct PolyphaseResamplerCore: Sendable {
    let bank: PolyphaseFilterBank
    let channelCount: Int
    /// `channelCount` planes of `capacity` frames each.
    private var planes: [Float]
    private var capacity: Int
    /// Buffer index one past the last frame received.
    private var end: Int
    private var windowStart: Int
    private var phase: Int
    private var inputFrames: Int
    private var outputFrames: Int

    init(bank: PolyphaseFilterBank, channelCount: Int) {
        self.bank = bank
        self.channelCount = channelCount
        capacity = max(4096, 2 * bank.tapsPerPhase)
        planes = [Float](repeating: 0, count: capacity * channelCount)
        end = bank.tapsPerPhase / 2 - 1
        windowStart = 0
        phase = 0
        inputFrames = 0
        outputFrames = 0
    }

    mutating func process(_ input: UnsafeBufferPointer<Float>, appendingTo output: inout [Float]) {
        let frames = input.count / channelCount
        guard frames > 0 else { return }
        makeRoom(for: frames)
        let channels = channelCount
        let stride = capacity
        let first = end
        planes.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            let source = input.baseAddress!
            if channels == 2 {
                let left = base + first
                let right = base + stride + first
                for frame in 0..<frames {
                    left[frame] = source[2 * frame]
                    right[frame] = source[2 * frame + 1]
                }
            } else {
                for channel in 0..<channels {
                    let plane = base + channel * stride + first
                    for frame in 0..<frames {
                        plane[frame] = source[frame * channels + channel]
                    }
                }
            }
        }
        end += frames
        inputFrames += frames
        render(limit: Int.max, appendingTo: &output)
    }

    mutating func flush(appendingTo output: inout [Float]) {
        let up = bank.upFactor
        let down = bank.downFactor
        // round(inputFrames × L / M), halves rounded up.
        let target = (2 * inputFrames * up + down) / (2 * down)
        let remaining = target - outputFrames
        if remaining > 0 {
            let lastWindowStart = windowStart + (phase + (remaining - 1) * down) / up
            let missing = lastWindowStart + bank.tapsPerPhase - end
            if missing > 0 {
                makeRoom(for: missing)
                for channel in 0..<channelCount {
                    let plane = channel * capacity
                    for index in end..<(end + missing) { planes[plane + index] = 0 }
                }
                end += missing
            }
            render(limit: remaining, appendingTo: &output)
        }
        self = PolyphaseResamplerCore(bank: bank, channelCount: channelCount)
    }

    /// Ensures `frames` more frames fit after `end`, dropping frames no window needs any more.
    private mutating func makeRoom(for frames: Int) {
        if end + frames <= capacity { return }
        let keepFrom = min(windowStart, end)
        let kept = end - keepFrom
        let newCapacity = max(capacity, kept + frames)
        if newCapacity == capacity {
            let stride = capacity
            let channels = channelCount
            planes.withUnsafeMutableBufferPointer { buffer in
                let base = buffer.baseAddress!
                for channel in 0..<channels {
                    let plane = base + channel * stride
                    plane.update(from: plane + keepFrom, count: kept)
                }
            }
        } else {
            var grown = [Float](repeating: 0, count: newCapacity * channelCount)
            for channel in 0..<channelCount {
                for index in 0..<kept {
                    grown[channel * newCapacity + index] = planes[channel * capacity + keepFrom + index]
                }
            }
            planes = grown
            capacity = newCapacity
        }
        end = kept
        windowStart -= keepFrom
    }

    /// Computes every output frame whose window is complete (at most `limit`).
    private mutating func render(limit: Int, appendingTo output: inout [Float]) {
        let taps = bank.tapsPerPhase
        let up = bank.upFactor
        let down = bank.downFactor
        let spare = end - taps - windowStart
        guard spare >= 0 else { return }
        let count = min(limit, ((spare + 1) * up - phase + down - 1) / down)
        guard count > 0 else { return }
        let channels = channelCount
        let first = output.count
        output.append(contentsOf: repeatElement(0, count: count * channels))
        var start = windowStart
        var currentPhase = phase
        let stride = capacity
        bank.coefficients.withUnsafeBufferPointer { coefficients in
            planes.withUnsafeBufferPointer { planeBuffer in
                output.withUnsafeMutableBufferPointer { outputBuffer in
                    polyphaseConvolve(
                        coefficients: coefficients.baseAddress!,
                        taps: taps,
                        up: up,
                        down: down,
                        planes: planeBuffer.baseAddress!,
                        planeStride: stride,
                        channels: channels,
                        windowStart: &start,
                        phase: &currentPhase,
                        frames: count,
                        output: outputBuffer.baseAddress! + first
                    )
                }
            }
        }
        windowStart = start
        phase = currentPhase
        outputFrames += count
    }
}
