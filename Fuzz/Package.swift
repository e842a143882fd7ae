// swift-tools-version:6.1
import PackageDescription

// libFuzzer harnesses for every parser that reads outside input (issue 27), in their own package
// (like Benchmarks/) so that depending on Veza Stream never builds them. One binary holds them
// all; `VEZA_FUZZ_TARGET` picks the harness. Build and run: `make fuzz` (scripts/fuzz.sh), which
// builds with `--sanitize=fuzzer --sanitize=address` in debug (assertions and bounds checks on).
let package = Package(
    name: "veza-stream-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "veza-stream", path: "../"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "veza-fuzz",
            dependencies: [
                .product(name: "MediaCore", package: "veza-stream"),
                .product(name: "StreamKit", package: "veza-stream"),
                .product(name: "StreamHost", package: "veza-stream"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Sources/veza-fuzz"
        ),
    ]
)
