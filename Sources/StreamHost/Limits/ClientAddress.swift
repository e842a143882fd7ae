import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as its 16 bytes (IPv4 as `::ffff:a.b.c.d`), parsed and printed with
/// `inet_pton`/`inet_ntop`. Hand-written: SwiftNIO's `SocketAddress` parses addresses but has no
/// prefix arithmetic, and none of the project's dependencies matches CIDR ranges.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address in network order, IPv4 mapped into IPv6.
    public let high: UInt64
    public let low: UInt64

    /// Parses `192.0.2.1`, `2001:db8::1` or `::ffff:192.0.2.1`; nil for anything else (ports,
    /// brackets, zone ids and host names are not addresses).
    public init?(_ text: some StringProtocol) {
        var bytes = [UInt8](repeating: 0, count: 16)
        let parsed: Bool = String(text).withCString { chars in
            if text.contains(":") {
                return bytes.withUnsafeMutableBytes { inet_pton(AF_INET6, chars, $0.baseAddress) } == 1
            }
            var four = [UInt8](repeating: 0, count: 4)
            guard four.withUnsafeMutableBytes({ inet_pton(AF_INET, chars, $0.baseAddress) }) == 1 else { return false }
            bytes[10] = 0xFF
            bytes[11] = 0xFF
            bytes.replaceSubrange(12..<16, with: four)
            return true
        }
        guard parsed else { return nil }
        self.init(bytes: bytes)
    }

    init(bytes: [UInt8]) {
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The 16 bytes, network order.
    var bytes: [UInt8] {
        (0..<16).map { index in
            UInt8(truncatingIfNeeded: (index < 8 ? high : low) >> (8 * (7 - UInt64(index % 8))))
        }
    }

    /// Whether this is an IPv4 address (`::ffff:0:0/96`).
    public var isIPv4: Bool { high == 0 && low >> 32 == 0xFFFF }

    /// `192.0.2.1` for IPv4 (also when it arrived mapped), the RFC 5952 form for IPv6.
    public var description: String {
        let bytes = self.bytes
        if isIPv4 { return bytes[12...].map(String.init).joined(separator: ".") }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = bytes.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address with all but the first `bits` bits (of 128) cleared.
    func masked(_ bits: Int) -> IPAddress {
        func mask(_ value: UInt64, _ keep: Int) -> UInt64 {
            keep >= 64 ? value : keep <= 0 ? 0 : value & ~(UInt64.max >> UInt64(keep))
        }
        return IPAddress(high: mask(high, bits), low: mask(low, bits - 64))
    }

    private init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// `203.0.113.0/24` or `2001:db8:1::/48`: enough to tell networks apart, not people (the
    /// client field of the host's log lines).
    public var networkPrefix: String {
        isIPv4 ? "\(masked(120))/24" : "\(masked(48))/48"
    }
}

/// An address range: `10.0.0.0/8`, `2001:db8::/32`, or one address (`127.0.0.1`, `::1`).
public struct IPRange: Hashable, Sendable, CustomStringConvertible {
    /// The first address of the range.
    public let network: IPAddress
    /// Leading bits that must match, of 128 (an IPv4 `/n` is `96 + n`).
    public let prefixBits: Int

    /// Parses `ADDRESS` or `ADDRESS/BITS` (0–32 for IPv4, 0–128 for IPv6); nil otherwise.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let width = address.isIPv4 ? 32 : 128
        var bits = width
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...width).contains(given), parts[1].allSatisfy(\.isASCII) else { return nil }
            bits = given
        }
        prefixBits = bits + (address.isIPv4 ? 96 : 0)
        network = address.masked(prefixBits)
    }

    /// Whether `address` is in the range.
    public func contains(_ address: IPAddress) -> Bool {
        address.masked(prefixBits) == network
    }

    public var description: String {
        "\(network)/\(network.isIPv4 ? prefixBits - 96 : prefixBits)"
    }
}

/// Finds a request's client address behind trusted proxies (`server.trustedProxies`).
///
/// For a connection from a trusted peer, the client is taken from RFC 7239 `Forwarded` (`for=`),
/// else `X-Forwarded-For`, else `X-Real-IP`: the right-most address of the chain that is not
/// itself a trusted proxy (each proxy appends the address it saw, so everything left of the
/// first untrusted hop may have been written by the client). For any other peer these headers
/// are ignored, so a client cannot choose its own address. A hop that is not an address
/// (`unknown`, an obfuscated `_name`, garbage) stops the walk: the client is then the nearest
/// address known (the last trusted hop), and garbage is reported as malformed for a metric.
public struct ClientAddressResolver: Sendable, Hashable {
    /// The trusted proxies.
    public let trustedProxies: [IPRange]

    /// Where a resolved address came from.
    public enum Source: String, Sendable {
        case peer
        case forwarded
        case xForwardedFor = "x-forwarded-for"
        case xRealIP = "x-real-ip"
    }

    /// The client of one request.
    public struct Resolution: Sendable, Hashable {
        /// The client's address (the peer's when nothing trusted says otherwise).
        public var address: IPAddress?
        /// Which header gave it, or `.peer`.
        public var source: Source
        /// The header whose value was malformed, if one was (it is then not believed past that hop).
        public var malformed: Source?
    }

    /// Trusts `trustedProxies` (none by default: every header is ignored).
    public init(trustedProxies: [IPRange] = []) {
        self.trustedProxies = trustedProxies
    }

    /// Whether any proxy is trusted (when none is, headers are never read).
    public var isEnabled: Bool { !trustedProxies.isEmpty }

    /// Whether `address` is a trusted proxy.
    public func trusts(_ address: IPAddress?) -> Bool {
        guard let address else { return false }
        return trustedProxies.contains { $0.contains(address) }
    }

    /// The client of a request from `peer` carrying these header values (each array: the field's
    /// lines in order; lists within a line are comma-separated).
    public func resolve(peer: IPAddress?, forwarded: [String], xForwardedFor: [String], xRealIP: [String]) -> Resolution {
        guard trusts(peer) else { return Resolution(address: peer, source: .peer) }
        let chain: [Hop]
        let source: Source
        if !forwarded.isEmpty {
            (chain, source) = (Self.forwardedChain(forwarded), .forwarded)
        } else if !xForwardedFor.isEmpty {
            (chain, source) = (Self.listChain(xForwardedFor), .xForwardedFor)
        } else if !xRealIP.isEmpty {
            (chain, source) = (Self.listChain(xRealIP.suffix(1)), .xRealIP)
        } else {
            return Resolution(address: peer, source: .peer)
        }
        var nearest = peer
        for hop in chain.reversed() {
            switch hop {
            case .address(let address):
                guard trusts(address) else { return Resolution(address: address, source: source) }
                nearest = address
            case .hidden:
                return Resolution(address: nearest, source: source)
            case .malformed:
                return Resolution(address: nearest, source: source, malformed: source)
            }
        }
        // Every hop is a trusted proxy: the left-most is as far as anyone can tell.
        return Resolution(address: nearest, source: source, malformed: chain.isEmpty ? source : nil)
    }

    /// One hop of a forwarding chain.
    enum Hop: Hashable {
        case address(IPAddress)
        /// RFC 7239 `unknown` or an obfuscated identifier (`_hidden`): a proxy that will not say.
        case hidden
        case malformed
    }

    /// `X-Forwarded-For` / `X-Real-IP`: comma-separated addresses, each possibly with a port
    /// (`192.0.2.1:4711`, `[2001:db8::1]:4711`, as some proxies write them).
    static func listChain(_ lines: some Sequence<String>) -> [Hop] {
        lines.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { item in
            node(item.trimmingCharacters(in: .whitespaces))
        }
    }

    /// RFC 7239 `Forwarded`: elements separated by commas, pairs by semicolons; the `for`
    /// parameter of each element (an element without one is a hop that did not say).
    static func forwardedChain(_ lines: [String]) -> [Hop] {
        var hops: [Hop] = []
        for element in splitOutsideQuotes(lines.joined(separator: ","), by: ",") {
            var hop = Hop.hidden
            var sawFor = false
            for pair in splitOutsideQuotes(element, by: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else {
                    if !pair.trimmingCharacters(in: .whitespaces).isEmpty { hop = .malformed }
                    continue
                }
                guard parts[0].trimmingCharacters(in: .whitespaces).lowercased() == "for" else { continue }
                guard !sawFor else { hop = .malformed; break } // a parameter appears once per element
                sawFor = true
                var value = parts[1].trimmingCharacters(in: .whitespaces)
                if value.hasPrefix("\"") {
                    guard value.count >= 2, value.hasSuffix("\"") else { hop = .malformed; break }
                    value = String(value.dropFirst().dropLast()).replacingOccurrences(of: "\\", with: "")
                } else if value.contains("[") || value.contains(":") {
                    // An IPv6 node (or one with a port) must be quoted (RFC 7239 §6).
                    hop = .malformed
                    break
                }
                hop = node(value)
            }
            hops.append(hop)
        }
        return hops
    }

    /// One node: an address, optionally with a port; `unknown` or `_obfuscated` is hidden.
    static func node(_ text: String) -> Hop {
        if text.lowercased() == "unknown" || (text.hasPrefix("_") && text.count > 1) { return .hidden }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .malformed }
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || (rest.hasPrefix(":") && isPort(rest.dropFirst())),
                  let address = IPAddress(text[text.index(after: text.startIndex)..<close])
            else { return .malformed }
            return .address(address)
        }
        if let address = IPAddress(text) { return .address(address) }
        // IPv4 with a port.
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2, isPort(parts[1]), let address = IPAddress(parts[0]), address.isIPv4 { return .address(address) }
        return .malformed
    }

    private static func isPort(_ text: Substring) -> Bool {
        !text.isEmpty && text.count <= 5 && text.allSatisfy { $0.isASCII && $0.isNumber } || text.hasPrefix("_")
    }

    /// Splits on `separator` outside double quotes (a backslash escapes inside them).
    static func splitOutsideQuotes(_ text: String, by separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in text {
            if escaped {
                escaped = false
            } else if quoted && character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if character == separator && !quoted {
                parts.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        parts.append(current)
        return parts
    }
}
