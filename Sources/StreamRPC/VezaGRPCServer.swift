public import ServiceLifecycle
public import StreamHost
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// The host's gRPC API (`Protos/veza/v1/veza.proto`: `veza.v1.Tracks`, `veza.v1.Tokens`,
/// `veza.v1.Events`) on its own port, beside the HTTP listener, as a service that starts and
/// stops with the host: `streamhost serve --grpc-port 9090` (`grpc.port`, `VEZA_GRPC_PORT`), or
/// pass it to `StreamHostServer.run(additionalServices:onListening:)` when embedding.
///
/// It speaks gRPC over HTTP/2 in cleartext (h2c, grpc-swift 2's NIO transport): run it on a
/// private network or behind a proxy that terminates TLS. Calls are authenticated like HTTP
/// requests (a bearer token in the `authorization` metadata); the per-address and per-subject
/// rate limits of the HTTP listener do not apply to it.
public struct VezaGRPCServer: Service {
    let server: StreamHostServer
    let host: String
    let port: Int
    let pollInterval: Duration
    let onListening: @Sendable (Int) async -> Void

    /// - Parameters:
    ///   - server: the host whose catalog, storage and auth the services use.
    ///   - host: the address to bind (the HTTP listener's by default).
    ///   - port: the port to bind; 0 picks a free one (passed to `onListening`).
    ///   - pollInterval: how often `WatchTrack` and `Subscribe` read the catalog for changes.
    ///   - onListening: called with the bound port once the server accepts connections.
    public init(server: StreamHostServer, host: String? = nil, port: Int, pollInterval: Duration = .milliseconds(200),
                onListening: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.server = server
        self.host = host ?? server.configuration.host
        self.port = port
        self.pollInterval = pollInterval
        self.onListening = onListening
    }

    /// Serves until the host shuts down gracefully (calls in flight finish, new ones are refused).
    public func run() async throws {
        let authorization = RPCAuthorization(auth: server.auth)
        let services: [any RegistrableRPCService] = [
            TracksService(operations: server.tracks, authorization: authorization, watchInterval: pollInterval),
            TokensService(auth: server.auth, catalog: server.catalog, authorization: authorization),
            EventsService(catalog: server.catalog, authorization: authorization, pollInterval: pollInterval),
        ]
        let grpc = GRPCServer(transport: .http2NIOPosix(address: .ipv4(host: host, port: port), transportSecurity: .plaintext),
                              services: services)
        let logger = server.logger
        let onListening = self.onListening
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await grpc.serve() }
                if let address = try await grpc.listeningAddress {
                    let port = address.ipv4?.port ?? address.ipv6?.port ?? 0
                    logger.info("gRPC listening", metadata: ["port": "\(port)"])
                    await onListening(port)
                }
            }
        } onGracefulShutdown: {
            grpc.beginGracefulShutdown()
        }
    }
}
