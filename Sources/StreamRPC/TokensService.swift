import Foundation
import GRPCCore
import SwiftProtobuf
import StreamHost

/// `veza.v1.Tokens`: minting and revoking access tokens (scope `admin`).
struct TokensService: Veza_V1_Tokens.ServiceProtocol {
    let auth: HostAuth
    let catalog: any Catalog
    let authorization: RPCAuthorization

    /// The longest lifetime a minted token may have: no longer than a revocation without an
    /// expiry is kept, so a revoked token never outlives its revocation.
    static let maximumTTL = Int64(HostAuth.revocationWithoutExpiry)

    func mintToken(request: ServerRequest<Veza_V1_MintTokenRequest>, context: ServerContext) async throws -> ServerResponse<Veza_V1_MintTokenResponse> {
        try await authorization.require([.admin], request.metadata)
        let message = request.message
        guard !message.subject.isEmpty, message.subject.utf8.count <= 200 else {
            throw RPCError(code: .invalidArgument, message: "subject must be 1–200 bytes")
        }
        let ttl = message.ttlSeconds == 0 ? 3600 : message.ttlSeconds
        guard (1...Self.maximumTTL).contains(ttl) else { throw RPCError(code: .invalidArgument, message: "ttl_seconds must be 1 s to a year (0: an hour)") }
        var scopes: [AccessScope] = []
        for scope in message.scopes {
            let mapped: AccessScope? = switch scope {
            case .upload: .upload
            case .stream: .stream
            case .admin: .admin
            case .live: .live
            default: nil
            }
            guard let mapped else { throw RPCError(code: .invalidArgument, message: "unknown scope \(scope)") }
            if !scopes.contains(mapped) { scopes.append(mapped) }
        }
        guard !scopes.isEmpty else { throw RPCError(code: .invalidArgument, message: "name at least one scope") }
        guard message.track.utf8.count <= 200 else { throw RPCError(code: .invalidArgument, message: "track must be at most 200 bytes") }
        let now = Date()
        let claims = AccessClaims(subject: message.subject, audience: auth.audience, scopes: scopes, issuedAt: now,
                                  expires: now.addingTimeInterval(Double(ttl)), track: message.track.isEmpty ? nil : message.track)
        return try await RPCAuthorization.mapping {
            let token = try await auth.mint(claims)
            return ServerResponse(message: .with {
                $0.token = token
                $0.tokenID = claims.tokenID
                $0.expiresAt = Google_Protobuf_Timestamp(date: claims.expiresAt)
            })
        }
    }

    func revokeToken(request: ServerRequest<Veza_V1_RevokeTokenRequest>, context: ServerContext) async throws -> ServerResponse<Veza_V1_RevokeTokenResponse> {
        try await authorization.require([.admin], request.metadata)
        let message = request.message
        guard !message.tokenID.isEmpty, message.tokenID.utf8.count <= 200 else {
            throw RPCError(code: .invalidArgument, message: "token_id must be 1–200 bytes")
        }
        // Without the token's expiry, keep the entry for a year (longer than any token minted here).
        let expires = message.hasExpiresAt ? message.expiresAt.date : Date().addingTimeInterval(HostAuth.revocationWithoutExpiry)
        return try await RPCAuthorization.mapping {
            try await catalog.revoke(tokenID: message.tokenID, expiresAt: expires)
            return ServerResponse(message: Veza_V1_RevokeTokenResponse())
        }
    }
}
