/// A block of decoded audio: interleaved 32-bit float samples in −1…1 (frame after frame,
/// channel after channel within a frame: `L R L R …`).
public struct PCMBuffer: Sendable, Hashable {
    /// Interleaved samples; `samples.count == frameCount * channelCount`.
    public var samples: [Float]
    /// Channels per frame.
    public var channelCount: Int
    /// Frames per second.
    public var sampleRate: Int
    /// Index of this block's first frame in the decoded stream (0 for the first block).
    public var startFrame: Int64

    public init(samples: [Float], channelCount: Int, sampleRate: Int, startFrame: Int64 = 0) {
        precondition(channelCount > 0 && samples.count % channelCount == 0, "samples must hold whole frames")
        self.samples = samples
        self.channelCount = channelCount
        self.sampleRate = sampleRate
        self.startFrame = startFrame
    }

    /// Frames (samples per channel) in this block.
    public var frameCount: Int { samples.count / channelCount }
}

/// How the decoder shapes channels.
public enum ChannelMode: Sendable, Hashable {
    /// Every channel as decoded, in the source's order.
    case preserve
    /// More than two channels are downmixed to stereo with the given coefficients;
    /// mono and stereo pass through unchanged.
    case downmixToStereo(DownmixCoefficients)
    /// Everything is mixed to one channel (stereo: (L + R) / 2; more: downmix to stereo first).
    case mono(DownmixCoefficients)
}

/// Gains of a surround-to-stereo downmix (Lo = L + c·C + s·Ls, Ro = R + c·C + s·Rs + ...).
public struct DownmixCoefficients: Sendable, Hashable {
    /// Gain of the centre channel into each side.
    public var center: Float
    /// Gain of each surround (side or back) channel into its side.
    public var surround: Float
    /// Gain of the LFE channel into each side.
    public var lfe: Float
    /// Scale the result so that the largest row sum is 1 (no overload on full-scale input).
    public var normalize: Bool

    public init(center: Float, surround: Float, lfe: Float, normalize: Bool) {
        self.center = center
        self.surround = surround
        self.lfe = lfe
        self.normalize = normalize
    }

    /// ITU-R BS.775 (Table 2): centre and surrounds at −3 dB (0.7071), LFE dropped, normalised.
    public static let bs775 = DownmixCoefficients(center: 0.70710677, surround: 0.70710677, lfe: 0, normalize: true)
    /// BS.775 coefficients without normalisation (louder; may clip on full-scale input).
    public static let bs775Unnormalized = DownmixCoefficients(center: 0.70710677, surround: 0.70710677, lfe: 0, normalize: false)
}

/// Where a source channel sits, for building a downmix matrix.
public enum ChannelPosition: Sendable, Hashable {
    case left, right, center, lfe, surroundLeft, surroundRight, backCenter, other
}

/// A channel-mixing matrix applied to interleaved blocks.
public struct ChannelMatrix: Sendable, Hashable {
    /// `gains[out][in]`.
    public var gains: [[Float]]
    public var inputCount: Int { gains.first?.count ?? 0 }
    public var outputCount: Int { gains.count }

    public init(gains: [[Float]]) { self.gains = gains }

    /// The stereo downmix of channels at `positions`.
    public static func stereo(from positions: [ChannelPosition], _ k: DownmixCoefficients) -> ChannelMatrix {
        var left = [Float](repeating: 0, count: positions.count)
        var right = left
        for (i, position) in positions.enumerated() {
            switch position {
            case .left: left[i] = 1
            case .right: right[i] = 1
            case .center: left[i] = k.center; right[i] = k.center
            case .lfe: left[i] = k.lfe; right[i] = k.lfe
            case .surroundLeft: left[i] = k.surround
            case .surroundRight: right[i] = k.surround
            case .backCenter, .other: left[i] = k.surround * 0.70710677; right[i] = k.surround * 0.70710677
            }
        }
        var matrix = ChannelMatrix(gains: [left, right])
        if k.normalize {
            let peak = max(left.reduce(0) { $0 + abs($1) }, right.reduce(0) { $0 + abs($1) })
            if peak > 1 { matrix.gains = matrix.gains.map { $0.map { $0 / peak } } }
        }
        return matrix
    }

    /// Mixes an interleaved block of `inputCount` channels into `outputCount` channels.
    public func apply(_ input: [Float]) -> [Float] {
        let inCount = inputCount, outCount = outputCount
        let frames = input.count / inCount
        return [Float](unsafeUninitializedCapacity: frames * outCount) { out, initialized in
            input.withUnsafeBufferPointer { src in
                for o in 0..<outCount {
                    let row = gains[o]
                    for f in 0..<frames {
                        var acc: Float = 0
                        let base = f * inCount
                        for i in 0..<inCount { acc += row[i] * src[base + i] }
                        out[f * outCount + o] = acc
                    }
                }
            }
            initialized = frames * outCount
        }
    }
}
