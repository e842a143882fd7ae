public import Foundation
import Crypto

/// An endpoint's signing secret in the Standard Webhooks form: `whsec_` and the base64 of the
/// key bytes (24 random bytes when the host makes one).
public struct WebhookSecret: Sendable, Hashable, CustomStringConvertible {
    /// The HMAC key.
    public let key: [UInt8]

    /// A new random secret.
    public static func generate() -> WebhookSecret {
        var generator = SystemRandomNumberGenerator()
        return WebhookSecret(key: (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) })
    }

    public init(key: [UInt8]) { self.key = key }

    /// Reads `whsec_…` (or bare base64); nil when it is not base64 of at least 16 bytes.
    public init?(_ text: String) {
        let encoded = text.hasPrefix("whsec_") ? String(text.dropFirst(6)) : text
        guard let data = Data(base64Encoded: encoded), data.count >= 16, data.count <= 64 else { return nil }
        key = Array(data)
    }

    /// `whsec_` + base64: what the endpoint's owner is given once, at subscription.
    public var description: String { "whsec_" + Data(key).base64EncodedString() }
}

/// The Standard Webhooks signature (standardwebhooks.com): `v1,` + base64 of
/// HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, sent in `webhook-signature`.
/// Receivers check it with any Standard Webhooks library, or with ``verify(id:timestamp:body:signatures:secret:now:tolerance:)``.
public enum WebhookSignature {
    /// The `webhook-signature` value for a message.
    public static func sign(id: String, timestamp: Int, body: some DataProtocol, secret: WebhookSecret) -> String {
        var message = Array("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret.key))
        return "v1," + Data(mac).base64EncodedString()
    }

    /// Whether one of the space-separated `signatures` is this message's, and `timestamp` is
    /// within `tolerance` seconds of `now` (replays of old messages are refused). Compares in
    /// constant time.
    public static func verify(id: String, timestamp: Int, body: some DataProtocol, signatures: String, secret: WebhookSecret,
                              now: Date = Date(), tolerance: TimeInterval = 300) -> Bool {
        guard abs(now.timeIntervalSince1970 - Double(timestamp)) <= tolerance else { return false }
        let expected = Array(sign(id: id, timestamp: timestamp, body: body, secret: secret).utf8)
        var matched = false
        for candidate in signatures.split(separator: " ") {
            let bytes = Array(candidate.utf8)
            guard bytes.count == expected.count else { continue }
            var difference: UInt8 = 0
            for index in bytes.indices { difference |= bytes[index] ^ expected[index] }
            matched = matched || difference == 0
        }
        return matched
    }
}
