#!/usr/bin/env bash
# Line coverage per library after `swift test --enable-code-coverage` (debug build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(swift build --show-bin-path)
profdata="$bin/codecov/default.profdata"
tests="$bin/veza-streamPackageTests.xctest"
llvm_cov=$(command -v llvm-cov || echo /opt/swift/usr/bin/llvm-cov)
for lib in MediaCore StreamKit StreamHost; do
  printf '%s: ' "$lib"
  "$llvm_cov" report "$tests" -instr-profile="$profdata" "Sources/$lib" 2>/dev/null | awk '/^TOTAL/ {print $(NF-3) " lines covered (" $(NF-5) " lines)"}'
done
