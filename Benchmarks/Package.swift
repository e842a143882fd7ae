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
    ],
    swiftLanguageModes: [.v6]
)
