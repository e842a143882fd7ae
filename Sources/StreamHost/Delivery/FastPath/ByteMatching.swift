import Hummingbird
import Foundation
import HTTPTypes
import NIOCore
import StreamKit
import Synchronization

/// Comparisons of raw bytes with string literals, for the checks run on every request (no
/// `String` built, no Unicode comparison).
extension UnsafeBufferPointer<UInt8> {
    /// Whether the bytes begin with `literal`'s UTF-8.
    func hasPrefix(_ literal: StaticString) -> Bool {
        literal.utf8CodeUnitCount <= count
            && (literal.utf8CodeUnitCount == 0 || memcmp(baseAddress!, literal.utf8Start, literal.utf8CodeUnitCount) == 0)
    }

    /// Whether the bytes are `literal`'s UTF-8.
    func matches(_ literal: StaticString) -> Bool {
        count == literal.utf8CodeUnitCount && hasPrefix(literal)
    }
}

extension String {
    /// Whether this header name is `lowercase` (a lowercase ASCII name) up to ASCII case,
    /// without allocating a lowercased copy.
    func equalsASCIICaseInsensitive(_ lowercase: StaticString) -> Bool {
        guard utf8.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        var index = 0
        // `| 0x20` folds ASCII capitals onto lowercase and leaves '-' alone; the only other byte
        // it maps onto a letter or '-' is CR onto '-', and the parser refuses CR in a name.
        for byte in utf8 {
            guard byte | 0x20 == expected[index] else { return false }
            index += 1
        }
        return true
    }
}
