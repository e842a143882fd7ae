import Foundation

/// Why a MaxMind DB file cannot be read.
struct MaxMindDatabaseError: Error, Sendable, CustomStringConvertible {
    let description: String
}

/// A value of a MaxMind DB data section.
indirect enum MaxMindValue: Sendable, Hashable {
    case string(String)
    case double(Double)
    case float(Float)
    case bytes([UInt8])
    case unsigned(UInt64)
    /// A uint128, as its high and low halves.
    case unsigned128(UInt64, UInt64)
    case int(Int32)
    case bool(Bool)
    case map([String: MaxMindValue])
    case array([MaxMindValue])

    subscript(key: String) -> MaxMindValue? {
        if case .map(let entries) = self { return entries[key] }
        return nil
    }

    var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    var unsignedValue: UInt64? {
        if case .unsigned(let value) = self { return value }
        return nil
    }
}

/// A reader of MaxMind DB files (format 2.0: GeoLite2, GeoIP2, DB-IP and files made with
/// `mmdb-writer`), for the country of a listener's address.
///
/// Hand-written from the published format specification: none of the packages this project may
/// use reads it. The file is mapped, not read; every offset, size, pointer and nesting depth is
/// checked, so a damaged or hostile file gives nil or a typed error, never a crash. Addresses are
/// looked up as given: the full address, which is never stored (the host keeps only its /24 or
/// /48 and the country).
struct MaxMindDatabase: Sendable {
    private let data: Data
    private let nodeCount: Int
    private let recordSize: Int
    private let ipVersion: Int
    private let treeSize: Int
    private let dataStart: Int
    /// The file's metadata map (`database_type`, `build_epoch`, `languages`, …).
    let metadata: [String: MaxMindValue]

    static let marker: [UInt8] = [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8)
    static let maximumDepth = 32

    init(path: String) throws(MaxMindDatabaseError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw MaxMindDatabaseError(description: "cannot read \(path): \(error.localizedDescription)")
        }
        try self.init(data: data)
    }

    init(data: Data) throws(MaxMindDatabaseError) {
        self.data = data
        let bytes = [UInt8](data.suffix(128 * 1024))
        guard let found = Self.lastIndex(of: Self.marker, in: bytes) else {
            throw MaxMindDatabaseError(description: "not a MaxMind DB file (no metadata marker)")
        }
        let metadataStart = data.count - bytes.count + found + Self.marker.count
        let decoder = Decoder(data: data, base: metadataStart)
        guard case .map(let metadata)? = try? decoder.decode(at: metadataStart, depth: 0).value else {
            throw MaxMindDatabaseError(description: "the metadata is not a map")
        }
        self.metadata = metadata
        guard let nodes = metadata["node_count"]?.unsignedValue, let size = metadata["record_size"]?.unsignedValue,
              let version = metadata["ip_version"]?.unsignedValue, [24, 28, 32].contains(size), [4, 6].contains(version),
              metadata["binary_format_major_version"]?.unsignedValue == 2 else {
            throw MaxMindDatabaseError(description: "unsupported metadata (node_count, record_size 24/28/32, ip_version 4/6, format 2)")
        }
        nodeCount = Int(nodes)
        recordSize = Int(size)
        ipVersion = Int(version)
        treeSize = nodeCount * recordSize * 2 / 8
        dataStart = treeSize + 16
        guard dataStart <= metadataStart else { throw MaxMindDatabaseError(description: "the search tree runs past the data") }
    }

    private static func lastIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = haystack.count - needle.count
        while index >= 0 {
            if haystack[index] == needle[0] && Array(haystack[index..<index + needle.count]) == needle { return index }
            index -= 1
        }
        return nil
    }

    /// One record of a node: `right` for a 1 bit.
    private func record(_ node: Int, right: Bool) -> Int? {
        let width = recordSize * 2 / 8
        let start = node * width
        guard start + width <= treeSize, start + width <= data.count else { return nil }
        return data.withUnsafeBytes { raw -> Int in
            let b = raw.bindMemory(to: UInt8.self).baseAddress! + start
            switch recordSize {
            case 24:
                let o = right ? 3 : 0
                return Int(b[o]) << 16 | Int(b[o + 1]) << 8 | Int(b[o + 2])
            case 28:
                if right { return Int(b[3] & 0x0F) << 24 | Int(b[4]) << 16 | Int(b[5]) << 8 | Int(b[6]) }
                return Int(b[3] >> 4) << 24 | Int(b[0]) << 16 | Int(b[1]) << 8 | Int(b[2])
            default:
                let o = right ? 4 : 0
                return Int(b[o]) << 24 | Int(b[o + 1]) << 16 | Int(b[o + 2]) << 8 | Int(b[o + 3])
            }
        }
    }

    /// The record for `address`, or nil when the database has none (or is damaged there).
    func lookup(_ address: IPAddress) -> MaxMindValue? {
        let bytes = address.bytes
        // IPv4 addresses sit under ::/96 in IPv6 trees (the MaxMind convention); IPv4 trees have
        // no IPv6 addresses.
        var bits: [Bool] = []
        if address.isIPv4 {
            if ipVersion == 6 { bits = Array(repeating: false, count: 96) }
            for byte in bytes[12..<16] { for shift in (0..<8).reversed() { bits.append(byte >> UInt8(shift) & 1 == 1) } }
        } else {
            guard ipVersion == 6 else { return nil }
            for byte in bytes { for shift in (0..<8).reversed() { bits.append(byte >> UInt8(shift) & 1 == 1) } }
        }
        var node = 0
        for bit in bits {
            guard node < nodeCount else { break }
            guard let next = record(node, right: bit) else { return nil }
            node = next
        }
        guard node > nodeCount else { return nil }   // == nodeCount: no data; < nodeCount: damaged tree
        let offset = dataStart + (node - nodeCount - 16)
        guard offset >= dataStart, offset < data.count else { return nil }
        let decoder = Decoder(data: data, base: dataStart)
        return try? decoder.decode(at: offset, depth: 0).value
    }

    /// The ISO 3166 code of the country of `address` (`country.iso_code`, else
    /// `registered_country.iso_code`), or nil.
    func country(_ address: IPAddress) -> String? {
        guard let record = lookup(address) else { return nil }
        let code = record["country"]?["iso_code"]?.string ?? record["registered_country"]?["iso_code"]?.string
        guard let code, (2...3).contains(code.utf8.count), code.utf8.allSatisfy({ $0 >= 65 && $0 <= 90 }) else { return nil }
        return code
    }

    /// The data section decoder (pointers are relative to `base`).
    private struct Decoder {
        let data: Data
        let base: Int

        struct Damaged: Error {}

        func byte(_ offset: Int) throws(Damaged) -> UInt8 {
            guard offset >= 0, offset < data.count else { throw Damaged() }
            return data[data.startIndex + offset]
        }

        func bytes(_ offset: Int, _ count: Int) throws(Damaged) -> [UInt8] {
            guard count >= 0, offset >= 0, offset + count <= data.count else { throw Damaged() }
            return [UInt8](data[(data.startIndex + offset)..<(data.startIndex + offset + count)])
        }

        func unsigned(_ offset: Int, _ count: Int) throws(Damaged) -> UInt64 {
            try bytes(offset, count).reduce(0) { $0 << 8 | UInt64($1) }
        }

        /// The value at `offset` and the offset after it.
        func decode(at start: Int, depth: Int) throws(Damaged) -> (value: MaxMindValue, next: Int) {
            guard depth < MaxMindDatabase.maximumDepth else { throw Damaged() }
            var offset = start
            let control = try byte(offset)
            offset += 1
            var type = Int(control >> 5)
            if type == 1 {
                let sizeBits = Int(control >> 3) & 0x3
                let high = Int(control & 0x7)
                let pointer: Int
                switch sizeBits {
                case 0: pointer = high << 8 | Int(try byte(offset))
                case 1: pointer = (high << 16 | Int(try unsigned(offset, 2))) + 2048
                case 2: pointer = (high << 24 | Int(try unsigned(offset, 3))) + 526_336
                default: pointer = Int(try unsigned(offset, 4))
                }
                let target = base + pointer
                let (value, _) = try decode(at: target, depth: depth + 1)
                return (value, offset + sizeBits + 1)
            }
            if type == 0 {
                type = 7 + Int(try byte(offset))
                offset += 1
            }
            var size = Int(control & 0x1F)
            switch size {
            case 29: size = 29 + Int(try byte(offset)); offset += 1
            case 30: size = 285 + Int(try unsigned(offset, 2)); offset += 2
            case 31: size = 65_821 + Int(try unsigned(offset, 3)); offset += 3
            default: break
            }
            switch type {
            case 2:
                guard let text = String(validating: try bytes(offset, size), as: UTF8.self) else { throw Damaged() }
                return (.string(text), offset + size)
            case 3:
                guard size == 8 else { throw Damaged() }
                return (.double(Double(bitPattern: try unsigned(offset, 8))), offset + 8)
            case 4:
                return (.bytes(try bytes(offset, size)), offset + size)
            case 5, 6, 9:
                guard size <= [5: 2, 6: 4, 9: 8][type]! else { throw Damaged() }
                return (.unsigned(try unsigned(offset, size)), offset + size)
            case 10:
                guard size <= 16 else { throw Damaged() }
                let raw = try bytes(offset, size)
                let padded = [UInt8](repeating: 0, count: 16 - size) + raw
                return (.unsigned128(padded[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, padded[8..<16].reduce(0) { $0 << 8 | UInt64($1) }),
                        offset + size)
            case 8:
                guard size <= 4 else { throw Damaged() }
                return (.int(Int32(bitPattern: UInt32(try unsigned(offset, size)))), offset + size)
            case 14:
                guard size <= 1 else { throw Damaged() }
                return (.bool(size == 1), offset)
            case 15:
                guard size == 4 else { throw Damaged() }
                return (.float(Float(bitPattern: UInt32(try unsigned(offset, 4)))), offset + 4)
            case 7:
                // Each pair takes at least two bytes: a count beyond what is left is damage.
                guard size * 2 <= data.count - offset else { throw Damaged() }
                var entries: [String: MaxMindValue] = [:]
                for _ in 0..<size {
                    let (key, afterKey) = try decode(at: offset, depth: depth + 1)
                    guard case .string(let name) = key else { throw Damaged() }
                    let (value, afterValue) = try decode(at: afterKey, depth: depth + 1)
                    entries[name] = value
                    offset = afterValue
                }
                return (.map(entries), offset)
            case 11:
                guard size <= data.count - offset else { throw Damaged() }
                var items: [MaxMindValue] = []
                for _ in 0..<size {
                    let (value, after) = try decode(at: offset, depth: depth + 1)
                    items.append(value)
                    offset = after
                }
                return (.array(items), offset)
            default:
                throw Damaged()   // 12 (data cache container), 13 (end marker) and unknown types
            }
        }
    }
}
