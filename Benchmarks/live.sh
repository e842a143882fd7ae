#!/usr/bin/env bash
# Live benchmarks (issue 21), on loopback, numbers for BENCHMARKS.md:
#  1. latency: one source (Benchmarks/live_bench.py, paced in real time) sends the same 128 kb/s
#     MP3, carrying a 1 kHz marker burst every 4 s, to a Veza mount and to icecast2 (Debian's,
#     burst-size 64 KiB like Veza's) at once; an ICY listener on each, and an LL-HLS player on
#     Veza that joins PART-HOLD-BACK behind the live edge and plays on a clock that stalls when a
#     part is late. Latency of each marker = the instant it is heard − the instant the source
#     wrote it (p50/p95 over every marker sent after the listeners joined). The MP3 encoder's
#     own delay (about 50 ms) is inside the LL-HLS figure, not inside the ICY ones (they match
#     bytes).
#  2. cost: MOUNTS sources (MP3 128 kb/s, paced) on one host, each transcoded to the default
#     live ladder (AAC 128 and 64, Opus 96 and 48): host CPU over the steady part of the run,
#     part-deadline misses (veza_live_part_deadline_misses_total) and part publish latency.
# Usage: Benchmarks/live.sh   (uses .build/release/streamhost, building it if missing)
# Knobs: SECONDS_LATENCY=60  MOUNTS=20  SECONDS_COST=60  PART_SECONDS=0.32 (live.partSeconds: 0.32, 0.64, 0.96)
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/lib.sh
ensure_tools ffmpeg icecast2 python3 curl

STREAMHOST=${STREAMHOST:-.build/release/streamhost}
[ -x "$STREAMHOST" ] || swift build -c release --product streamhost
SECONDS_LATENCY=${SECONDS_LATENCY:-60}
MOUNTS=${MOUNTS:-20}
SECONDS_COST=${SECONDS_COST:-60}
PART_SECONDS=${PART_SECONDS:-0.32}
work=$(mktemp -d /tmp/veza-live-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The source: quiet noise (so that every MP3 frame is unique), a 100 ms 1 kHz burst every 4 s from 2 s.
length=$((SECONDS_LATENCY > SECONDS_COST ? SECONDS_LATENCY + 10 : SECONDS_COST + 10))
ffmpeg -v error -f lavfi -i "aevalsrc=0.02*(random(0)-0.5)+0.5*sin(2*PI*1000*t)*lt(mod(t-2\,4)\,0.1)*gte(t\,2):s=44100:d=$length" \
  -ac 2 -c:a libmp3lame -b:a 128k -id3v2_version 0 -write_xing 0 -f mp3 "$work/source.mp3"
python3 -c "import json; print(json.dumps({'times': [2 + 4 * k for k in range(($length - 2) // 4 + 1)]}))" > "$work/markers.json"

start_icecast "$work" lat-pw-123 1000
pids+=($ice_pid)

start_host() {  # MOUNTS_SPEC
  rm -rf "$work/data"
  VEZA_LIVE_MOUNTS="$1" VEZA_LIVE_RECORD=false VEZA_LIVE_OPEN_LISTENING=true VEZA_LIVE_PART_SECONDS="$PART_SECONDS" VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 LOG_LEVEL=warning \
    "$STREAMHOST" serve --port 0 --data-directory "$work/data" --workers 1 > "$work/host.out" 2> "$work/host.err" &
  host_pid=$!
  pids+=($host_pid)
  wait_listening "$work/host.out" "$host_pid"
}

echo "== latency: $SECONDS_LATENCY s, markers every 4 s" >&2
start_host "lat:lat-pw-123"
python3 Benchmarks/live_bench.py latency "$work/source.mp3" "$work/markers.json" "$base" "http://127.0.0.1:$ice_port" "$SECONDS_LATENCY" | tee "$work/latency.json"
kill "$host_pid"; wait "$host_pid" 2>/dev/null || true

echo "== cost: $MOUNTS mounts, $SECONDS_COST s" >&2
spec=$(python3 -c "print(','.join(f'cost-{n}:cost-pw-123' for n in range(1, $MOUNTS + 1)))")
start_host "$spec"
python3 Benchmarks/live_bench.py cost "$work/source.mp3" "$base" "$host_pid" "$MOUNTS" "$SECONDS_COST" | tee "$work/cost.json"
kill "$host_pid"; wait "$host_pid" 2>/dev/null || true

python3 - "$work/latency.json" "$work/cost.json" "$(nproc)" <<'EOF'
import json, sys
lat, cost, cores = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
print()
print("| glass to glass (s) | markers | p50 | p95 | max |")
print("| --- | ---: | ---: | ---: | ---: |")
for name in ("veza-webrtc", "veza-websocket", "veza-llhls", "veza-icy", "icecast-icy"):
    r = lat[name]
    print(f"| {name} | {r['count']} | {r['p50']} | {r['p95']} | {r['max']} |")
print(f"\nLL-HLS player stalls: {lat['veza-llhls']['stall_seconds']} s over {lat['veza-llhls']['parts']} parts;"
      f" WebSocket player: {lat['veza-websocket']['stall_seconds']} s over {lat['veza-websocket']['parts']} parts;"
      f" WebRTC: {lat['veza-webrtc']['frames']} frames.")
print(f"\n| live cost ({cores} cores) | value |\n| --- | ---: |")
for key in ("mounts", "measured_seconds", "host_cpu_cores", "cpu_per_mount_percent", "ladder_real_time_factor",
            "deadline_misses", "parts_published", "publish_p50_le_seconds", "publish_p99_le_seconds", "fallback_seconds"):
    print(f"| {key} | {cost[key]} |")
EOF
