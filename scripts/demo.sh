#!/usr/bin/env bash
# The README's first command: builds streamhost, makes a demo track with ffmpeg, and runs the
# real media path on it (sniff → probe → streaming decode with BS.775 downmix).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product streamhost
bin=.build/release/streamhost
mkdir -p data/demo
demo=data/demo/demo-track.flac
if [ ! -f "$demo" ]; then
  echo "Making a 30-second 5.1 demo track at $demo"
  ffmpeg -v error -y -f lavfi \
    -i "aevalsrc=0.4*sin(2*PI*220*t)*(1+sin(2*PI*0.5*t))/2|0.4*sin(2*PI*330*t)|0.3*sin(2*PI*440*t)|0.2*sin(2*PI*55*t)|0.1*sin(2*PI*660*t)|0.1*sin(2*PI*880*t):s=48000:d=30:c=5.1(side)" \
    -metadata title="Veza Demo Tone" -metadata artist="Veza Stream" -metadata album="Demo" \
    -c:a flac -sample_fmt s32 -bits_per_raw_sample 24 "$demo"
fi
echo "== streamhost version"; "$bin" version
echo "== streamhost probe $demo"; "$bin" probe "$demo"
echo "== streamhost loudness $demo"; "$bin" loudness "$demo"
echo "== streamhost package $demo --out data/demo/packaged"
rm -rf data/demo/packaged
"$bin" package "$demo" --out data/demo/packaged
echo
echo "Try it:"
echo "  ffplay data/demo/packaged/master.m3u8          # HLS, CMAF, all renditions"
echo "  ffplay data/demo/packaged/manifest.mpd         # DASH"
echo "  ffplay data/demo/packaged/progressive/mp3-320.mp3"
echo "  less data/demo/packaged/manifest.json          # the published index"
