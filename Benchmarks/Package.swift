// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package (like swift-nio's) so that depending on Veza Stream
// never pulls in the benchmark tooling. Run: `make bench` (or `swift package benchmark` here).
let package = Package(
    name: "veza-stream-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "veza-stream", path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // veza-loadgen: listeners on one keep-alive SwiftNIO connection each.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // The reference implementations measured in the same run as ours.
        .systemLibrary(name: "CEbur128", path: "Sources/CEbur128", pkgConfig: "libebur128", providers: [.apt(["libebur128-dev"])]),
        .systemLibrary(name: "CSoxr", path: "Sources/CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CSwresample", path: "Sources/CSwresample", pkgConfig: "libswresample", providers: [.apt(["libswresample-dev"])]),
        // Inputs and child-process measurement shared by the benchmarks that run ffmpeg.
        .target(name: "BenchmarkSupport", path: "Sources/BenchmarkSupport"),
        .executableTarget(
            name: "ResamplerBenchmarks",
            dependencies: [
                "CSoxr", "CSwresample",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MediaCore", package: "veza-stream"),
            ],
            path: "Benchmarks/ResamplerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "DSPBenchmarks",
            dependencies: [
                "CEbur128",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MediaCore", package: "veza-stream"),
            ],
            path: "Benchmarks/DSPBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "StreamKitBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "StreamKit", package: "veza-stream"),
            ],
            path: "Benchmarks/StreamKitBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "DecodeBenchmarks",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MediaCore", package: "veza-stream"),
            ],
            path: "Benchmarks/DecodeBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "PackagingBenchmarks",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/PackagingBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Simulated HLS and progressive listeners against a loopback host (see LoadGen/LoadGen.swift).
        .executableTarget(
            name: "veza-loadgen",
            dependencies: [
                .product(name: "StreamKit", package: "veza-stream"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "LoadGen"
        ),
    ],
    swiftLanguageModes: [.v6]
)
