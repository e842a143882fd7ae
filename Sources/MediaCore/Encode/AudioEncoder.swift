/// One encoded audio access unit.
public struct EncodedPacket: Sendable, Hashable {
    public var data: [UInt8]
    /// Duration in samples of the track's timescale.
    public var duration: Int
    public init(data: [UInt8], duration: Int) {
        self.data = data
        self.duration = duration
    }
}

/// A bit rate in bits per second.
public struct AudioBitrate: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var bitsPerSecond: Int
    public init(bitsPerSecond: Int) { self.bitsPerSecond = bitsPerSecond }
    /// `kilobits` × 1000 bits per second.
    public static func kbps(_ kilobits: Int) -> AudioBitrate { AudioBitrate(bitsPerSecond: kilobits * 1000) }
    public static func < (a: AudioBitrate, b: AudioBitrate) -> Bool { a.bitsPerSecond < b.bitsPerSecond }
    public var description: String { "\(bitsPerSecond / 1000) kb/s" }
}

/// The codecs MediaCore encodes.
public enum AudioCodecKind: String, Sendable, Hashable, Codable {
    case aac, opus, mp3, flac
}

/// How to encode one rendition.
public enum EncoderSettings: Sendable, Hashable {
    /// AAC-LC (FFmpeg's native encoder) at a constant target bit rate.
    case aac(bitrate: AudioBitrate)
    /// Opus (libopus, 48 kHz, 20 ms frames) at a target bit rate, VBR.
    case opus(bitrate: AudioBitrate)
    /// MP3 (LAME) at a constant bit rate.
    case mp3CBR(bitrate: AudioBitrate)
    /// MP3 (LAME) VBR at a quality from 0 (best) to 9.
    case mp3VBR(quality: Int)
    /// FLAC (libFLAC), lossless at `bitsPerSample` (16 or 24), compression level 0…8.
    case flac(bitsPerSample: Int, compressionLevel: Int)

    public var codec: AudioCodecKind {
        switch self {
        case .aac: .aac
        case .opus: .opus
        case .mp3CBR, .mp3VBR: .mp3
        case .flac: .flac
        }
    }
}

/// What an encoder produces: enough to package it.
public struct EncodedFormat: Sendable, Hashable {
    public var codec: AudioCodecKind
    public var sampleRate: Int
    public var channelCount: Int
    /// Samples per packet (the last packet may be shorter).
    public var frameSize: Int
    /// Encoder delay (priming) in samples at ``sampleRate``: samples to skip at the start.
    public var priming: Int
    /// Codec configuration: AAC AudioSpecificConfig, FLAC STREAMINFO (34 bytes, final after
    /// `finish()`), MP3 LAME/Info frame (after `finish()`); empty for Opus.
    public var codecConfiguration: [UInt8]
    /// Target bit rate, when the settings give one.
    public var bitrate: AudioBitrate?
    /// Bits per sample of the encoded stream (FLAC), or 16 for lossy codecs.
    public var bitsPerSample: Int
}

/// An encoder: interleaved Float32 frames in, packets out.
///
/// Feed any number of frames per call; packets come out as whole encoder frames are ready.
/// ``finish()`` flushes the encoder's delay line and returns the last packets; afterwards
/// ``format`` holds any configuration that depends on the whole stream (FLAC's STREAMINFO with
/// its MD5, MP3's LAME tag). Encoders own C handles and are used from one task at a time.
public protocol AudioEncoder: AnyObject {
    var format: EncodedFormat { get }
    func encode(_ interleaved: UnsafeBufferPointer<Float>) throws(MediaError) -> [EncodedPacket]
    func finish() throws(MediaError) -> [EncodedPacket]
}

extension AudioEncoder {
    /// Convenience for arrays.
    public func encode(_ interleaved: [Float]) throws(MediaError) -> [EncodedPacket] {
        var result: Result<[EncodedPacket], MediaError> = .success([])
        interleaved.withUnsafeBufferPointer { buffer in
            do { result = .success(try encode(buffer)) } catch let error as MediaError { result = .failure(error) } catch {}
        }
        return try result.get()
    }
}

/// Makes the encoder for `settings`.
public func makeEncoder(_ settings: EncoderSettings, sampleRate: Int, channelCount: Int) throws(MediaError) -> any AudioEncoder {
    switch settings {
    case .aac(let bitrate):
        return try AACEncoder(sampleRate: sampleRate, channelCount: channelCount, bitrate: bitrate)
    case .opus(let bitrate):
        return try OpusEncoder(sampleRate: sampleRate, channelCount: channelCount, bitrate: bitrate)
    case .mp3CBR(let bitrate):
        return try MP3Encoder(sampleRate: sampleRate, channelCount: channelCount, mode: .cbr(bitrate))
    case .mp3VBR(let quality):
        return try MP3Encoder(sampleRate: sampleRate, channelCount: channelCount, mode: .vbr(quality: quality))
    case .flac(let bits, let level):
        return try FLACEncoder(sampleRate: sampleRate, channelCount: channelCount, bitsPerSample: bits, compressionLevel: level)
    }
}

/// Collects interleaved frames until whole encoder frames are available.
struct FrameAccumulator {
    let channelCount: Int
    let frameSize: Int
    private(set) var samples: [Float] = []

    init(channelCount: Int, frameSize: Int) {
        self.channelCount = channelCount
        self.frameSize = frameSize
        samples.reserveCapacity(frameSize * channelCount * 2)
    }

    mutating func append(_ input: UnsafeBufferPointer<Float>) { samples.append(contentsOf: input) }

    /// Calls `body` with each whole frame, then keeps the remainder.
    mutating func drain(_ body: (UnsafeBufferPointer<Float>) throws(MediaError) -> Void) throws(MediaError) {
        let whole = samples.count / (frameSize * channelCount)
        guard whole > 0 else { return }
        var failure: MediaError?
        samples.withUnsafeBufferPointer { all in
            for f in 0..<whole where failure == nil {
                let start = f * frameSize * channelCount
                do throws(MediaError) {
                    try body(UnsafeBufferPointer(rebasing: all[start..<start + frameSize * channelCount]))
                } catch { failure = error }
            }
        }
        if let failure { throw failure }
        samples.removeFirst(whole * frameSize * channelCount)
    }

    /// The remaining partial frame, zero-padded to a whole frame, and its real length.
    mutating func takeRemainder() -> (padded: [Float], frames: Int)? {
        guard !samples.isEmpty else { return nil }
        let frames = samples.count / channelCount
        var padded = samples
        padded += [Float](repeating: 0, count: (frameSize - frames) * channelCount)
        samples.removeAll()
        return (padded, frames)
    }
}
