#!/usr/bin/env bash
# Live listeners at scale (issue 22), on loopback, numbers for BENCHMARKS.md: LISTENERS ICY
# listeners on one mount (MP3 128 kb/s), Veza's host and then icecast2 (Debian's, configured for
# 16,384 clients, the same 64 KiB burst), both fed by the same paced source at once, the listeners
# simulated by veza-loadgen (a live ICY stream is a progressive body that never ends: its
# progressive listeners read it no faster than real time and count an underrun whenever the
# audio they have is played out). Each server's CPU and RSS are sampled by veza-loadgen; CPU per
# listener is over the steady state (5 s after the ramp to the end), so the ramp's connection
# setup is not in it. The 2 cores are shared by the server, veza-loadgen and the source.
# Then WebRTC: WEBRTC_STEPS sessions on the same mount (veza-loadgen --whep: each a real ICE,
# DTLS and SRTP session on its own UDP socket), 40 s each: packets lost, underruns, delay from
# the host's send time (its RTCP sender reports) to arrival, host CPU per session, and the
# ladder's part-deadline misses (from /metrics) during the step: how far it scales.
# Then LL-HLS: LISTENERS listeners of one rung's media playlist (veza-loadgen --llhls: each starts
# PART-HOLD-BACK from the edge and fetches every part after a blocking playlist reload), the host
# alone and then behind Varnish (scripts/services.sh varnish: request coalescing turns the
# listeners' identical blocking reloads and part requests into one backend request each): stalls,
# delay to the live edge (a part's first sample, from its PROGRAM-DATE-TIME, to when it plays)
# and CPU per listener.
# Usage: Benchmarks/live-listeners.sh
# Knobs: LISTENERS=10000 DURATION=90 RAMP=20 WEBRTC_STEPS="250 500 1000 2000" LLHLS_RUNG=aac-128
#   RUNS="webrtc llhls icy" (the parts to run; ICY=0 is RUNS="webrtc llhls")
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/lib.sh
ensure_tools ffmpeg icecast2 python3 curl

STREAMHOST=${STREAMHOST:-.build/release/streamhost}
LOADGEN=${LOADGEN:-.build/release/veza-loadgen}
[ -x "$STREAMHOST" ] || swift build -c release --product streamhost
[ -x "$LOADGEN" ] || swift build -c release --product veza-loadgen
LISTENERS=${LISTENERS:-10000}
DURATION=${DURATION:-90}
RAMP=${RAMP:-20}
RUNS=${RUNS:-webrtc llhls icy}
[ "${ICY:-1}" = 0 ] && RUNS=${RUNS//icy/}
has() { [[ " $RUNS " == *" $1 "* ]]; }
work=$(mktemp -d /tmp/veza-live-listeners.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((LISTENERS + 1024)) ] || die "$LISTENERS listeners need more open files than $(ulimit -n)"

# Two runs' worth of source: noise under a tone, CBR 128 kb/s.
length=$((2 * DURATION + 40))
ffmpeg -v error -f lavfi -i "aevalsrc=0.02*(random(0)-0.5)+0.3*sin(2*PI*440*t):s=44100:d=$length" \
  -ac 2 -c:a libmp3lame -b:a 128k -id3v2_version 0 -write_xing 0 -f mp3 "$work/source.mp3"
start_icecast "$work" load-pw-123 16384
pids+=($ice_pid)

rm -rf "$work/data"
VEZA_LIVE_MOUNTS="load:load-pw-123" VEZA_LIVE_RECORD=false VEZA_LIVE_OPEN_LISTENING=true VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 \
  VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0 LOG_LEVEL=warning \
  "$STREAMHOST" serve --port 0 --data-directory "$work/data" --workers 1 > "$work/host.out" 2> "$work/host.err" &
host_pid=$!
pids+=($host_pid)
wait_listening "$work/host.out" "$host_pid"

python3 Benchmarks/live_bench.py source "$work/source.mp3" "$length" "$base" /live/load load-pw-123 "http://127.0.0.1:$ice_port" /load load-pw-123 &
pids+=($!)
sleep 6

run() {  # NAME URL PID
  echo "== $1: $LISTENERS ICY listeners for ${DURATION}s (ramp ${RAMP}s)" >&2
  "$LOADGEN" --progressive-url "$2" --progressive-fraction 1 --progressive-kbps 128 --listen-seconds "$DURATION" \
    --buffer-seconds 8 --no-restart --listeners "$LISTENERS" --duration "$DURATION" --ramp-seconds "$RAMP" --server-pid "$3" \
    --json "$work/$1.json" > "$work/$1.log" 2>&1 || true
  tail -n 12 "$work/$1.log" >&2
}
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
echo "idle RSS with the source connected: veza $(rss "$host_pid") MiB, icecast2 $(rss "$ice_pid") MiB" | tee "$work/idle.txt" >&2
misses() { curl_ "$base/metrics" | awk '$1 == "veza_live_part_deadline_misses_total" {print $2}'; }
has webrtc || WEBRTC_STEPS=" "
for n in ${WEBRTC_STEPS:-250 500 1000 2000}; do
  echo "== WebRTC: $n sessions for 40 s (ramp 10 s)" >&2
  before=$(misses)
  "$LOADGEN" --whep "$base/whep/load" --listeners "$n" --duration 40 --ramp-seconds 10 --server-pid "$host_pid" \
    --json "$work/webrtc-$n.json" > "$work/webrtc-$n.log" 2>&1 || true
  after=$(misses)
  python3 - "$work/webrtc-$n.json" "$n" "${before:-0}" "${after:-0}" <<'PY' | tee -a "$work/webrtc.md"
import json, sys
r, n, before, after = json.load(open(sys.argv[1])), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = r.get("server") or {}
print(f"| {n} | {r['connected']} | {sum(r['failed'].values())} | {r['packets']} | {r['lost']} | {r['underruns']} | "
      f"{r['timeToFirstPacketMs']['p50']:.0f} / {r['timeToFirstPacketMs']['p99']:.0f} ms | {r['delayToLiveEdgeMs']['p50']:.1f} / {r['delayToLiveEdgeMs']['p99']:.1f} ms | "
      f"{s.get('meanCores', 0):.3f} | {s.get('meanCores', 0) / n * 1e6:.0f} µs/s | {s.get('peakRSSMiB', 0):.0f} MiB | {after - before:.0f} |")
PY
done
webrtc_table() {
  echo; echo "| WebRTC sessions | connected | failed | packets | lost | underruns | first packet p50 / p99 | delay p50 / p99 | host cores | CPU per session | host RSS | part-deadline misses |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  cat "$work/webrtc.md"
}
has webrtc && webrtc_table

llhls() {  # NAME BASE
  echo "== LL-HLS ($1): $LISTENERS listeners for ${DURATION}s (ramp ${RAMP}s)" >&2
  before=$(misses)
  "$LOADGEN" --llhls "$2/live/load/${LLHLS_RUNG:-aac-128}/index.m3u8" --listeners "$LISTENERS" --duration "$DURATION" \
    --ramp-seconds "$RAMP" --server-pid "$host_pid" ${3:+--server-pid "$3"} --json "$work/llhls-$1.json" > "$work/llhls-$1.log" 2>&1 || true
  after=$(misses)
  tail -n 14 "$work/llhls-$1.log" >&2
  python3 - "$work/llhls-$1.json" "$1" "$LISTENERS" "${before:-0}" "${after:-0}" <<'PY' | tee -a "$work/llhls.md"
import json, sys
r, name, n, before, after = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
st, s, d = r.get("steady") or {}, r.get("server") or {}, r.get("delayToLiveEdgeMs") or {}
cores = st.get("serverCores", 0)
print(f"| {name} | {n} | {r['sessions']} | {r['segments'].get('parts', 0)} | {r['requests']} | {r['errorsTotal']} | {r['stalls']} | "
      f"{r['timeToFirstAudioMs']['p50']:.0f} / {r['timeToFirstAudioMs']['p99']:.0f} ms | {d.get('p50', 0):.0f} / {d.get('p99', 0):.0f} / {d.get('max', 0):.0f} ms | "
      f"{cores:.3f} | {cores / n * 1e6:.1f} µs/s | {s.get('peakRSSMiB', 0):.0f} MiB | {after - before:.0f} |")
PY
}
llhls_table() {
  echo; echo "| LL-HLS, one rung | listeners | sessions | parts played | requests | errors | stalls | first audio p50 / p99 | live delay p50 / p99 / max | server cores (steady) | CPU per listener | server RSS | part-deadline misses |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  cat "$work/llhls.md"
}
if has llhls; then
  llhls host "$base"
  # The same listeners through Varnish; its CPU is counted with the host's.
  scripts/services.sh varnish "$work/services" "${base##*:}" >&2
  varnish_url=$(sed -n 's/^VEZA_VARNISH_URL=//p' "$work/services/services.env")
  varnish_pid=$(sed -n 's/^VARNISH_PID=//p' "$work/services/services.env")
  llhls varnish "$varnish_url" "$varnish_pid"
  scripts/services.sh stop "$work/services" >&2 || true
  llhls_table
fi
has icy || exit 0
run veza "$base/live/load" "$host_pid"
run icecast "http://127.0.0.1:$ice_port/load" "$ice_pid"

cat "$work/idle.txt"
has webrtc && webrtc_table
has llhls && llhls_table
python3 - "$work/veza.json" "$work/icecast.json" "$LISTENERS" <<'PY'
import json, sys
rows = {}
for name, path in (("veza", sys.argv[1]), ("icecast2", sys.argv[2])):
    r = json.load(open(path))
    steady = r.get("steady") or {}
    seconds = steady.get("seconds") or 0
    cpu = steady.get("serverCPUSeconds") or 0
    listeners = int(sys.argv[3])
    rows[name] = {
        "listeners": r["listeners"], "sessions": r["sessions"], "stalls": r["stalls"], "errors": r["errorsTotal"],
        "first_audio_p50_ms": r["progressive"]["timeToFirstAudioMs"]["p50"] if r.get("progressive") else None,
        "first_audio_p99_ms": r["progressive"]["timeToFirstAudioMs"]["p99"] if r.get("progressive") else None,
        "mean_kbps": round(r["progressive"]["meanKbps"], 1) if r.get("progressive") else None,
        "steady_seconds": round(seconds, 1), "cpu_cores": round(cpu / seconds, 3) if seconds else None,
        "cpu_us_per_listener_second": round(cpu / seconds / listeners * 1e6, 2) if seconds else None,
        "peak_rss_mib": round(r["server"]["peakRSSMiB"], 1) if r.get("server") else None,
    }
print(json.dumps(rows, indent=1))
v, i = rows["veza"], rows["icecast2"]
print("\n| ICY listeners, one mount | veza | icecast2 | veza / icecast2 |\n| --- | ---: | ---: | ---: |")
for key in rows["veza"]:
    a, b = v[key], i[key]
    ratio = f"{a / b:.2f}×" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else ""
    print(f"| {key} | {a} | {b} | {ratio} |")
PY
