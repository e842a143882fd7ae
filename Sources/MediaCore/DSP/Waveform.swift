/// Resolution of waveform peak values.
public enum WaveformBits: Int, Sendable, Hashable, Codable {
    case eight = 8
    case sixteen = 16
}

/// Min/max peaks of a track at one zoom level, in BBC audiowaveform's data model
/// (what peaks.js reads): per pixel and channel, a (min, max) pair of signed integers.
public struct Waveform: Sendable, Hashable {
    public var sampleRate: Int
    /// Input frames summarised by one pixel.
    public var samplesPerPixel: Int
    public var bits: WaveformBits
    /// Channels in ``data`` (1 unless the channels were kept apart).
    public var channels: Int
    /// `min, max` per channel per pixel: `[p0c0min, p0c0max, p0c1min, p0c1max, p1c0min, …]`,
    /// in −128…127 (8 bits) or −32768…32767 (16 bits).
    public var data: [Int16]

    public init(sampleRate: Int, samplesPerPixel: Int, bits: WaveformBits, channels: Int, data: [Int16]) {
        self.sampleRate = sampleRate
        self.samplesPerPixel = samplesPerPixel
        self.bits = bits
        self.channels = channels
        self.data = data
    }

    /// Pixels (``data`` holds `2 × channels` values for each).
    public var length: Int { data.count / (2 * channels) }

    /// audiowaveform's JSON format, version 2.
    public func json() -> String {
        var out = "{\"version\":2,\"channels\":\(channels),\"sample_rate\":\(sampleRate),"
        out += "\"samples_per_pixel\":\(samplesPerPixel),\"bits\":\(bits.rawValue),\"length\":\(length),\"data\":["
        out.reserveCapacity(out.utf8.count + data.count * 5)
        for (i, v) in data.enumerated() {
            if i > 0 { out += "," }
            out += String(v)
        }
        return out + "]}"
    }

    /// audiowaveform's binary `.dat` format, version 2 (little-endian header of 24 bytes:
    /// version, flags (bit 0: 8-bit), sample rate, samples per pixel, length, channels; then data).
    public func dat() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(24 + data.count * (bits == .eight ? 1 : 2))
        func int32(_ v: Int) { let u = UInt32(truncatingIfNeeded: v); for s in stride(from: 0, to: 32, by: 8) { out.append(UInt8((u >> UInt32(s)) & 0xFF)) } }
        int32(2)
        int32(bits == .eight ? 1 : 0)
        int32(sampleRate)
        int32(samplesPerPixel)
        int32(length)
        int32(channels)
        for v in data {
            if bits == .eight {
                out.append(UInt8(bitPattern: Int8(v)))
            } else {
                let u = UInt16(bitPattern: v)
                out.append(UInt8(u & 0xFF))
                out.append(UInt8(u >> 8))
            }
        }
        return out
    }
}

/// Builds ``Waveform``s at several zoom levels in one pass over the PCM (alongside the
/// loudness meter, so a file is decoded once).
///
/// Samples are converted to 16-bit as audiowaveform reads them (×32768, clamped); unless
/// channels are kept apart, a frame's value is the mean of its channels. Peaks are kept at the
/// finest zoom level; coarser levels (whole multiples of it) are merged from them at the end.
/// A last partial pixel is kept. 8-bit values are the 16-bit ones shifted right by 8.
public struct WaveformBuilder: Sendable {
    public let sampleRate: Int
    public let channelCount: Int
    public let zoomLevels: [Int]
    public let bits: WaveformBits
    public let splitChannels: Bool
    private let outputChannels: Int
    private let finest: Int
    private var peaks: [Int16] = []
    private var minimum: [Int16]
    private var maximum: [Int16]
    private var filled = 0

    /// - Parameters:
    ///   - sampleRate: the input's rate in Hz.
    ///   - channelCount: interleaved channels of the input.
    ///   - samplesPerPixel: zoom levels; each must be a whole multiple of the smallest.
    ///   - bits: 8- or 16-bit peaks (audiowaveform's `--bits`).
    ///   - splitChannels: keep each channel's peaks (else one mixed channel).
    public init(sampleRate: Int, channelCount: Int, samplesPerPixel: [Int], bits: WaveformBits = .eight, splitChannels: Bool = false) throws(MediaError) {
        let levels = Array(Set(samplesPerPixel)).sorted()
        guard let finest = levels.first, finest >= 2, levels.allSatisfy({ $0 % finest == 0 && $0 <= 1 << 24 }) else {
            throw MediaError(.unsupportedParameters, "zoom levels must be ≥ 2 samples per pixel and multiples of the finest: \(samplesPerPixel)")
        }
        guard sampleRate > 0, channelCount > 0 else {
            throw MediaError(.unsupportedParameters, "waveform needs a positive sample rate and channel count")
        }
        self.sampleRate = sampleRate
        self.channelCount = channelCount
        self.zoomLevels = levels
        self.bits = bits
        self.splitChannels = splitChannels
        self.finest = finest
        outputChannels = splitChannels ? channelCount : 1
        minimum = [Int16](repeating: .max, count: outputChannels)
        maximum = [Int16](repeating: .min, count: outputChannels)
    }

    /// Samples per pixel giving `pixelsPerSecond` at `sampleRate` (at least 2).
    public static func samplesPerPixel(pixelsPerSecond: Int, sampleRate: Int) -> Int {
        max(2, sampleRate / max(1, pixelsPerSecond))
    }

    /// Adds interleaved Float32 frames.
    public mutating func process(_ interleaved: UnsafeBufferPointer<Float>) {
        let frames = interleaved.count / channelCount
        let scale = 1 / Float(channelCount)
        for n in 0..<frames {
            let base = n * channelCount
            if splitChannels {
                for c in 0..<channelCount {
                    let v = Self.toInt16(interleaved[base + c])
                    if v < minimum[c] { minimum[c] = v }
                    if v > maximum[c] { maximum[c] = v }
                }
            } else {
                var sum: Float = 0
                for c in 0..<channelCount { sum += interleaved[base + c] }
                let v = Self.toInt16(sum * scale)
                if v < minimum[0] { minimum[0] = v }
                if v > maximum[0] { maximum[0] = v }
            }
            filled += 1
            if filled == finest { closePixel() }
        }
    }

    public mutating func process(_ interleaved: [Float]) {
        interleaved.withUnsafeBufferPointer { process($0) }
    }

    /// The waveforms, one per zoom level (finest first).
    public func finish() -> [Waveform] {
        var copy = self
        if copy.filled > 0 { copy.closePixel() }
        let base = copy.peaks
        let stride = 2 * outputChannels
        return zoomLevels.map { level in
            let factor = level / finest
            var data: [Int16] = []
            data.reserveCapacity(base.count / factor + stride)
            var pixel = 0
            let pixels = base.count / stride
            while pixel < pixels {
                let end = min(pixels, pixel + factor)
                for c in 0..<outputChannels {
                    var lo = Int16.max, hi = Int16.min
                    for p in pixel..<end {
                        lo = min(lo, base[p * stride + 2 * c])
                        hi = max(hi, base[p * stride + 2 * c + 1])
                    }
                    data.append(bits == .eight ? lo >> 8 : lo)
                    data.append(bits == .eight ? hi >> 8 : hi)
                }
                pixel = end
            }
            return Waveform(sampleRate: sampleRate, samplesPerPixel: level, bits: bits, channels: outputChannels, data: data)
        }
    }

    private mutating func closePixel() {
        for c in 0..<outputChannels {
            peaks.append(minimum[c])
            peaks.append(maximum[c])
            minimum[c] = .max
            maximum[c] = .min
        }
        filled = 0
    }

    @inline(__always)
    static func toInt16(_ x: Float) -> Int16 {
        let scaled = (x * 32768).rounded(.towardZero)
        if scaled >= 32767 { return .max }
        if scaled <= -32768 { return .min }
        return Int16(scaled)
    }
}

/// One decode of a file feeding the loudness meter and the waveform builder together.
public enum MediaAnalysis {
    /// What ``analyze(path:decoder:waveform:)`` measured.
    public struct Result: Sendable {
        public var probe: MediaProbe
        public var loudness: LoudnessReport
        /// One waveform per requested zoom level (empty if none was requested).
        public var waveforms: [Waveform]
        public var decode: DecodeReport
    }

    /// Waveform settings for an analysis.
    public struct WaveformOptions: Sendable, Hashable {
        public var samplesPerPixel: [Int]
        public var bits: WaveformBits
        public var splitChannels: Bool
        public init(samplesPerPixel: [Int], bits: WaveformBits = .eight, splitChannels: Bool = false) {
            self.samplesPerPixel = samplesPerPixel
            self.bits = bits
            self.splitChannels = splitChannels
        }
    }

    /// Decodes `path` once, measuring loudness and (optionally) building waveforms on the way.
    public static func analyze(path: String, decoder options: DecoderOptions = DecoderOptions(),
                               waveform: WaveformOptions? = nil) throws(MediaError) -> Result {
        let decoder = try AudioDecoder(path: path, options: options)
        var meter = try LoudnessMeter(sampleRate: decoder.sampleRate, channelCount: decoder.channelCount)
        var builder = try waveform.map { options throws(MediaError) in
            try WaveformBuilder(sampleRate: decoder.sampleRate, channelCount: decoder.channelCount,
                                samplesPerPixel: options.samplesPerPixel, bits: options.bits, splitChannels: options.splitChannels)
        }
        while let block = try decoder.read() {
            block.samples.withUnsafeBufferPointer { samples in
                meter.process(samples)
                builder?.process(samples)
            }
        }
        return Result(probe: decoder.probe, loudness: meter.report, waveforms: builder?.finish() ?? [], decode: decoder.report)
    }
}
