#!/usr/bin/env bash
# Host throughput (issue 6), against the real `streamhost serve` on a loopback port:
#  1. time from upload complete (the 202) to `ready` for a 5-minute stereo 44.1 kHz FLAC,
#     beside `streamhost package` of the same file in the same run (the pipeline alone),
#     so the ratio shows what the host adds (queue, publish, catalog);
#  2. jobs per minute for 30-second tracks: 12 uploads at once, until all are ready.
# A shell script rather than a package-benchmark target: it measures a separate server
# process end to end over HTTP, which is what a user of the host experiences.
# Usage: Benchmarks/host-throughput.sh   (builds release; writes nothing outside /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product streamhost >/dev/null
bin=$PWD/.build/release/streamhost
work=$(mktemp -d /tmp/veza-host-bench.XXXXXX)
host=""
trap 'kill -TERM $host 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
# shellcheck source=Benchmarks/lib.sh
. Benchmarks/lib.sh
now() { date +%s.%N; }

long=$work/long.flac
music_flac "$long" 300
for i in $(seq 1 12); do tone_flac "$work/short-$i.flac" 30 "$i"; done

echo "== reference: streamhost package (pipeline only, no host)"
t0=$(now); "$bin" package "$long" --out "$work/offline" >/dev/null; t1=$(now)
offline=$(echo "$t1 - $t0" | bc -l)

# Public mode and no per-client limits: this measures the pipeline, from one loopback client.
VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_UPLOAD_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0 \
  "$bin" serve --public --port 0 --data-directory "$work/data" > "$work/serve.log" 2>&1 &
host=$!
wait_listening "$work/serve.log" "$host"

wait_ready() {
  until curl_ "$base/v1/tracks/$1" | grep -q '"status":"\(ready\|failed\)"'; do sleep 0.1; done
  curl_ "$base/v1/tracks/$1" | grep -q '"status":"ready"' || { echo "track $1 failed"; exit 1; }
}

echo "== 5-minute track: upload complete → ready"
id=$(curl_ -X POST --data-binary @"$long" "$base/v1/tracks" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
t0=$(now); wait_ready "$id"; t1=$(now)
hosted=$(echo "$t1 - $t0" | bc -l)

echo "== 12 × 30-second tracks uploaded at once"
ids=()
t0=$(now)
for i in $(seq 1 12); do
  ids+=("$(curl_ -X POST --data-binary @"$work/short-$i.flac" "$base/v1/tracks" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')")
done
for id in "${ids[@]}"; do wait_ready "$id"; done
t1=$(now)
batch=$(echo "$t1 - $t0" | bc -l)
peak=$(awk '/VmHWM/ {print int($2 / 1024)}' /proc/$host/status)

printf '5-min track, upload complete → ready: %.1f s (offline package of the same file: %.1f s; ratio %.2f)\n' "$hosted" "$offline" "$(echo "$hosted / $offline" | bc -l)"
printf '30-s tracks: 12 in %.1f s = %.1f jobs/min (%d cores)\n' "$batch" "$(echo "12 * 60 / $batch" | bc -l)" "$(nproc)"
echo "host peak RSS: ${peak} MiB"
