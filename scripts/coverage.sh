#!/usr/bin/env bash
# Line coverage per library after `swift test $COVERAGE_FLAGS --enable-code-coverage` (make coverage).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2086
bin=$(swift build ${COVERAGE_FLAGS:-} --show-bin-path)
profdata="$bin/codecov/default.profdata"
tests="$bin/veza-streamPackageTests.xctest"
llvm_cov=$(command -v llvm-cov || echo /opt/swift/usr/bin/llvm-cov)
llvm_profdata=$(command -v llvm-profdata || echo /opt/swift/usr/bin/llvm-profdata)
# An optimised `swift test` leaves the raw profiles unmerged: merge them here.
if [ ! -f "$profdata" ]; then "$llvm_profdata" merge -sparse "$bin"/codecov/*.profraw -o "$profdata"; fi
for lib in MediaCore StreamKit StreamHost; do
  printf '%s: ' "$lib"
  "$llvm_cov" report "$tests" -instr-profile="$profdata" "Sources/$lib" 2>/dev/null | awk '/^TOTAL/ {print $(NF-3) " lines covered (" $(NF-5) " lines)"}'
done
