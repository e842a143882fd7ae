#!/usr/bin/env bash
# The README's first command: builds streamhost, makes a demo track with ffmpeg, starts the
# host on the embedded default (./data: local disk + SQLite), uploads the track through the
# API, waits until every rendition is published, and keeps serving until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product streamhost
bin=.build/release/streamhost
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
"$bin" serve --port "$port" --data-directory "$data" &
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null' EXIT INT TERM
base=http://127.0.0.1:$port
for _ in $(seq 100); do curl -s --noproxy '*' "$base/healthz" >/dev/null && break; sleep 0.1; done
echo "== uploading $demo (Idempotency-Key: demo-track, so a rerun reuses it)"
reply=$(curl -sS --noproxy '*' -X POST -H 'Idempotency-Key: demo-track' --data-binary @"$demo" "$base/v1/tracks")
echo "$reply"
id=$(echo "$reply" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
until curl -s --noproxy '*' "$base/v1/tracks/$id" | grep -q '"status":"\(ready\|failed\)"'; do sleep 0.5; done
echo
echo "The host is serving on $base (Ctrl-C stops it gracefully). Try:"
echo "  curl $base/v1/tracks/$id          # status, metadata, loudness, renditions"
echo "  curl $base/v1/tracks              # the catalog"
echo "  curl -X POST --data-binary @some.mp3 $base/v1/tracks   # upload another"
echo "  ffplay $data/objects/tracks/$id/v1/progressive/mp3-320.mp3"
echo "  ls $data/objects/tracks/$id/v1/   # published: cmaf/, progressive/, waveform.*, manifest.json"
wait $host
