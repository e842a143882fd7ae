#!/usr/bin/env bash
# Webhook delivery (issue 27) on this machine's cores, against the real `streamhost serve`:
#  1. latency from the state change to the receiver: uploads of a 1 s FLAC from 4 parallel
#     clients to a host without workers (each accepted upload is a `track.created` written in
#     the upload's transaction); latency = arrival at the receiver − the event's timestamp (the
#     moment the catalog recorded it, in milliseconds), p50/p99 over LATENCY_EVENTS events;
#  2. throughput: THROUGHPUT_EVENTS events made while the receiver is down (each delivery fails
#     and is retried every second: the schedule here), then the receiver started: deliveries per
#     second over the first 95 % of arrivals (the outbox draining; the rest wait out the HTTP
#     client's backoff on the connections refused during the outage, then their retry).
# The receiver (Tests/scripts/webhook_receiver.py) checks every signature with the Standard
# Webhooks reference library; it shares the cores with the host.
# Usage: Benchmarks/webhooks.sh   (STREAMHOST=path to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
LATENCY_EVENTS=${LATENCY_EVENTS:-400}
THROUGHPUT_EVENTS=${THROUGHPUT_EVENTS:-3000}
if [ -z "${STREAMHOST:-}" ]; then
  scripts/install-deps.sh
  swift build -c release --product streamhost >/dev/null
  STREAMHOST=$PWD/.build/release/streamhost
fi
work=$(mktemp -d /tmp/veza-webhook-bench.XXXXXX)
host="" receiver=""
trap 'kill -9 $receiver 2>/dev/null || true; kill -TERM $host 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
# shellcheck source=Benchmarks/lib.sh
. Benchmarks/lib.sh
tone_flac "$work/one.flac" 1 1

VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_UPLOAD_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0 \
VEZA_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true VEZA_WEBHOOKS_RETRY_SCHEDULE=$(printf '1%.0s,' $(seq 1 300))1 VEZA_QUEUE_MAX_DEPTH=100000 \
  "$STREAMHOST" serve --public --workers 0 --port 0 --data-directory "$work/data" > "$work/serve.log" 2>&1 &
host=$!
wait_listening "$work/serve.log" "$host"
port=$(free_port)
start_receiver() {
  python3 Tests/scripts/webhook_receiver.py --port "$port" --secret "$1" --out "$work/received.jsonl" > "$work/receiver.port" &
  receiver=$!
  until [ -s "$work/receiver.port" ]; do sleep 0.05; done
}
secret=$(curl_ -X POST -H 'Content-Type: application/json' \
  --data "{\"url\":\"http://127.0.0.1:$port/hook\",\"events\":[\"track.created\"]}" "$base/v1/webhooks" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
start_receiver "$secret"

upload_many() {   # N: uploads from 4 parallel clients
  seq 1 "$1" | xargs -P 4 -I{} curl -sS --noproxy '*' -o /dev/null -X POST -H 'Content-Type: audio/flac' \
    --data-binary "@$work/one.flac" "$base/v1/tracks"
}
wait_received() {   # N: until N lines have arrived (at most 5 minutes)
  for _ in $(seq 1 3000); do
    [ "$(wc -l < "$work/received.jsonl" 2>/dev/null || echo 0)" -ge "$1" ] && return 0
    sleep 0.1
  done
  die "only $(wc -l < "$work/received.jsonl") of $1 deliveries arrived"
}

echo "== latency: $LATENCY_EVENTS track.created events, receiver up"
upload_many "$LATENCY_EVENTS"
wait_received "$LATENCY_EVENTS"
python3 - "$work/received.jsonl" <<'PY'
import json, sys
from datetime import datetime
lines = [json.loads(l) for l in open(sys.argv[1])]
assert all(l["valid"] for l in lines), "a signature did not verify"
lat = sorted((l["received"] - datetime.fromisoformat(l["eventTime"].replace("Z", "+00:00")).timestamp()) * 1000 for l in lines)
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"deliveries {len(lat)}, latency from the state change: p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, max {lat[-1]:.1f} ms")
PY

echo "== throughput: $THROUGHPUT_EVENTS events made while the receiver is down, then drained"
kill -9 "$receiver"; wait "$receiver" 2>/dev/null || true
: > "$work/received.jsonl"
upload_many "$THROUGHPUT_EVENTS"
sleep 2   # every delivery has failed an attempt and is retried each second (the schedule here)
rm -f "$work/receiver.port"
start_receiver "$secret"
wait_received "$THROUGHPUT_EVENTS"
python3 - "$work/received.jsonl" "$THROUGHPUT_EVENTS" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert all(l["valid"] for l in lines), "a signature did not verify"
ids = {l["id"] for l in lines}
times = sorted(l["received"] for l in lines)
span = times[-1] - times[0]
# The rate over the first 95 %: the last few wait out async-http-client's backoff on the
# connections refused while the receiver was down (then their own retry).
t95 = times[int(0.95 * len(times)) - 1] - times[0]
print(f"deliveries {len(lines)} ({len(ids)} distinct webhook-ids of {sys.argv[2]}); 95 % in {t95:.2f} s: "
      f"{0.95 * len(lines) / max(t95, 1e-3):.0f} deliveries/s; all in {span:.2f} s")
PY
curl_ "$base/metrics" | grep '^veza_webhook_deliveries_total'
