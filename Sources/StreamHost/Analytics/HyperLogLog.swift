import Crypto
import Foundation

/// An approximate distinct count (HyperLogLog, Flajolet et al. 2007, with the linear-counting
/// correction for small counts of Heule et al. 2013), for the unique listeners of a rollup.
///
/// Hand-written: none of the packages this project may use has one. 2^12 registers, so the
/// relative standard error is 1.04 / √4096 ≈ 1.6 % (about 3.3 % at two standard errors); counts
/// below about 10,000 use linear counting, whose error is smaller still. Items are hashed with
/// SHA-256 (the first 64 bits), so the sketch holds no listener id. Sketches of the same
/// precision merge by taking each register's maximum, which is how hour and day rollups are
/// made from the sessions of their minutes.
struct HyperLogLog: Sendable, Hashable {
    static let precision = 12
    static let registerCount = 1 << precision
    /// The relative standard error of ``estimate``.
    static let standardError = 1.04 / Double(1 << (precision / 2))
    private(set) var registers: [UInt8]

    init() { registers = [UInt8](repeating: 0, count: Self.registerCount) }

    mutating func insert(_ item: String) {
        let digest = SHA256.hash(data: Array(item.utf8))
        var hash: UInt64 = 0
        for byte in digest.prefix(8) { hash = hash << 8 | UInt64(byte) }
        let index = Int(hash >> UInt64(64 - Self.precision))
        let rest = hash << UInt64(Self.precision)
        let rank = UInt8(min(rest.leadingZeroBitCount, 64 - Self.precision) + 1)
        if rank > registers[index] { registers[index] = rank }
    }

    mutating func merge(_ other: HyperLogLog) {
        for index in registers.indices where other.registers[index] > registers[index] {
            registers[index] = other.registers[index]
        }
    }

    /// The estimated number of distinct items inserted.
    var estimate: Int {
        let m = Double(Self.registerCount)
        var sum = 0.0
        var zeros = 0
        for register in registers {
            sum += 1 / Double(UInt64(1) << UInt64(register))
            if register == 0 { zeros += 1 }
        }
        let alpha = 0.7213 / (1 + 1.079 / m)
        let raw = alpha * m * m / sum
        if raw <= 2.5 * m, zeros > 0 {
            // Linear counting: exact enough while registers are still empty.
            return Int((m * log(m / Double(zeros))).rounded())
        }
        return Int(raw.rounded())
    }

    /// A compact encoding: the non-zero registers as (index, value) triples while they are
    /// fewer than a third of them (most minutes of most tracks), else every register.
    var serialized: [UInt8] {
        let used = registers.indices.filter { registers[$0] != 0 }
        if used.count * 3 < Self.registerCount {
            var bytes: [UInt8] = [1]
            bytes.reserveCapacity(1 + used.count * 3)
            for index in used { bytes += [UInt8(index >> 8), UInt8(index & 0xFF), registers[index]] }
            return bytes
        }
        return [0] + registers
    }

    /// Reads ``serialized``; nil for bytes it did not write.
    init?(serialized bytes: [UInt8]) {
        guard let kind = bytes.first else { return nil }
        self.init()
        if kind == 0 {
            guard bytes.count == 1 + Self.registerCount, bytes.dropFirst().allSatisfy({ $0 <= 64 }) else { return nil }
            registers = Array(bytes.dropFirst())
        } else if kind == 1 {
            guard (bytes.count - 1) % 3 == 0 else { return nil }
            var offset = 1
            while offset < bytes.count {
                let index = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
                guard index < Self.registerCount, bytes[offset + 2] <= 64 else { return nil }
                registers[index] = bytes[offset + 2]
                offset += 3
            }
        } else {
            return nil
        }
    }
}
