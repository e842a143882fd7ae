import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Prometheus
import Logging
import NIOCore
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOHTTP1
import StreamKit
import Synchronization

/// What the fast path reads of a request before deciding: the connection's peer, the few
/// header fields it needs, and the request target split without building a URI.
extension PlaybackFastPath {
    /// The peer of a connection, looked up once per connection.
    struct Client {
        /// The peer's address: the client, unless the peer is a trusted proxy.
        var peer: IPAddress?
        /// `peer` as the rate limits' key.
        var key: String?
        /// Whether the peer is a trusted proxy, whose forwarding headers name each request's client.
        var isTrustedProxy: Bool
        /// The connection's event loop, whose descriptors of open files it uses
        /// (``OpenFileCache``).
        var loop: ObjectIdentifier

        init(_ address: SocketAddress?, loop: any EventLoop, resolver: ClientAddressResolver) {
            peer = address?.ipAddress.flatMap { IPAddress($0) }
            key = peer?.description
            isTrustedProxy = resolver.trusts(peer)
            self.loop = ObjectIdentifier(loop)
        }
    }

    /// The fields of a request head the fast path reads, picked out in one pass over NIO's
    /// header list: the request is not converted to HTTP types (that conversion validates and
    /// lowercases every field name, and was 4 % of the host's CPU at 10,000 listeners).
    struct RequestFields {
        var authorization = false
        var origin = false
        var requestID: String?
        /// `Forwarded`, `X-Forwarded-For` and `X-Real-IP` values, read only for a trusted proxy's requests.
        var forwarded: [String] = []
        var xForwardedFor: [String] = []
        var xRealIP: [String] = []
        /// Range and validators (If-Range, If-None-Match, If-Modified-Since), as HTTP types'
        /// fields for ``ObjectResponder/plan(info:request:contentType:cacheControl:now:)``;
        /// empty for an unconditional request of the whole object.
        var conditional = HTTPFields()

        init(_ headers: HTTPHeaders, forwarding: Bool = false) {
            for (name, value) in headers {
                // Hand-written: NIO's case-insensitive comparison of header names is internal.
                switch name.utf8.count {
                case 9 where forwarding && name.equalsASCIICaseInsensitive("forwarded"):
                    forwarded.append(value)
                case 9 where forwarding && name.equalsASCIICaseInsensitive("x-real-ip"):
                    xRealIP.append(value)
                case 15 where forwarding && name.equalsASCIICaseInsensitive("x-forwarded-for"):
                    xForwardedFor.append(value)
                case 5 where name.equalsASCIICaseInsensitive("range"):
                    conditional.append(HTTPField(name: .range, value: value))
                case 6 where name.equalsASCIICaseInsensitive("origin"):
                    origin = true
                case 8 where name.equalsASCIICaseInsensitive("if-range"):
                    conditional.append(HTTPField(name: .ifRange, value: value))
                case 12 where name.equalsASCIICaseInsensitive("x-request-id"):
                    if requestID == nil { requestID = value }
                case 13 where name.equalsASCIICaseInsensitive("authorization"):
                    authorization = true
                case 13 where name.equalsASCIICaseInsensitive("if-none-match"):
                    conditional.append(HTTPField(name: .ifNoneMatch, value: value))
                case 17 where name.equalsASCIICaseInsensitive("if-modified-since"):
                    conditional.append(HTTPField(name: .ifModifiedSince, value: value))
                default:
                    break
                }
            }
        }
    }

    /// A playback request target, split without building a URI or a query dictionary: the
    /// path `/{service}/{id}/{rest}` and the raw value of the first `token` parameter.
    struct Target {
        enum Service { case media, hls, dash }
        var service: Service
        var path: Substring
        var id: Substring
        /// What follows `/{service}/{id}/`.
        var rest: Substring
        var token: Substring?
        /// `token=` (``HostAuth/tokenParameter``).
        static let tokenPrefix: StaticString = "token="

        /// Nil for anything but a plain playback path in origin form (another prefix, an empty
        /// id, a percent-encoded path or token, a fragment, an absolute-form target): the router
        /// decodes and decides those.
        init?(_ target: String) {
            var target = target
            // One pass over the bytes: offsets of the id, the end of the path and the token.
            typealias Offsets = (service: Service, idStart: Int, idEnd: Int, pathEnd: Int, token: Range<Int>?)
            let scanned = target.withUTF8 { bytes -> Offsets? in
                let service: Service
                let idStart: Int
                if bytes.hasPrefix("/media/") {
                    (service, idStart) = (.media, 7)
                } else if bytes.hasPrefix("/hls/") {
                    (service, idStart) = (.hls, 5)
                } else if bytes.hasPrefix("/dash/") {
                    (service, idStart) = (.dash, 6)
                } else {
                    return nil
                }
                var idEnd: Int?
                var index = idStart
                path: while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "%"), UInt8(ascii: "#"): return nil
                    case UInt8(ascii: "?"): break path
                    case UInt8(ascii: "/") where idEnd == nil: idEnd = index
                    default: break
                    }
                    index += 1
                }
                guard let idEnd, idEnd > idStart else { return nil }
                let pathEnd = index
                var token: Range<Int>?
                // The query: the first `token=` parameter.
                while index < bytes.count {
                    index += 1   // past '?' or '&'
                    let parameterStart = index
                    var parameterEnd = index
                    while parameterEnd < bytes.count, bytes[parameterEnd] != UInt8(ascii: "&") {
                        if bytes[parameterEnd] == UInt8(ascii: "#") { return nil }
                        parameterEnd += 1
                    }
                    if token == nil, UnsafeBufferPointer(rebasing: bytes[parameterStart..<parameterEnd]).hasPrefix(Self.tokenPrefix) {
                        let value = (parameterStart + Self.tokenPrefix.utf8CodeUnitCount)..<parameterEnd
                        // Percent-encoded or '+': the router decodes it.
                        if bytes[value].contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) { return nil }
                        token = value
                    }
                    index = parameterEnd
                }
                return (service, idStart, idEnd, pathEnd, token)
            }
            guard let scanned else { return nil }
            let utf8 = target.utf8
            func at(_ offset: Int) -> String.Index { utf8.index(utf8.startIndex, offsetBy: offset) }
            service = scanned.service
            path = target[..<at(scanned.pathEnd)]
            id = target[at(scanned.idStart)..<at(scanned.idEnd)]
            rest = target[at(scanned.idEnd + 1)..<at(scanned.pathEnd)]
            token = scanned.token.map { target[at($0.lowerBound)..<at($0.upperBound)] }
        }
    }
}
