#!/usr/bin/env bash
# The scale-out half of the tests (issue 8): starts PostgreSQL, SeaweedFS's S3 gateway and
# (on demand) Varnish with scripts/services.sh, then runs the host's integration suites
# unchanged against S3 + PostgreSQL, plus the multi-node, outage, layout and CDN tests.
# Expects the test build of `make test` (.build-test). Stops every server it started.
#
# The two halves run at the same time, each against services of its own: the outage test stops
# the store under every host running at the time, so it cannot share one with the other suites.
# (They took 233 s and 205 s one after the other; the test run is mostly waiting on servers,
# players and timeouts, about 45 % of 2 cores.) SwiftPM holds a lock on its build folder for as
# long as `swift test` runs, so the second half runs the test bundle itself (swift-testing's
# entry point, as `swift test` calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
flags=${TEST_FLAGS:--c release -Xswiftc -enable-testing --scratch-path .build-test}
# shellcheck disable=SC2086
bundle=$(swift build $flags --show-bin-path)/veza-streamPackageTests.xctest
[ -x "$bundle" ] || { echo "no test bundle at $bundle: run make test (or swift build --build-tests $flags) first" >&2; exit 1; }
hosts=$(mktemp -d /tmp/veza-services.XXXXXX)
outage=$(mktemp -d /tmp/veza-services.XXXXXX)
log=$(mktemp /tmp/veza-scaleout.XXXXXX.log)
cleanup() {
    for dir in "$hosts" "$outage"; do scripts/services.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; done
    rm -f "$log"
}
trap cleanup EXIT
scripts/services.sh start "$hosts"
scripts/services.sh start "$outage"

# Runs the rest of the line with the backends of the services in DIR.
with_services() {
    local dir=$1
    shift
    (
        set -a
        # shellcheck disable=SC1091
        . "$dir/services.env"
        set +a
        export VEZA_SERVICES_DIR="$dir"
        export VEZA_STORAGE_BACKEND=s3 VEZA_CATALOG_BACKEND=postgres VEZA_POSTGRES_URL="$VEZA_PG_URL"
        "$@"
    )
}

with_services "$outage" "$bundle" --testing-library swift-testing --filter '\.ScaleOutTests' > "$log" 2>&1 &
scaleout=$!
status=0
# shellcheck disable=SC2086
with_services "$hosts" swift test $flags --skip-build --filter '\.(HostTests|DeliveryTests|GRPCTests|WatermarkHostTests)' || status=$?
wait "$scaleout" || status=$?
echo "--- ScaleOutTests (run alongside, against services of its own) ---"
cat "$log"
exit "$status"
