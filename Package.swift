// swift-tools-version:6.1
import PackageDescription

// Layers (see Sources/*/*.docc and DESIGN.md §1): system libraries → MediaCore;
// StreamKit has no media dependency; StreamHost wires both; `streamhost` is thin.
let package = Package(
    name: "veza-stream",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MediaCore", targets: ["MediaCore"]),
        .library(name: "StreamKit", targets: ["StreamKit"]),
        .library(name: "StreamHost", targets: ["StreamHost"]),
        .library(name: "StreamRPC", targets: ["StreamRPC"]),
        .executable(name: "streamhost", targets: ["streamhost"]),
        .executable(name: "veza-loadgen", targets: ["veza-loadgen"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms", from: "1.1.4"),
        // 4.x: jwt-kit 5 needs swift-crypto ≥ 4.1.
        .package(url: "https://github.com/apple/swift-crypto", "4.0.0"..<"5.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Scale-out backends: S3-compatible storage over HTTP, PostgreSQL catalog and queue.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // veza-loadgen's latency histograms.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // The gRPC API (StreamRPC): grpc-swift 2, its HTTP/2 transport on SwiftNIO, protobuf
        // messages (the code generated from Protos/ is committed: scripts/generate-grpc.sh).
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // `swift package generate-documentation` (make docs): a command plugin only, nothing is linked.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: C libraries (Debian 12: FFmpeg 5.1, opus 1.3, LAME 3.100, FLAC 1.4)
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswresample-dev"])]
        ),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
        // LAME ships no pkg-config file upstream: the module map links mp3lame itself.
        .systemLibrary(name: "CLame", providers: [.apt(["libmp3lame-dev"])]),
        .systemLibrary(name: "CFLAC", pkgConfig: "flac", providers: [.apt(["libflac-dev"])]),
        // WebRTC playback's DTLS-SRTP: glue in C over OpenSSL 3.0's DTLS (use_srtp) and libsrtp2
        // (Debian: libssl-dev, libsrtp2-dev); a C target rather than a module map, as OpenSSL's
        // API is largely macros that Swift cannot call.
        .target(
            name: "CWebRTC",
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto"), .linkedLibrary("srtp2")]
        ),

        // MARK: Libraries
        .target(
            name: "MediaCore",
            dependencies: [
                "CFFmpeg", "COpus", "CLame", "CFLAC",
                // AsyncChannel: the bounded hand-off from the PCM producer to each encoder.
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                // AES-128-CBC of protected segments (CryptoExtras' AES._CBC, BoringSSL underneath).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "StreamKit",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "StreamHost",
            dependencies: [
                "MediaCore", "StreamKit", "CWebRTC",
                .product(name: "Hummingbird", package: "hummingbird"),
                // Its HTTP/1.1 channel, wrapped to add the playback fast path after its state handler.
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // HTTP parts of Hummingbird's pipeline (the 100-continue handler).
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                // Below its HTTP types codec, the fast path writes file regions (sendfile).
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // Live WebSocket listeners: the frame codec (the upgrade is in the host's own pipeline).
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "SystemPackage", package: "swift-system"),
                // The embedded catalog and job queue: SQLite in WAL mode.
                .product(name: "GRDB", package: "GRDB.swift"),
                // API auth: JWT (HS256, ES256, RS256) with exp/nbf/aud checks.
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                // Observability: metrics in the Prometheus text format (registry used directly:
                // swift-metrics' API has no HELP text, which `promtool check metrics` requires).
                .product(name: "Prometheus", package: "swift-prometheus"),
                // S3Storage (Signature V4 from StreamKit) and PostgresCatalog.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            resources: [
                // The demo page, compiled into the binary (no bundle to deploy).
                .embedInCode("Delivery/demo.html"),
                // The listening dashboard, likewise.
                .embedInCode("Analytics/dashboard.html"),
                // The OpenAPI document, served at /openapi.json (Tests/scripts/openapi_check.sh holds the code to it).
                .embedInCode("API/openapi.json"),
            ]
        ),
        // The gRPC API over StreamHost's operations: a target of its own, so that what embeds
        // StreamHost alone (Examples/, Fuzz/) does not build gRPC and protobuf.
        .target(
            name: "StreamRPC",
            dependencies: [
                "StreamHost", "MediaCore",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .executableTarget(
            name: "streamhost",
            dependencies: [
                "StreamHost", "StreamRPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Configuration", package: "swift-configuration"),
                // `ingest --server`: the API's typed client.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),

        // Simulated HLS and progressive listeners against a loopback host, one keep-alive
        // SwiftNIO connection each (issue 9); the tests run a short version of it.
        .executableTarget(
            name: "veza-loadgen",
            dependencies: [
                "StreamKit", "CWebRTC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        // MARK: Tests
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        // libebur128, the reference loudness meter the MediaCore tests compare with (test-only).
        .systemLibrary(name: "CEbur128", path: "Tests/CEbur128", pkgConfig: "libebur128", providers: [.apt(["libebur128-dev"])]),
        .testTarget(name: "MediaCoreTests", dependencies: ["MediaCore", "StreamKit", "TestSupport", "CEbur128"]),
        .testTarget(
            name: "StreamKitTests",
            dependencies: [
                "StreamKit",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        // The fuzz harnesses (Fuzz/ links Harness.swift from here) replayed on their seeds and
        // regressions with blind mutations: CI's short fuzzing step, in the test build.
        .testTarget(
            name: "FuzzReplayTests",
            dependencies: [
                "StreamHost", "MediaCore", "StreamKit",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Depends on the executable so that `swift test` builds it: tests run it as a subprocess.
        .testTarget(
            name: "StreamHostTests",
            dependencies: [
                "StreamHost", "MediaCore", "StreamKit", "TestSupport", "streamhost", "veza-loadgen",
                // In-process route tests (app.test(.router)).
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Upcoming features on every Swift target, as swift-configuration's manifest does.
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ]
}
