import Foundation

/// An ISO BMFF box read back from bytes, for tests that check what our writers signal.
///
/// Deliberately independent of MediaCore's writer: a reader sharing the writer's code could
/// not catch the writer's mistakes.
public struct MP4Box: Sendable {
    public let type: String
    /// The body after the size/type header (for full boxes, version and flags included).
    public let body: [UInt8]
    public let children: [MP4Box]

    /// Boxes whose bodies are only child boxes.
    static let containers: Set<String> = ["moov", "trak", "edts", "mdia", "minf", "stbl", "dinf", "mvex", "moof", "traf", "udta", "ilst", "----"]

    /// Parses the boxes in `bytes` (recursing into known containers and `meta`).
    public static func parse(_ bytes: [UInt8]) throws -> [MP4Box] {
        try parse(bytes[...])
    }

    static func parse(_ bytes: ArraySlice<UInt8>) throws -> [MP4Box] {
        var boxes: [MP4Box] = []
        var position = bytes.startIndex
        while position < bytes.endIndex {
            guard bytes.endIndex - position >= 8 else { throw TestError.failed("truncated box header at \(position)") }
            var size = Int(read32(bytes, position))
            let type = String(decoding: bytes[(position + 4)..<(position + 8)], as: UTF8.self)
            var header = 8
            if size == 1 {
                size = Int(read64(bytes, position + 8))
                header = 16
            } else if size == 0 {
                size = bytes.endIndex - position
            }
            guard size >= header, position + size <= bytes.endIndex else {
                throw TestError.failed("box \(type) of size \(size) overruns its parent at \(position)")
            }
            let body = bytes[(position + header)..<(position + size)]
            var children: [MP4Box] = []
            if containers.contains(type) {
                children = try parse(body)
            } else if type == "meta" {
                children = try parse(body.dropFirst(4))
            } else if type.hasPrefix("©") || ["aART", "trkn", "disk", "covr"].contains(type) {
                children = try parse(body)
            }
            boxes.append(MP4Box(type: type, body: Array(body), children: children))
            position += size
        }
        return boxes
    }

    /// The first descendant at `path` (e.g. `["moov", "trak", "edts", "elst"]`).
    public func find(_ path: [String]) -> MP4Box? {
        guard let first = path.first else { return self }
        return children.first { $0.type == first }?.find(Array(path.dropFirst()))
    }

    /// All direct children of type `type`.
    public func all(_ type: String) -> [MP4Box] { children.filter { $0.type == type } }

    public func u32(at offset: Int) -> UInt32 { MP4Box.read32(body[...], offset) }
    public func u64(at offset: Int) -> UInt64 { MP4Box.read64(body[...], offset) }
    public var version: UInt8 { body[0] }

    static func read32(_ bytes: ArraySlice<UInt8>, _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 << 8 | UInt32(bytes[at + $1]) }   // `at` indexes the slice's base
    }

    static func read64(_ bytes: ArraySlice<UInt8>, _ at: Int) -> UInt64 {
        UInt64(read32(bytes, at)) << 32 | UInt64(read32(bytes, at + 4))
    }
}

/// Parsed file: a virtual root whose children are the top-level boxes.
public func mp4Root(_ path: String) throws -> MP4Box {
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    return MP4Box(type: "file", body: [], children: try MP4Box.parse(bytes))
}

/// The one edit of an `elst`: (segment_duration, media_time).
public func singleEdit(_ elst: MP4Box) throws -> (duration: UInt64, mediaTime: Int64) {
    guard elst.u32(at: 4) == 1 else { throw TestError.failed("elst has \(elst.u32(at: 4)) entries") }
    if elst.version == 1 {
        return (elst.u64(at: 8), Int64(bitPattern: elst.u64(at: 16)))
    }
    return (UInt64(elst.u32(at: 8)), Int64(Int32(bitPattern: elst.u32(at: 12))))
}

/// A fragment's decode time (`tfdt`) and per-sample durations (`trun`, which must carry them).
public func fragmentTiming(_ segment: MP4Box) throws -> (decodeTime: UInt64, durations: [UInt32]) {
    guard let traf = segment.find(["moof", "traf"]), let tfdt = traf.find(["tfdt"]), let trun = traf.find(["trun"]) else {
        throw TestError.failed("segment lacks moof/traf/tfdt/trun")
    }
    let decodeTime = tfdt.version == 1 ? tfdt.u64(at: 4) : UInt64(tfdt.u32(at: 4))
    let flags = trun.u32(at: 0) & 0xFF_FFFF
    guard flags & 0x100 != 0 else { throw TestError.failed("trun without sample durations") }
    let count = Int(trun.u32(at: 4))
    var offset = 8
    if flags & 0x1 != 0 { offset += 4 }
    if flags & 0x4 != 0 { offset += 4 }
    let fieldsPerSample = [0x100, 0x200, 0x400, 0x800].filter { flags & UInt32($0) != 0 }.count
    var durations: [UInt32] = []
    for index in 0..<count {
        durations.append(trun.u32(at: offset + index * fieldsPerSample * 4))
    }
    return (decodeTime, durations)
}
