// A tiny big-endian byte writer for ISO/IEC 14496-12 boxes.
//
// Named `MP4ByteWriter` (not `ByteWriter`) because these files are copied into the larger
// MediaCore module, where a generic name is likely to collide.

/// Appends big-endian integers, four-character codes and nested boxes to a byte array.
///
/// Boxes are written with a 32-bit size that is back-patched when the body is complete; a
/// box whose total size does not fit in 32 bits is rewritten with `size = 1` and a 64-bit
/// `largesize` (ISO/IEC 14496-12 §4.2), so the large form appears only when needed.
struct MP4ByteWriter {
    /// The bytes written so far.
    private(set) var bytes: [UInt8] = []

    /// Largest total box size written with the compact 32-bit `size` field.
    /// Only tests lower it, to exercise the `largesize` path without writing 4 GiB.
    var compactBoxSizeLimit: UInt64 = UInt64(UInt32.max)

    init(reservingCapacity capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    /// Number of bytes written so far.
    var count: Int { bytes.count }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u16(_ value: UInt16) {
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func i16(_ value: Int16) { u16(UInt16(bitPattern: value)) }

    mutating func u24(_ value: UInt32) {
        precondition(value < 1 << 24, "value does not fit in 24 bits")
        bytes.append(UInt8(truncatingIfNeeded: value >> 16))
        bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        bytes.append(UInt8(truncatingIfNeeded: value))
    }

    mutating func u32(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    mutating func i32(_ value: Int32) { u32(UInt32(bitPattern: value)) }

    mutating func u64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }

    mutating func append(_ data: [UInt8]) { bytes.append(contentsOf: data) }

    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    /// Writes a four-character code. Characters are taken as ISO 8859-1, so `"©nam"` is
    /// written with the single byte 0xA9 that iTunes metadata keys use.
    mutating func fourCC(_ code: String) { append(MP4ByteWriter.fourCCBytes(code)) }

    /// The four bytes of a four-character code (ISO 8859-1 characters).
    static func fourCCBytes(_ code: String) -> [UInt8] {
        let scalars = Array(code.unicodeScalars)
        precondition(scalars.count == 4 && scalars.allSatisfy { $0.value <= 0xFF }, "invalid four-character code \(code)")
        return scalars.map { UInt8($0.value) }
    }

    /// Writes a UTF-8 string followed by a NUL terminator.
    mutating func cString(_ string: String) {
        append(Array(string.utf8))
        u8(0)
    }

    /// Overwrites four bytes at `offset` with `value` (big-endian).
    mutating func patchU32(at offset: Int, _ value: UInt32) {
        for index in 0..<4 {
            bytes[offset + index] = UInt8(truncatingIfNeeded: value >> UInt32(24 - 8 * index))
        }
    }

    /// Writes a box: size, type, then whatever `body` writes. The size is back-patched.
    mutating func box(_ type: String, _ body: (inout MP4ByteWriter) -> Void) {
        let start = count
        u32(0)
        fourCC(type)
        body(&self)
        let size = UInt64(count - start)
        if size <= compactBoxSizeLimit {
            patchU32(at: start, UInt32(size))
        } else {
            // size = 1 means "a 64-bit largesize follows the type" (14496-12 §4.2).
            patchU32(at: start, 1)
            var large = MP4ByteWriter()
            large.u64(size + 8)
            bytes.insert(contentsOf: large.bytes, at: start + 8)
        }
    }

    /// Writes a full box: a box whose body starts with an 8-bit version and 24-bit flags.
    mutating func fullBox(_ type: String, version: UInt8 = 0, flags: UInt32 = 0, _ body: (inout MP4ByteWriter) -> Void) {
        box(type) { writer in
            writer.u8(version)
            writer.u24(flags)
            body(&writer)
        }
    }

    /// Size of a box header (8, or 16 with `largesize`) for a box with `payloadSize` body bytes.
    func headerSize(forPayload payloadSize: Int) -> Int {
        UInt64(payloadSize) + 8 <= compactBoxSizeLimit ? 8 : 16
    }

    /// Writes only the header of a box whose `payloadSize` body bytes the caller appends next
    /// (used for `mdat`, whose payload is large and already in memory).
    mutating func boxHeader(_ type: String, payloadSize: Int) {
        if headerSize(forPayload: payloadSize) == 8 {
            u32(UInt32(payloadSize + 8))
            fourCC(type)
        } else {
            u32(1)
            fourCC(type)
            u64(UInt64(payloadSize) + 16)
        }
    }
}
