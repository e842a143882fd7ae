@testable import StreamHost
import Testing

/// The client address behind trusted proxies (issue 28), as pure values.
@Suite("Client addresses: IP parsing, ranges, Forwarded / X-Forwarded-For / X-Real-IP behind trusted proxies")
struct ClientAddressTests {
    @Test func addressesParseAndPrint() {
        #expect(IPAddress("192.0.2.1")?.description == "192.0.2.1")
        #expect(IPAddress("::ffff:192.0.2.1") == IPAddress("192.0.2.1"), "an IPv4-mapped address is the IPv4 address")
        #expect(IPAddress("2001:DB8:0:0:0:0:0:1")?.description == "2001:db8::1")
        #expect(IPAddress("::1")?.isIPv4 == false && IPAddress("127.0.0.1")?.isIPv4 == true)
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:80", "[::1]", "fe80::1%eth0", "example.com", "unknown", " 1.2.3.4"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
        #expect(IPAddress("203.0.113.77")?.networkPrefix == "203.0.113.0/24")
        #expect(IPAddress("2001:db8:1:2:3::9")?.networkPrefix == "2001:db8:1::/48")
    }

    @Test func ranges() throws {
        let ten = try #require(IPRange("10.0.0.0/8"))
        #expect(ten.contains(IPAddress("10.255.1.2")!) && !ten.contains(IPAddress("11.0.0.1")!))
        #expect(ten.contains(IPAddress("::ffff:10.1.1.1")!))
        #expect(!ten.contains(IPAddress("::a01:101")!), "an IPv6 address is not in an IPv4 range")
        let v6 = try #require(IPRange("2001:db8::/32"))
        #expect(v6.contains(IPAddress("2001:db8:ffff::1")!) && !v6.contains(IPAddress("2001:db9::1")!))
        #expect(IPRange("127.0.0.1")?.contains(IPAddress("127.0.0.1")!) == true)
        #expect(IPRange("127.0.0.1")?.contains(IPAddress("127.0.0.2")!) == false)
        #expect(IPRange("10.1.2.3/8")?.description == "10.0.0.0/8", "host bits are cleared")
        #expect(IPRange("0.0.0.0/0")?.contains(IPAddress("198.51.100.1")!) == true)
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "/8", "10.0.0.0/-1", "proxy.local"] {
            #expect(IPRange(bad) == nil, "\(bad)")
        }
    }

    static let resolver = ClientAddressResolver(trustedProxies: [IPRange("127.0.0.1")!, IPRange("10.0.0.0/8")!, IPRange("fd00::/8")!])
    static let proxy = IPAddress("127.0.0.1")

    func resolve(peer: String? = "127.0.0.1", forwarded: [String] = [], xff: [String] = [], realIP: [String] = [])
        -> (String?, ClientAddressResolver.Source, ClientAddressResolver.Source?) {
        let r = Self.resolver.resolve(peer: peer.flatMap { IPAddress($0) }, forwarded: forwarded, xForwardedFor: xff, xRealIP: realIP)
        return (r.address?.description, r.source, r.malformed)
    }

    @Test func anUntrustedPeerCannotChooseItsAddress() {
        #expect(resolve(peer: "198.51.100.9", forwarded: ["for=203.0.113.1"]) == ("198.51.100.9", .peer, nil))
        #expect(resolve(peer: "198.51.100.9", xff: ["203.0.113.1"]) == ("198.51.100.9", .peer, nil))
        #expect(resolve(peer: "198.51.100.9", realIP: ["203.0.113.1"]) == ("198.51.100.9", .peer, nil))
        let none = ClientAddressResolver()
        #expect(!none.isEnabled)
        #expect(none.resolve(peer: IPAddress("127.0.0.1"), forwarded: [], xForwardedFor: ["203.0.113.1"], xRealIP: []).address == IPAddress("127.0.0.1"))
    }

    @Test func xForwardedForTakesTheRightMostUntrustedHop() {
        #expect(resolve(xff: ["203.0.113.7"]) == ("203.0.113.7", .xForwardedFor, nil))
        // A client's own X-Forwarded-For is kept by the proxy and the real address appended:
        // spoofing moves nothing but the hops left of the real one.
        #expect(resolve(xff: ["6.6.6.6, 203.0.113.7"]) == ("203.0.113.7", .xForwardedFor, nil))
        // Several trusted proxies in a row (CDN edge → internal balancer → host).
        #expect(resolve(xff: ["203.0.113.7, 10.1.1.1", "10.2.2.2"]) == ("203.0.113.7", .xForwardedFor, nil))
        #expect(resolve(xff: ["[2001:db8::5]:4711", "192.0.2.8:80"]) == ("192.0.2.8", .xForwardedFor, nil))
        #expect(resolve(xff: ["2001:db8::5, 10.0.0.1"]) == ("2001:db8::5", .xForwardedFor, nil))
        // Every hop trusted: the left-most is as far as anyone can tell.
        #expect(resolve(xff: ["10.9.9.9, 10.1.1.1"]) == ("10.9.9.9", .xForwardedFor, nil))
    }

    @Test func forwardedIsPreferredAndParsedPerRFC7239() {
        #expect(resolve(forwarded: ["for=192.0.2.60;proto=http;by=203.0.113.43"], xff: ["198.51.100.1"])
                == ("192.0.2.60", .forwarded, nil))
        #expect(resolve(forwarded: [#"for="[2001:db8:cafe::17]:4711""#]) == ("2001:db8:cafe::17", .forwarded, nil))
        #expect(resolve(forwarded: [#"For="192.0.2.43:47011", for=10.0.0.9"#]) == ("192.0.2.43", .forwarded, nil))
        #expect(resolve(forwarded: ["for=6.6.6.6, for=192.0.2.43", "for=10.1.1.1"]) == ("192.0.2.43", .forwarded, nil))
        // A proxy that will not say: the client is the nearest hop known.
        #expect(resolve(forwarded: ["for=unknown"]) == ("127.0.0.1", .forwarded, nil))
        #expect(resolve(forwarded: ["for=192.0.2.43, for=_hidden"]) == ("127.0.0.1", .forwarded, nil))
        #expect(resolve(forwarded: ["for=_hidden, for=10.1.1.1"]) == ("10.1.1.1", .forwarded, nil))
        #expect(resolve(forwarded: ["proto=https"]) == ("127.0.0.1", .forwarded, nil), "an element without for=")
    }

    @Test func malformedValuesAreNotBelievedAndAreReported() {
        #expect(resolve(xff: ["not-an-address"]) == ("127.0.0.1", .xForwardedFor, .xForwardedFor))
        #expect(resolve(xff: ["203.0.113.7, garbage"]) == ("127.0.0.1", .xForwardedFor, .xForwardedFor),
                "a garbage hop stops the walk: what is left of it cannot be trusted")
        #expect(resolve(xff: ["garbage, 203.0.113.7"]) == ("203.0.113.7", .xForwardedFor, nil), "garbage left of the client is never read")
        #expect(resolve(xff: [""]) == ("127.0.0.1", .xForwardedFor, .xForwardedFor))
        #expect(resolve(forwarded: ["for=2001:db8::1"]) == ("127.0.0.1", .forwarded, .forwarded), "IPv6 must be quoted and bracketed")
        #expect(resolve(forwarded: [#"for="[2001:db8::1"#]) == ("127.0.0.1", .forwarded, .forwarded))
        #expect(resolve(forwarded: ["for=1.2.3.4;for=5.6.7.8"]) == ("127.0.0.1", .forwarded, .forwarded))
        #expect(resolve(forwarded: ["garbage"]) == ("127.0.0.1", .forwarded, .forwarded))
        #expect(resolve(realIP: ["203.0.113.9"]) == ("203.0.113.9", .xRealIP, nil))
        #expect(resolve(realIP: ["nope"]) == ("127.0.0.1", .xRealIP, .xRealIP))
    }
}
