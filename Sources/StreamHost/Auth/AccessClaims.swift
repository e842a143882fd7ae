public import Foundation
import Hummingbird
import Crypto
public import JWTKit
import StreamKit
import Synchronization

/// What a bearer token may do (the JWT's space-separated `scope` claim, RFC 8693 §4.2).
public enum AccessScope: String, Sendable, Hashable, CaseIterable, Codable {
    /// `POST /v1/tracks`.
    case upload
    /// Status, listing, waveform and playback.
    case stream
    /// Everything, including `DELETE /v1/tracks/{id}` and token revocation.
    case admin
    /// A live source: `PUT /live/{mount}` (or `SOURCE`) and its metadata updates.
    case live
}

/// The claims of an access token `streamhost token` mints and the API accepts.
///
/// `exp`, `aud` and `jti` are required; `nbf` and `iat` are checked when present (a token
/// issued more than ``issuedAtLeeway`` in the future is refused); `trk` restricts the token to
/// one track.
public struct AccessClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var aud: AudienceClaim
    public var exp: ExpirationClaim
    public var nbf: NotBeforeClaim?
    public var iat: IssuedAtClaim?
    /// Token id: the handle for revocation.
    public var jti: IDClaim
    /// Space-separated scopes (`upload stream`).
    public var scope: String
    /// When set, the token only opens this track.
    public var trk: String?

    public init(subject: String, audience: String, scopes: [AccessScope], issuedAt: Date, expires: Date,
                notBefore: Date? = nil, id: String = UUID().uuidString.lowercased(), track: String? = nil) {
        sub = SubjectClaim(value: subject)
        aud = AudienceClaim(value: [audience])
        exp = ExpirationClaim(value: expires)
        nbf = notBefore.map { NotBeforeClaim(value: $0) }
        iat = IssuedAtClaim(value: issuedAt)
        jti = IDClaim(value: id)
        scope = scopes.map(\.rawValue).joined(separator: " ")
        trk = track
    }

    /// How far in the future `iat` may lie: clock skew between the service that mints tokens
    /// and this host. A token issued later than that was minted by a clock that is wrong, or
    /// forged to outlive a key rotation; RFC 7519 leaves the check to the application.
    public static let issuedAtLeeway: TimeInterval = 60

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
        try nbf?.verifyNotBefore()
        if let iat, iat.value > Date().addingTimeInterval(Self.issuedAtLeeway) {
            throw JWTError.claimVerificationFailure(failedClaim: iat, reason: "issued in the future")
        }
    }

    /// The token id (`jti`).
    public var tokenID: String { jti.value }
    /// The expiry (`exp`).
    public var expiresAt: Date { exp.value }

    /// The scopes this token grants (unknown words are ignored).
    public var scopes: Set<AccessScope> {
        Set(scope.split(separator: " ").compactMap { AccessScope(rawValue: String($0)) })
    }
}

/// Who is calling, once a request is authenticated.
public struct Principal: Sendable, Hashable {
    /// The token's `sub`, or `public` in public mode.
    public var subject: String
    public var scopes: Set<AccessScope>
    /// When set, only this track may be opened.
    public var track: String?
    public var tokenID: String?

    /// Whether the principal may use `scope` (admin may use every scope) on `track`.
    public func allows(_ scope: AccessScope, track requested: String? = nil) -> Bool {
        guard scopes.contains(scope) || scopes.contains(.admin) else { return false }
        if let track, let requested { return track == requested }
        return track == nil || requested != nil
    }

    static let everyone = Principal(subject: "public", scopes: Set(AccessScope.allCases), track: nil, tokenID: nil)
}
