#!/usr/bin/env bash
# Listening analytics against a known truth (issue 24): LISTENERS simulated players
# (`veza-loadgen --behaviours`) over a mixed catalogue, each one session at real time that
# completes, skips (2-25 s), abandons (after 35 s, before its player has fetched the end of the
# track), pauses (5-40 s) and resumes, or seeks, with a 30 s buffer (as hls.js keeps); half of
# them send beacons. Each writes what it did (the truth); Benchmarks/analytics_accuracy.py
# compares it with what the host reports, for each BACKEND:
#   sqlite      the embedded default (the catalog database);
#   clickhouse  a ClickHouse server started by scripts/services.sh, stopped for OUTAGE seconds in
#               the middle of the run (the host spools to disk and sends once it is back).
# 1. TRACK_SECONDS tracks (distinct tones and noise, 44.1 kHz FLAC) are uploaded and packaged by
#    the host in signed mode (6 s segments, the default ladder);
# 2. a country database (mmdb-writer) maps the /24 blocks of 100.64.0.0/18 to seven countries
#    (one block in eight to none); listener i claims 100.64.0.1 + i in X-Forwarded-For, which
#    the host trusts from 127.0.0.1 (server.trustedProxies);
# 3. listener i is given track i mod… (weighted: earlier tracks are more popular) and a
#    listener subject drawn from SUBJECTS (some listen to several tracks); `streamhost sign
#    --listeners-file` signs one URL per listener, each its own playback session;
# 4. the run: listeners start evenly over RAMP seconds; it lasts until the longest session is
#    done; then the sessions end after the idle timeout (IDLE: the host's default, 120 s; a
#    pause longer than it, less a buffer, makes two sessions, as the host defines them) and the
#    figures are compared.
# Usage: Benchmarks/analytics-accuracy.sh   (make bench-analytics; uses .build/release binaries)
# Knobs: LISTENERS=10000  RAMP=240  SUBJECTS=6000  BACKENDS="sqlite clickhouse"  OUTAGE=60
#        TRACK_SECONDS="90 120 150 180 210 240"  MIX=complete=30,skip=25,abandon=20,pause=15,seek=10
#        BEACON_FRACTION=0.5  SEED=1  IDLE=120  KEEP=1 (keep the work directory)  STREAMHOST=path  LOADGEN=path
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=Benchmarks/lib.sh
. Benchmarks/lib.sh

LISTENERS=${LISTENERS:-10000}
RAMP=${RAMP:-240}
SUBJECTS=${SUBJECTS:-6000}
BACKENDS=${BACKENDS:-sqlite clickhouse}
OUTAGE=${OUTAGE:-60}
TRACK_SECONDS=${TRACK_SECONDS:-90 120 150 180 210 240}
MIX=${MIX:-complete=30,skip=25,abandon=20,pause=15,seek=10}
BEACON_FRACTION=${BEACON_FRACTION:-0.5}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
IDLE=${IDLE:-120}

# The host reads every VEZA_… variable: only the ones set below may count.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^VEZA_' || true)
ensure_tools jq ffmpeg curl
bin=${STREAMHOST:-.build/release/streamhost}
loadgen=${LOADGEN:-.build/release/veza-loadgen}
[ -x "$bin" ] && [ -x "$loadgen" ] || die "no $bin or $loadgen (make bench-analytics builds them)"
python3 -c "import mmdb_writer, maxminddb" 2>/dev/null || scripts/install-deps.sh

work=$(mktemp -d /tmp/veza-analytics.XXXXXX)
data=$work/data
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/services.sh stop "$work/services" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- the catalogue and the country database -------------------------------------------------------
i=0
for seconds in $TRACK_SECONDS; do
  tone_flac "$work/track-$i.flac" "$seconds" "$i"
  i=$((i + 1))
done
networks=()
codes=(DE FR BR JP US NZ IN)
for block in $(seq 0 63); do
  [ $((block % 8)) = 7 ] || networks+=("100.64.$block.0/24=${codes[$((block % 8))]}")
done
python3 Tests/scripts/make_mmdb.py "$work/countries.mmdb" --ipv4 "${networks[@]}" > /dev/null

# --- the host ---------------------------------------------------------------------------------------
host=""
base=""
start_host() {   # start_host NAME [VAR=VALUE…]
  local log=$work/serve-$1.log
  shift
  env VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_UPLOAD_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0 \
    VEZA_SERVER_TRUSTED_PROXIES=127.0.0.1 VEZA_ANALYTICS_COUNTRY_DATABASE="$work/countries.mmdb" \
    VEZA_ANALYTICS_IDLE_TIMEOUT_SECONDS=$IDLE "$@" \
    "$bin" serve --port 0 --data-directory "$data" > "$log" 2>&1 &
  host=$!
  pids+=("$host")
  wait_listening "$log" "$host"
}
stop_host() { kill -TERM "$host" 2>/dev/null || true; wait "$host" 2>/dev/null || true; }

admin=$("$bin" token --scope admin --ttl 6h --data-directory "$data" 2>"$work/token.log") \
  || { cat "$work/token.log" >&2; die "streamhost token failed"; }
auth=(-H "Authorization: Bearer $admin")
start_host packaging
echo "== upload and package $(wc -w <<< "$TRACK_SECONDS") tracks ($TRACK_SECONDS s)"
ids=()
i=0
for seconds in $TRACK_SECONDS; do
  response=$(curl_ "${auth[@]}" -X POST --data-binary @"$work/track-$i.flac" -H 'Content-Type: audio/flac' "$base/v1/tracks")
  id=$(jq -r '.id // empty' <<< "$response")
  [ -n "$id" ] || die "upload failed: $response"
  ids+=("$id")
  i=$((i + 1))
done
for id in "${ids[@]}"; do
  deadline=$((SECONDS + 900))
  until curl_ "${auth[@]}" "$base/v1/tracks/$id" | grep -q '"status":"ready"'; do
    [ $SECONDS -lt $deadline ] || die "track $id not ready after 15 minutes"
    sleep 0.5
  done
done
stop_host

# --- one run per backend --------------------------------------------------------------------------
longest=0
for seconds in $TRACK_SECONDS; do [ "$seconds" -gt "$longest" ] && longest=$seconds; done
# The last listener starts at RAMP; a pause adds at most 40 s; then the session plays out.
duration=$((RAMP + longest + 40 + 30))
results=()
status=0
for backend in $BACKENDS; do
  run=$work/$backend
  mkdir -p "$run"
  # The plan: listener i → track (earlier tracks more popular), subject, address, country.
  python3 - "$LISTENERS" "$SUBJECTS" "$SEED" "$run" "${ids[@]}" <<'PY'
import json, random, sys
listeners, subjects, seed, run, tracks = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
rng = random.Random(seed)
codes = ["DE", "FR", "BR", "JP", "US", "NZ", "IN", None]
weights = [1 / (k + 1) for k in range(len(tracks))]
plan = {"tracks": {}, "listeners": []}
for i in range(listeners):
    track = rng.choices(tracks, weights)[0]
    address = 0x64400001 + i
    block = (address >> 8) & 0xFF
    plan["listeners"].append({"track": track, "subject": f"listener-{rng.randrange(subjects)}",
                              "address": ".".join(str(address >> s & 0xFF) for s in (24, 16, 8, 0)), "country": codes[block % 8]})
for track in tracks:
    plan["tracks"][track] = sum(1 for l in plan["listeners"] if l["track"] == track)
    with open(f"{run}/subjects-{track}.txt", "w") as f:
        f.writelines(l["subject"] + "\n" for l in plan["listeners"] if l["track"] == track)
json.dump(plan, open(f"{run}/plan.json", "w"))
PY
  for id in "${ids[@]}"; do
    "$bin" sign "/hls/$id/master.m3u8" --ttl 6h --listeners-file "$run/subjects-$id.txt" --data-directory "$data" > "$run/urls-$id.txt"
  done
  # Listener i plays the next URL of its track, in listener order.
  python3 - "$run" "$base" <<'PY'
import json, sys
run, base = sys.argv[1], sys.argv[2]
plan = json.load(open(f"{run}/plan.json"))
urls = {t: iter(open(f"{run}/urls-{t}.txt").read().split()) for t in plan["tracks"]}
with open(f"{run}/urls.txt", "w") as f:
    for l in plan["listeners"]:
        f.write(base.rstrip("/") + next(urls[l["track"]]) + "\n")
PY
  extra=()
  if [ "$backend" = clickhouse ]; then
    scripts/services.sh clickhouse "$work/services" > "$run/services.log"
    # shellcheck disable=SC1091
    . "$work/services/services.env"
    extra=(VEZA_ANALYTICS_BACKEND=clickhouse VEZA_ANALYTICS_CLICKHOUSE_URL="$VEZA_CLICKHOUSE_URL"
           VEZA_ANALYTICS_CLICKHOUSE_USER=veza VEZA_ANALYTICS_CLICKHOUSE_PASSWORD=veza VEZA_ANALYTICS_CLICKHOUSE_DATABASE=accuracy)
  fi
  start_host "$backend" "${extra[@]}"
  # The URLs were signed for the host's address: rewrite them for this start's port.
  sed -i "s#^http://[^/]*#$base#" "$run/urls.txt"
  echo "== $backend: $LISTENERS listeners over ${RAMP} s, run of ${duration} s ($base)"
  if [ "$backend" = clickhouse ] && [ "$OUTAGE" -gt 0 ]; then
    ( sleep $((RAMP / 2)); echo "   ClickHouse stopped for ${OUTAGE} s"; scripts/services.sh stop-clickhouse "$work/services" > /dev/null
      sleep "$OUTAGE"; scripts/services.sh clickhouse "$work/services" > /dev/null; echo "   ClickHouse started again" ) &
    pids+=($!)
  fi
  "$loadgen" --urls "$run/urls.txt" --listeners "$LISTENERS" --duration "$duration" --ramp-seconds "$RAMP" --no-restart \
    --behaviours "$MIX" --beacon-fraction "$BEACON_FRACTION" --seed "$SEED" --truth "$run/truth.jsonl" \
    --forwarded-for 100.64.0.1 --server-pid "$host" --json "$run/loadgen.json" | tee "$run/loadgen.txt"
  wait_idle=$((IDLE + 10))
  echo "   waiting ${wait_idle} s for the sessions to end (idle timeout ${IDLE} s)"
  sleep "$wait_idle"
  check=(--sqlite "$data/catalog.sqlite")
  if [ "$backend" = clickhouse ]; then
    # Everything spooled during the outage is sent once ClickHouse is back.
    deadline=$((SECONDS + 300))
    while [ -n "$(ls -A "$data/analytics-buffer" 2>/dev/null)" ]; do
      [ $SECONDS -lt $deadline ] || { warn "the spool is not empty after 5 minutes"; break; }
      sleep 2
    done
    check=(--clickhouse "$VEZA_CLICKHOUSE_URL" --clickhouse-database accuracy)
  fi
  if python3 Benchmarks/analytics_accuracy.py --truth "$run/truth.jsonl" --plan "$run/plan.json" --api "$base" --token "$admin" \
      "${check[@]}" --label "$backend, $LISTENERS listeners" --json "$run/accuracy.json" --markdown "$run/accuracy.md"; then :; else status=1; fi
  results+=("$run/accuracy.md")
  stop_host
  [ "$backend" = clickhouse ] && scripts/services.sh stop "$work/services" > /dev/null
done
echo
echo "== summary"
for r in "${results[@]}"; do cat "$r"; echo; done
exit $status
