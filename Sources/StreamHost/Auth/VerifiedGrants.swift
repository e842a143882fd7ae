import Foundation
import Hummingbird
import Crypto
import JWTKit
import StreamKit
import Synchronization

/// Grants of signed playback tokens whose MAC has been checked, by token (bounded: emptied when
/// full; an entry is only a saved HMAC, its expiry is checked on every use).
final class VerifiedGrants: Sendable {
    private let entries = Mutex<[String: URLSigner.Grant]>([:])
    static let capacity = 16_384

    func grant(_ token: String) -> URLSigner.Grant? {
        entries.withLock { $0[token] }
    }

    func remember(_ token: String, _ grant: URLSigner.Grant) {
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[token] = grant
        }
    }
}
