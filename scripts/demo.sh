#!/usr/bin/env bash
# The README's first command: builds streamhost, makes a demo track with ffmpeg, starts the
# host on the embedded default (./data: local disk + SQLite), uploads the track through the
# API, waits until every rendition is published, and keeps serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# STREAMHOST=path uses an existing binary instead of building one.
bin=${STREAMHOST:-}
if [ -z "$bin" ]; then
  swift build -c release --product streamhost
  bin=.build/release/streamhost
fi
port=${VEZA_PORT:-8080}
data=${VEZA_DATA_DIRECTORY:-data}
mkdir -p "$data"
demo=$data/demo-track.flac
if [ ! -f "$demo" ]; then
  echo "Making a 30-second 5.1 demo track at $demo"
  ffmpeg -v error -y -f lavfi \
    -i "aevalsrc=0.4*sin(2*PI*220*t)*(1+sin(2*PI*0.5*t))/2|0.4*sin(2*PI*330*t)|0.3*sin(2*PI*440*t)|0.2*sin(2*PI*55*t)|0.1*sin(2*PI*660*t)|0.1*sin(2*PI*880*t):s=48000:d=30:c=5.1(side)" \
    -metadata title="Veza Demo Tone" -metadata artist="Veza Stream" -metadata album="Demo" \
    -c:a flac -sample_fmt s32 -bits_per_raw_sample 24 "$demo"
fi
# Tokens for this demo: an admin token for the API and a stream token for the demo page.
admin=$("$bin" token --scope admin --ttl 7d --subject demo-admin --data-directory "$data" 2>/dev/null)
listener=$("$bin" token --scope stream --ttl 7d --subject demo-listener --data-directory "$data" 2>/dev/null)
"$bin" serve --port "$port" --data-directory "$data" &
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null' EXIT INT TERM
base=http://127.0.0.1:$port
for _ in $(seq 100); do curl -s --noproxy '*' "$base/healthz" >/dev/null && break; sleep 0.1; done
echo "== uploading $demo (Idempotency-Key: demo-track, so a rerun reuses it)"
reply=$(curl -sS --noproxy '*' -X POST -H "Authorization: Bearer $admin" -H 'Idempotency-Key: demo-track' \
  --data-binary @"$demo" "$base/v1/tracks")
echo "$reply"
id=$(echo "$reply" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
until curl -s --noproxy '*' -H "Authorization: Bearer $admin" "$base/v1/tracks/$id" | grep -q '"status":"\(ready\|failed\)"'; do
  sleep 0.5
done
track=$(curl -s --noproxy '*' -H "Authorization: Bearer $admin" "$base/v1/tracks/$id")
field() { echo "$track" | python3 -c "import json,sys; t=json.load(sys.stdin)['playback']; print($1)"; }
echo
echo "The host is serving on $base (Ctrl-C stops it gracefully). Signed URLs, valid for 6 hours:"
echo "  demo page:      $base/demo#token=$listener"
echo "  HLS master:     $base$(field "t['hls']")"
echo "  DASH MPD:       $base$(field "t['dash']")"
echo "  progressive:    $base$(field "[p['url'] for p in t['progressive'] if p['rendition']=='mp3-320'][0]")"
echo "  waveform:       $base$(field "t['waveform']")"
echo "Try:"
echo "  ffplay '$base$(field "t['hls']")'"
echo "  curl -H 'Authorization: Bearer \$TOKEN' $base/v1/tracks/$id   # TOKEN=\$($bin token --scope admin --data-directory $data)"
echo "  curl $base/metrics"
wait $host
