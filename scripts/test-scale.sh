#!/usr/bin/env bash
# The scale-out half of the tests (issue 8): starts PostgreSQL, SeaweedFS's S3 gateway and
# (on demand) Varnish with scripts/services.sh, then runs the host's integration suites
# unchanged against S3 + PostgreSQL, plus the multi-node, outage, layout and CDN tests.
# Expects the test build of `make test` (.build-test). Stops every server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d /tmp/veza-services.XXXXXX)
trap 'scripts/services.sh stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
scripts/services.sh start "$dir"
set -a
# shellcheck disable=SC1091
. "$dir/services.env"
set +a
export VEZA_SERVICES_DIR="$dir"
export VEZA_STORAGE_BACKEND=s3 VEZA_CATALOG_BACKEND=postgres VEZA_POSTGRES_URL="$VEZA_PG_URL"
flags=${TEST_FLAGS:--c release -Xswiftc -enable-testing --scratch-path .build-test}
# shellcheck disable=SC2086
swift test $flags --skip-build --filter '\.(HostTests|DeliveryTests|GRPCTests|WatermarkHostTests)'
# Apart: the outage test stops the store under every host running at the time.
# shellcheck disable=SC2086
swift test $flags --skip-build --filter '\.ScaleOutTests'
