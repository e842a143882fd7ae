import StreamKit

/// Renditions shared by the golden tests: three segments of AAC (1024-sample frames, 282 frames
/// per full segment = 6.016 s) and Opus (960-sample frames, 6.000 s).
enum Fixtures {
    static func aac(_ id: String, sizes: [Int64], addressing: SegmentAddressing? = nil, firstNumber: Int64 = 1) -> Rendition {
        let durations: [Int64] = [288_768, 288_768, 100_352]
        var start: Int64 = 0
        var segments: [SegmentInfo] = []
        for (index, size) in sizes.enumerated() {
            segments.append(SegmentInfo(number: firstNumber + Int64(index), start: start, duration: durations[index], byteSize: size))
            start += durations[index]
        }
        return Rendition(id: id, codec: .aacLC, sampleRate: 48_000, channelCount: 2, timescale: 48_000,
                         addressing: addressing ?? .template(initialization: "$RepresentationID$/init.mp4", media: "$RepresentationID$/seg-$Number$.m4s"),
                         segments: segments)
    }

    static let aac128 = aac("aac-128", sizes: [96_000, 97_000, 33_000])
    static let aac256 = aac("aac-256", sizes: [192_000, 193_000, 66_000])
    static let opus96 = Rendition(
        id: "opus-96", codec: .opus, sampleRate: 48_000, channelCount: 2, timescale: 48_000, language: "en",
        addressing: .template(initialization: "$RepresentationID$/init.mp4", media: "$RepresentationID$/seg-$Number$.m4s"),
        segments: [
            SegmentInfo(number: 1, start: 0, duration: 288_000, byteSize: 72_000),
            SegmentInfo(number: 2, start: 288_000, duration: 288_000, byteSize: 72_500),
            SegmentInfo(number: 3, start: 576_000, duration: 96_000, byteSize: 24_000),
        ])

    /// A long rendition: `count` segments of 6.016 s (a 1-hour track is 599 of them).
    static func long(count: Int, id: String = "aac-128") -> Rendition {
        var segments: [SegmentInfo] = []
        var start: Int64 = 0
        for index in 0..<count {
            let duration: Int64 = index == count - 1 ? 100_352 : 288_768
            segments.append(SegmentInfo(number: Int64(index), start: start, duration: duration, byteSize: 96_000 + Int64(index % 7) * 100))
            start += duration
        }
        return Rendition(id: id, codec: .aacLC, sampleRate: 48_000, channelCount: 2, timescale: 48_000,
                         addressing: .template(initialization: "init.mp4", media: "seg-$Number$.m4s"), segments: segments)
    }
}
