#!/usr/bin/env bash
# Installs the Debian packages Veza Stream builds and tests with, if any is missing.
# Idempotent: does nothing (and needs no network) when everything is present.
set -euo pipefail

packages=(
  # C libraries MediaCore links (FFmpeg 5.1, opus, LAME, FLAC) and pkg-config to find them.
  libavcodec-dev libavformat-dev libswresample-dev libavutil-dev
  libopus-dev libmp3lame-dev libflac-dev pkg-config
  # WebRTC playback (WHEP): OpenSSL's DTLS with use_srtp, and libsrtp2 (the CWebRTC target).
  libssl-dev libsrtp2-dev
  # SQLite for the embedded catalog and job queue (GRDB links the system library).
  libsqlite3-dev
  # libebur128: the reference loudness meter the tests and benchmarks compare with.
  libebur128-dev
  # libsoxr: the reference resampler the benchmarks compare with.
  libsoxr-dev
  # Real tools the tests run: ffmpeg/ffprobe make fixtures and check output; xmllint checks MPDs.
  ffmpeg libxml2-utils curl bc
  # Real players and checkers the delivery tests run: GStreamer's HLS/DASH demuxers, headless
  # Chromium (the demo page, driven by Tests/scripts/chromium_play.py), promtool (from the
  # prometheus package) for /metrics, openssl for RS256/ES256 test keys.
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav
  chromium prometheus openssl python3
  # The reverse proxies the proxy tests put in front of the host (trusted proxies, issue 28).
  varnish nginx-light
  # The live tests' real source clients and players (issue 21): liquidsoap and ezstream push
  # to the host as to Icecast; mpv and VLC listen to its ICY mounts; icecast2 is the reference
  # server of the live benchmark.
  liquidsoap ezstream mpv vlc-bin vlc-plugin-base icecast2
  # The analytics backend at scale (issue 24): the tests start their own ClickHouse server.
  clickhouse-server clickhouse-client
  # Real music for the watermark's robustness tests (issue 23): Endgame: Singularity's and
  # HyperRogue's soundtracks (electronic, orchestral, ambient; free licences, Ogg Vorbis).
  singularity-music hyperrogue-music
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# From PyPI: the m3u8 package, the third-party HLS parser whose strict mode the delivery tests
# validator runs (Tests/scripts/hls_validate.py).
if ! python3 -c "import m3u8" 2>/dev/null; then
  echo "Installing (PyPI): m3u8"
  python3 -m pip install --quiet --disable-pip-version-check "m3u8==6.0.0"
fi

# From PyPI: aiortc, the WebRTC stack the WHEP tests play with (Tests/scripts/whep_client.py),
# and websockets, the WebSocket client of the live WebSocket tests (Tests/scripts/ws_live_client.py).
if ! python3 -c "import aiortc, websockets" 2>/dev/null; then
  echo "Installing (PyPI): aiortc websockets"
  python3 -m pip install --quiet --disable-pip-version-check "aiortc==1.16.0" "websockets==17.4"
fi

# From PyPI: the Standard Webhooks reference library, with which the webhook tests' receiver
# (Tests/scripts/webhook_receiver.py) checks every signature the host sends.
if ! python3 -c "import standardwebhooks" 2>/dev/null; then
  echo "Installing (PyPI): standardwebhooks"
  python3 -m pip install --quiet --disable-pip-version-check "standardwebhooks==1.3.0"
fi

# From PyPI: the OpenAPI document's validator and schemathesis, which sends generated requests for
# every documented operation to a live host (Tests/StreamHostTests/OpenAPITests.swift).
if ! python3 -c "import openapi_spec_validator, schemathesis" 2>/dev/null; then
  echo "Installing (PyPI): openapi-spec-validator schemathesis"
  python3 -m pip install --quiet --disable-pip-version-check "openapi-spec-validator==0.9.0" "schemathesis==4.32.5"
fi

# From PyPI: grpcio, the gRPC client the gRPC API's tests call it with (Tests/scripts/grpc_client.py),
# and grpcio-tools, whose protoc makes that client's stubs from Protos/ (and the committed Swift
# code, scripts/generate-grpc.sh).
if ! python3 -c "import grpc, grpc_tools" 2>/dev/null; then
  echo "Installing (PyPI): grpcio grpcio-tools"
  python3 -m pip install --quiet --disable-pip-version-check "grpcio==1.85.4" "grpcio-tools==1.85.4"
fi

# From PyPI: mmdb-writer, which builds the MaxMind-format country databases the analytics tests
# read with the host's own reader (Sources/StreamHost/Analytics/MaxMindDB.swift), and maxminddb,
# MaxMind's reader, which the tests compare it with.
if ! python3 -c "import mmdb_writer, maxminddb" 2>/dev/null; then
  echo "Installing (PyPI): mmdb-writer maxminddb"
  python3 -m pip install --quiet --disable-pip-version-check "mmdb-writer==0.2.7" "maxminddb==2.8.2"
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "error: the Swift 6 toolchain is not on PATH (see https://www.swift.org/install/linux/)" >&2
  exit 1
fi
