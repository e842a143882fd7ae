/// Timed metadata in CMAF fragments: an ID3v2.4 tag carried in a version-1 `emsg` box, as the
/// AOM specification "Carriage of ID3 Timed Metadata in CMAF" defines it.
///
/// An `emsg` box goes before a fragment's `moof`. LL-HLS players that read fMP4 timed metadata
/// (Apple's, hls.js) and DASH players told by an `InbandEventStream` with ``id3Scheme``
/// (dash.js, Shaka, ExoPlayer) surface it as a cue at ``id3Event(title:presentationTime:timescale:id:)``'s
/// `presentationTime`: a live show's now-playing title.
public enum TimedMetadata {
    /// The `emsg` scheme of ID3 timed metadata (`InbandEventStream@schemeIdUri` in an MPD).
    public static let id3Scheme = "https://aomedia.org/emsg/ID3"

    /// An `emsg` box (version 1) whose message is an ID3v2.4 tag with the title (`TIT2`).
    ///
    /// - Parameters:
    ///   - title: the now-playing title (UTF-8).
    ///   - presentationTime: when the title starts, in `timescale` units on the track's
    ///     timeline (the decode time of the fragment it precedes).
    ///   - timescale: the track's timescale.
    ///   - id: the event's id: the same for repetitions of one title, so that players that have
    ///     seen it once ignore the repeats.
    public static func id3Event(title: String, presentationTime: UInt64, timescale: UInt32, id: UInt32) -> [UInt8] {
        var tags = Tags()
        tags.title = title
        let tag = MP3FileWriter.id3v2(ProgressiveMetadata(tags: tags))
        var writer = MP4ByteWriter(reservingCapacity: 64 + id3Scheme.utf8.count + tag.count)
        writer.fullBox("emsg", version: 1) { box in
            box.u32(timescale)
            box.u64(presentationTime)
            // Until the next title: unknown when it starts.
            box.u32(0xFFFF_FFFF)
            box.u32(id)
            box.cString(id3Scheme)
            box.cString("")
            box.append(tag)
        }
        return writer.bytes
    }
}
