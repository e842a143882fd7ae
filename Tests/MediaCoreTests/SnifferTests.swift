import MediaCore
import Testing
import TestSupport

@Suite("Sniffing magic bytes")
struct SnifferTests {
    static func bytes(_ ascii: String, pad: Int = 64) -> [UInt8] {
        Array(ascii.utf8) + [UInt8](repeating: 0, count: pad)
    }

    /// An MPEG-1 layer III header: 128 kb/s, 44.1 kHz → 417-byte frames.
    static let mp3Frame: [UInt8] = [0xFF, 0xFB, 0x90, 0x00] + [UInt8](repeating: 0, count: 413)
    /// An ADTS header for a 10-byte frame.
    static let adtsFrame: [UInt8] = [0xFF, 0xF1, 0x50, 0x80, 0x01, 0x5F, 0xFC, 0, 0, 0]

    static func id3(size: Int) -> [UInt8] {
        [0x49, 0x44, 0x33, 4, 0, 0, UInt8((size >> 21) & 0x7F), UInt8((size >> 14) & 0x7F), UInt8((size >> 7) & 0x7F), UInt8(size & 0x7F)]
            + [UInt8](repeating: 0, count: size)
    }

    static func ogg(_ packet: [UInt8]) -> [UInt8] {
        Array("OggS".utf8) + [0, 2] + [UInt8](repeating: 0, count: 20) + [1, UInt8(packet.count)] + packet
    }

    static func wav(_ riff: String, tag: UInt16) -> [UInt8] {
        var b = Array(riff.utf8) + [0, 0, 0, 0] + Array("WAVE".utf8)
        if riff != "RIFF" { b += Array("ds64".utf8) + [28, 0, 0, 0] + [UInt8](repeating: 0, count: 28) }
        b += Array("fmt ".utf8) + [16, 0, 0, 0] + [UInt8(tag & 0xFF), UInt8(tag >> 8)] + [UInt8](repeating: 0, count: 14)
        return b
    }

    @Test func recognisesEveryFamily() throws {
        #expect(try Sniffer.sniff(Self.mp3Frame + Self.mp3Frame) == .mp3(layer: 3, id3v2: false))
        #expect(try Sniffer.sniff(Self.id3(size: 100) + Self.mp3Frame) == .mp3(layer: 3, id3v2: true))
        #expect(try Sniffer.sniff(Self.id3(size: 20) + Self.id3(size: 5) + Self.mp3Frame) == .mp3(layer: 3, id3v2: true))
        #expect(try Sniffer.sniff(Self.adtsFrame + Self.adtsFrame) == .adts(id3v2: false))
        #expect(try Sniffer.sniff([0, 0, 0, 0x20] + Self.bytes("ftypM4A ")) == .mp4(majorBrand: "M4A"))
        #expect(try Sniffer.sniff(Self.bytes("fLaC")) == .flac(id3v2: false))
        #expect(try Sniffer.sniff(Self.id3(size: 10) + Self.bytes("fLaC")) == .flac(id3v2: true))
        #expect(try Sniffer.sniff(Self.ogg([1] + Array("vorbis".utf8) + [0, 0])) == .ogg(.vorbis))
        #expect(try Sniffer.sniff(Self.ogg(Array("OpusHead".utf8) + [1, 2])) == .ogg(.opus))
        #expect(try Sniffer.sniff(Self.ogg([0x7F] + Array("FLAC".utf8) + [1, 0])) == .ogg(.flac))
        #expect(try Sniffer.sniff(Self.wav("RIFF", tag: 1)) == .wav(.riff, formatTag: .pcm))
        #expect(try Sniffer.sniff(Self.wav("RIFF", tag: 0xFFFE)) == .wav(.riff, formatTag: .extensible))
        #expect(try Sniffer.sniff(Self.wav("RF64", tag: 3)) == .wav(.rf64, formatTag: .ieeeFloat))
        #expect(try Sniffer.sniff(Self.wav("BW64", tag: 1)) == .wav(.bw64, formatTag: .pcm))
        #expect(try Sniffer.sniff(Self.bytes("FORM\0\0\0\0AIFF")) == .aiff(compressed: false))
        #expect(try Sniffer.sniff(Self.bytes("FORM\0\0\0\0AIFC")) == .aiff(compressed: true))
    }

    @Test("non-audio is refused with what it is", arguments: [
        ([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A], "PNG image"),
        ([0xFF, 0xD8, 0xFF, 0xE0], "JPEG image"),
        (Array("%PDF-1.7".utf8), "PDF document"),
        ([0x50, 0x4B, 0x03, 0x04], "ZIP archive"),
        ([0x1A, 0x45, 0xDF, 0xA3], "Matroska/WebM"),
        (Array("<!DOCTYPE html>".utf8), "XML/HTML text"),
        (Array("RIFF\0\0\0\0AVI LIST".utf8), "AVI video, not audio"),
        (Array("OggS".utf8) + [0, 2] + [UInt8](repeating: 0, count: 20) + [1, 8] + [0x80] + Array("theora".utf8), "Ogg Theora video"),
        ([], "empty file"),
        ([0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5], "unrecognised data starting with de ad be ef 01 02 03 04"),
    ] as [([UInt8], String)])
    func refusesNonAudio(bytes: [UInt8], seen: String) {
        #expect(throws: MediaError(.unsupportedFormat, seen)) { try Sniffer.sniff(bytes) }
    }

    @Test func lonelyFrameSyncIsNotEnough() {
        // One plausible MPEG header followed by garbage where the next header should be.
        var b = Self.mp3Frame + [0x12, 0x34, 0x56, 0x78]
        b += [UInt8](repeating: 0x55, count: 100)
        #expect(throws: MediaError.self) { try Sniffer.sniff(b) }
    }

    @Test func id3TagLargerThanTheFile() throws {
        var b = Self.id3(size: 10)
        b[6] = 0x7F  // declares ~256 MiB
        let error = #expect(throws: MediaError.self) { try Sniffer.sniff(b) }
        #expect(error?.code == .invalidData)
        #expect(error?.message.contains("ID3v2") == true)
    }

    @Test func sniffsFilesOnDisk() throws {
        #expect(try Sniffer.sniff(fileAt: try losslessFormats[0].path()) == .wav(.riff, formatTag: .pcm))
        #expect(try Sniffer.sniff(fileAt: try losslessFormats[3].path()) == .wav(.rf64, formatTag: .extensible))
        #expect(try Sniffer.sniff(fileAt: try lossyFormats[0].path()) == .mp3(layer: 3, id3v2: true))
        #expect(try Sniffer.sniff(fileAt: try lossyFormats[2].path()) == .mp4(majorBrand: "M4A"))
        let error = #expect(throws: MediaError.self) { try Sniffer.sniff(fileAt: "/nonexistent/file.mp3") }
        #expect(error?.code == .fileNotFound)
        #expect(throws: MediaError.self) { try Sniffer.sniff(fileAt: "/tmp") }
    }
}

@Suite("Tag sanitising")
struct TagSanitizerTests {
    @Test func keepsValidUnicode() {
        #expect(TagSanitizer.clean("Sigur Rós — Ágætis byrjun 🎵", maxBytes: 512) == "Sigur Rós — Ágætis byrjun 🎵")
    }

    @Test func removesControlAndBidiCharacters() {
        #expect(TagSanitizer.clean("a\u{0}b\u{7}c\u{1B}[31md\u{202E}e\u{9F}", maxBytes: 64) == "abc[31mde")
        #expect(TagSanitizer.clean("  line one\r\nline\ttwo  ", maxBytes: 64) == "line one line two")
        #expect(TagSanitizer.clean("\u{0}\u{1}\n ", maxBytes: 64) == nil)
    }

    @Test func readsInvalidUTF8AsLatin1() {
        let bytes: [UInt8] = [0x42, 0x6A, 0xF6, 0x72, 0x6B]  // "Björk" in ISO-8859-1
        #expect(TagSanitizer.clean(bytes, maxBytes: 64) == "Björk")
        #expect(TagSanitizer.clean([0xC3, 0xA9, 0x74, 0xC3, 0xA9], maxBytes: 64) == "été")
    }

    @Test func capsAtACharacterBoundary() throws {
        let capped = try #require(TagSanitizer.clean(String(repeating: "é", count: 600), maxBytes: 512))
        #expect(capped.utf8.count == 512)
        #expect(capped.allSatisfy { $0 == "é" })
        // A family emoji is 25 UTF-8 bytes: never split.
        let family = "👨‍👩‍👧‍👦"
        #expect(TagSanitizer.clean("ab" + family, maxBytes: 20) == "ab")
        // Zalgo: one base character with thousands of combining marks cannot exceed the cap.
        let zalgo = "Z" + String(repeating: "\u{0301}", count: 5000)
        #expect((TagSanitizer.clean(zalgo, maxBytes: 512) ?? "").utf8.count <= 512)
    }
}
