#!/usr/bin/env bash
# Generates the Swift code of the gRPC API (Protos/veza/v1/veza.proto) into
# Sources/StreamRPC/Generated, which is committed: the build never runs protoc (a first build of
# swift-protobuf's plugin takes about 10 minutes). Run it after editing a .proto file.
# protoc is PyPI's grpcio-tools (the same one the Python client test uses); protoc-gen-swift and
# protoc-gen-grpc-swift-2 are built from the versions Package.swift resolves.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
tools=.build-protoc
mkdir -p "$tools/Sources/Unused"
# A package whose only purpose is to build the two plugins at the root package's versions.
cat > "$tools/Package.swift" <<'SWIFT'
// swift-tools-version:6.1
import PackageDescription
let package = Package(
    name: "protoc-plugins",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
    ],
    targets: [.target(name: "Unused", dependencies: [.product(name: "GRPCProtobuf", package: "grpc-swift-protobuf")])]
)
SWIFT
echo 'enum Unused {}' > "$tools/Sources/Unused/Unused.swift"
swift build --package-path "$tools" -c release --product protoc-gen-swift
swift build --package-path "$tools" -c release --product protoc-gen-grpc-swift-2
bin=$(swift build --package-path "$tools" -c release --show-bin-path)
out=Sources/StreamRPC/Generated
rm -rf "$out" && mkdir -p "$out"
python3 -m grpc_tools.protoc -I Protos \
    --plugin=protoc-gen-swift="$bin/protoc-gen-swift" --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath --swift_out="$out" \
    --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" --grpc-swift-2_opt=Visibility=Public --grpc-swift-2_opt=FileNaming=DropPath \
    --grpc-swift-2_opt=UseAccessLevelOnImports=True --swift_opt=UseAccessLevelOnImports=true --grpc-swift-2_out="$out" \
    Protos/veza/v1/veza.proto
# swift-protobuf marks a message with a storage class `@unchecked Sendable`; the project's rule
# is a reason on the line, so the generated line gets one (the same on every regeneration).
sed -i 's|^\(public nonisolated struct [A-Za-z0-9_]*: @unchecked Sendable {\)$|\1  // copy-on-write: _storage is mutated only through _uniqueStorage(), which copies it unless uniquely referenced|' "$out/veza.pb.swift"
ls -l "$out"
