// swift-tools-version:6.1
import PackageDescription

// Examples of using Veza Stream from your own code, each a small runnable program that depends on
// this repository by path, as your package would by URL. `make test` builds them (in debug, the
// configuration users build) and checks that the StreamKit-only one links no FFmpeg.
//
//   swift run PackageOneFile song.flac out/     MediaCore in a backend job: one file → HLS/DASH/progressive on disk
//   swift run ManifestOnly                      StreamKit alone: playlists, an MPD and signed URLs (links no FFmpeg)
//   swift run EmbedInHummingbird                StreamHost's routes inside your own Hummingbird application
//   swift package benchmark --target OwnBenchmark   a benchmark of your own against the public API
//
// They are one package with four targets, so that CI resolves and builds the dependencies once.
let package = Package(
    name: "veza-stream-examples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "veza-stream", path: "../"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PackageOneFile",
            dependencies: [
                .product(name: "MediaCore", package: "veza-stream"),
                .product(name: "StreamKit", package: "veza-stream"),
            ]),
        .executableTarget(
            name: "ManifestOnly",
            dependencies: [.product(name: "StreamKit", package: "veza-stream")]),
        .executableTarget(
            name: "EmbedInHummingbird",
            dependencies: [
                .product(name: "StreamHost", package: "veza-stream"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]),
        .executableTarget(
            name: "OwnBenchmark",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "StreamKit", package: "veza-stream"),
            ],
            path: "Benchmarks/OwnBenchmark",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ],
    swiftLanguageModes: [.v6]
)
