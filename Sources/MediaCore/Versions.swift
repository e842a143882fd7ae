internal import CFFmpeg
internal import COpus
internal import CLame
internal import CFLAC

/// Versions of the C codec libraries MediaCore runs on (as the libraries report them at run time).
public struct LibraryVersions: Sendable, Hashable, Codable {
    public var avformat: String
    public var avcodec: String
    public var avutil: String
    public var swresample: String
    public var opus: String
    public var lame: String
    public var flac: String

    /// The versions linked into this process.
    public static var current: LibraryVersions {
        func dotted(_ v: UInt32) -> String { "\(v >> 16).\((v >> 8) & 0xFF).\(v & 0xFF)" }
        return LibraryVersions(
            avformat: dotted(avformat_version()),
            avcodec: dotted(avcodec_version()),
            avutil: dotted(avutil_version()),
            swresample: dotted(swresample_version()),
            opus: String(cString: opus_get_version_string()),
            lame: String(cString: get_lame_version()),
            flac: String(cString: veza_flac_version())
        )
    }
}
