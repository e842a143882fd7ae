#!/usr/bin/env bash
# Segment delivery: the real `streamhost serve` against nginx serving the same published files
# from the same directory, in the same run, on loopback ports.
#  1. one 5-minute stereo 44.1 kHz FLAC is uploaded and packaged. AUTH=signed (default): the host
#     requires auth; an admin JWT is minted first with `streamhost token` (which creates
#     <data>/secrets.json, so the host started afterwards signs with the same keys), and the
#     upload and status polls carry it as a bearer; the ready track's playback.hls carries the
#     signed-URL token (one per track, for every /hls, /dash and /media path of it, 6 h), which
#     is appended as ?token=… to every host URL below. AUTH=public: VEZA_AUTH_PUBLIC=true, no
#     token anywhere;
#  2. the CMAF segments of 64–200 KiB (aac-256, aac-128, opus-160, opus-96 with this input) are
#     requested in a cycle by wrk (-t2 -c64, keep-alive), against nginx and against the host,
#     interleaved over ROUNDS rounds to average out the noise of a shared VM, each run after a
#     short warm-up; the ratio host/nginx of requests per second is what to read (goal ≥ 0.8);
#  3. time to first byte of the master playlist and of the first aac-128 segment, from sequential
#     curl requests (fresh connection each) while a wrk load runs against the same server;
#  4. memory: the host is restarted on the same data directory after packaging, so its VmHWM is
#     serving only (the packaging peak is reported apart); nginx master + workers.
# nginx runs twice, side by side: `worker_processes 1` (one event loop, the usual baseline) and
# `worker_processes auto` (one per core, 2 here). The host's event loops use every core, so
# neither is exactly like for like on 2 cores where wrk shares the same CPUs; both are reported,
# with each server's CPU use (cores busy) during the measured runs. NGINX_AUTO=0 skips `auto`.
# nginx paths:  /tracks/{id}/v1/cmaf/{rendition}/seg-{k}.m4s  (root = <data>/objects)
# host paths:   /media/{id}/v1/cmaf/{rendition}/seg-{k}.m4s, /hls/{id}/master.m3u8 (+ ?token=… if signed)
# For nginx there is no playlist route: its "master playlist" is the stored v1/master.m3u8.
# Usage: Benchmarks/delivery-throughput.sh   (builds release unless STREAMHOST is set;
#        writes nothing outside /tmp; runs as root without touching /var)
# Knobs: STREAMHOST=path  DURATION=20s  WARMUP=3s  ROUNDS=2  THREADS=2  CONNECTIONS=64
#        TTFB_N=200  NGINX_AUTO=1  AUTH=signed|public  KEEP=1 (keep the work directory)
#        SKIP_HOST=1 (nginx only: checks the harness against a host without /media and /hls)
#        PROXY=1 (default): also the host behind nginx as a reverse proxy (issue 28), with the
#        host's DEFAULT limits and server.trustedProxies=127.0.0.1; every wrk request carries
#        its own X-Forwarded-For (65,536 client addresses), as a CDN's or balancer's audience would
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=Benchmarks/lib.sh
. Benchmarks/lib.sh

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
TTFB_N=${TTFB_N:-200}
NGINX_AUTO=${NGINX_AUTO:-1}
AUTH=${AUTH:-signed}
KEEP=${KEEP:-0}
SKIP_HOST=${SKIP_HOST:-0}
PROXY=${PROXY:-1}
[ "$SKIP_HOST" != 1 ] || PROXY=0
MIN_BYTES=$((64 * 1024))
MAX_BYTES=$((200 * 1024))

case $AUTH in
  signed) unset VEZA_AUTH_PUBLIC;; # an inherited VEZA_AUTH_PUBLIC would silently make it public
  public) export VEZA_AUTH_PUBLIC=true;;
  *) echo "error: AUTH=$AUTH: expected signed or public" >&2; exit 2;;
esac

# --- tools: wrk, nginx, curl, ffmpeg (installed with apt only when missing) ---------------------
ensure_tools wrk nginx curl ffmpeg

# --- the release binary ---------------------------------------------------------------------------
if [ -n "${STREAMHOST:-}" ]; then
  bin=$STREAMHOST
else
  swift build -c release --product streamhost >/dev/null
  bin=.build/release/streamhost
fi
[ -x "$bin" ] || { echo "error: no streamhost binary at $bin (make a release build, or set STREAMHOST)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d /tmp/veza-delivery-bench.XXXXXX)
pids=()
cleanup() {
  local p
  [ ! -d "$work/proxy" ] || scripts/services.sh stop "$work/proxy" >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
data=$work/data
objects=$data/objects

# --- process helpers (by PID, from /proc) ---------------------------------------------------------
children() { # direct children of $1
  local s k v
  for s in /proc/[0-9]*/status; do
    while read -r k v _; do
      if [ "$k" = PPid: ]; then
        [ "$v" = "$1" ] && { s=${s#/proc/}; echo "${s%/status}"; }
        break
      fi
    done 2>/dev/null < "$s" || true
  done
}
tree() { echo "$1"; children "$1"; } # nginx: master + workers
cpu_ticks() { # utime + stime of the PIDs given
  local p t=0 f
  for p in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + $(echo "$f" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; } # kib PID VmHWM
sum_kib() { local k=$1 p t=0; shift; for p in "$@"; do t=$((t + $(kib "$p" "$k"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)

# --- input: 5 minutes, stereo 44.1 kHz FLAC, music-like (tones + noise) ---------------------------
long=$work/long.flac
music_flac "$long" 300

# --- the host -------------------------------------------------------------------------------------
host=""
base=""
start_host() {
  local log=$work/serve-$1.log
  # One loopback client at tens of thousands of requests per second is not a real client:
  # the per-client rate limits and connection cap are off for this measurement.
  VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_UPLOAD_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0 \
    "$bin" serve --port 0 --data-directory "$data" > "$log" 2>&1 &
  host=$!
  pids+=("$host")
  wait_listening "$log" "$host"
}
stop_host() { kill -TERM "$host"; wait "$host" 2>/dev/null || true; }

# Signed mode: an admin JWT for the API calls, minted before the host starts (see the header).
auth=()
if [ "$AUTH" = signed ]; then
  admin=$("$bin" token --scope admin --ttl 2h --data-directory "$data" 2>"$work/token.log") \
    || { cat "$work/token.log" >&2; die "streamhost token failed"; }
  [ -n "$admin" ] || die "streamhost token printed no token"
  [ -f "$data/secrets.json" ] || die "streamhost token wrote no $data/secrets.json (the host would sign with other keys)"
  auth=(-H "Authorization: Bearer $admin")
fi

start_host packaging
echo "== upload and package the 5-minute track ($base, AUTH=$AUTH)"
response=$(curl_ "${auth[@]}" -X POST --data-binary @"$long" -H 'Content-Type: audio/flac' "$base/v1/tracks")
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<< "$response")
[ -n "$id" ] || die "upload failed (no track id in the response: $response)"
deadline=$((SECONDS + 900))
while :; do
  status=$(curl_ "${auth[@]}" "$base/v1/tracks/$id" || true)
  case $status in *'"status":"ready"'*) break;; *'"status":"failed"'*) die "track $id failed: $status";; esac
  [ $SECONDS -lt $deadline ] || die "track $id not ready after 15 minutes"
  sleep 0.2
done
packaging_peak=$(kib "$host" VmHWM)
# The playback token: playback.hls is "\/hls\/{id}\/master.m3u8?token=v1.k1.…" (JSON escapes '/').
query=""
if [ "$AUTH" = signed ]; then
  token=$(sed -n 's/.*"hls":"[^"]*[?&]token=\([^"&]*\)".*/\1/p' <<< "$status")
  [[ $token =~ ^[A-Za-z0-9._~-]+$ ]] || die "no URL-safe playback token in playback.hls of $id: $status"
  query="?token=$token"
fi
# A fresh process for serving, so its peak RSS is that of serving, not of the packaging job.
stop_host
start_host serving

# --- segments of 64–200 KiB -----------------------------------------------------------------------
cmaf=$objects/tracks/$id/v1/cmaf
find "$cmaf" -type f -name 'seg-*.m4s' -printf '%s %P\n' \
  | awk -v lo=$MIN_BYTES -v hi=$MAX_BYTES '$1 >= lo && $1 <= hi' | sort -k2,2V > "$work/segments"
count=$(wc -l < "$work/segments")
[ "$count" -gt 0 ] || die "no segment between 64 and 200 KiB under $cmaf"
read -r seg_min seg_max seg_mean < <(awk '{s += $1; if (NR == 1 || $1 < mn) mn = $1; if ($1 > mx) mx = $1}
  END {printf "%.1f %.1f %.1f\n", mn / 1024, mx / 1024, s / NR / 1024}' "$work/segments")
renditions=$(awk '{split($2, a, "/"); if (!(a[1] in seen)) {seen[a[1]] = 1; printf "%s%s", (n++ ? ", " : ""), a[1]}}' "$work/segments")
echo "== $count segments ($renditions), $seg_min–$seg_max KiB"

# Object key (relative to <data>/objects) → URL path on each server.
nginx_path() { echo "/$1"; }
host_path() { echo "/media/${1#tracks/}$query"; }
proxy_path() { host_path "$@"; }

# wrk script: cycles through the segment paths; each thread starts at its own offset.
make_lua() { # make_lua server out
  {
    echo "local paths = {"
    local rel
    while read -r _ rel; do echo "  \"$("${1}_path" "tracks/$id/v1/cmaf/$rel")\","; done < "$work/segments"
    cat <<'LUA'
}
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local i = 0
function init(args)
  i = math.floor((tid or 0) * #paths / math.max(#threads, 1))
end
local n = 0
function request()
  i = i % #paths + 1
LUA
    if [ "${3:-}" = xff ]; then
      # A client address per request, 65,536 of them per thread (a proxy's audience).
      cat <<'LUA'
  n = n + 1
  return wrk.format("GET", paths[i], {["X-Forwarded-For"] = string.format("10.%d.%d.%d", (tid or 0) % 256, math.floor(n / 256) % 256, n % 256)})
LUA
    else
      echo '  return wrk.format("GET", paths[i])'
    fi
    cat <<'LUA'
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %.0f %.0f %d %d\n", summary.requests, summary.duration,
    summary.bytes, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
LUA
  } > "$2"
}

# --- nginx ----------------------------------------------------------------------------------------
declare -A url lua cpupids
nginx_cfg=$("$nginx_bin" -V 2>&1)
start_nginx() { # start_nginx name worker_processes
  local name=$1 conf=$work/nginx-$1.conf tmp=$work/nginx-$1 port pid m temps=""
  mkdir -p "$tmp"
  # Every temp path compiled in must move out of /var/lib/nginx.
  for m in client_body proxy fastcgi uwsgi scgi; do
    case $m in client_body) ;; *) grep -q -- "--without-http_${m}_module" <<< "$nginx_cfg" && continue;; esac
    temps+="  ${m}_temp_path $tmp/${m}_temp;"$'\n'
  done
  for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 30000))
    port_busy "$port" && continue
    cat > "$conf" <<EOF
# Workers as root only when the master is root: the data directory is private (mkdtemp, 0700).
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
worker_processes $2;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  open_file_cache off;
  types { video/mp4 mp4; video/iso.segment m4s; application/vnd.apple.mpegurl m3u8; }
  default_type application/octet-stream;
$temps
  server {
    listen 127.0.0.1:$port;
    root $objects;
    location / { }
  }
}
EOF
    "$nginx_bin" -c "$conf" -e "$tmp/error.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      curl_ -I -o /dev/null "http://127.0.0.1:$port/tracks/$id/v1/master.m3u8" 2>/dev/null && { url[$name]=http://127.0.0.1:$port; cpupids[$name]=$pid; return; }
      sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    grep -q "Address already in use" "$tmp/error.log" 2>/dev/null || { cat "$tmp/error.log" >&2; die "nginx ($name) did not start"; }
  done
  die "no free port for nginx ($name)"
}

servers=(nginx-1)
start_nginx nginx-1 1
make_lua nginx "$work/nginx.lua"
lua[nginx-1]=$work/nginx.lua
if [ "$NGINX_AUTO" = 1 ]; then
  servers+=(nginx-auto)
  start_nginx nginx-auto auto
  lua[nginx-auto]=$work/nginx.lua
fi
nginx_auto_workers=$( [ "$NGINX_AUTO" = 1 ] && children "${cpupids[nginx-auto]}" | wc -l || echo 0)
if [ "$SKIP_HOST" != 1 ]; then
  servers+=(host)
  url[host]=$base
  make_lua host "$work/host.lua"
  lua[host]=$work/host.lua
fi
if [ "$PROXY" = 1 ]; then
  # A second host on the same data (no workers) with the default limits, trusting nginx.
  log=$work/serve-proxied.log
  VEZA_SERVER_TRUSTED_PROXIES=127.0.0.1 "$bin" serve --port 0 --data-directory "$data" --workers 0 > "$log" 2>&1 &
  proxied_host=$!
  pids+=("$proxied_host")
  direct_base=$base
  wait_listening "$log" "$proxied_host"
  proxied_port=${base##*:}
  base=$direct_base
  scripts/services.sh nginx "$work/proxy" "$proxied_port" >/dev/null
  url[proxy]=$(sed -n 's/^VEZA_NGINX_URL=//p' "$work/proxy/services.env" | tr -d "\"'")
  [ -n "${url[proxy]}" ] || die "nginx (reverse proxy) did not start"
  cpupids[proxy]=$(sed -n 's/^NGINX_PID=//p' "$work/proxy/services.env" | tr -d "\"'")
  servers+=(proxy)
  make_lua proxy "$work/proxy.lua" xff
  lua[proxy]=$work/proxy.lua
fi

# --- preflight: every server returns 200 and the stored bytes -------------------------------------
first=$(head -1 "$work/segments" | cut -d' ' -f2)
seg1=aac-128/seg-1.m4s
[ -f "$cmaf/$seg1" ] || die "no $seg1 under $cmaf"
declare -A playlist segment
for s in "${servers[@]}"; do
  kind=${s%%-*}
  if [ "$kind" = host ] || [ "$kind" = proxy ]; then playlist[$s]=/hls/$id/master.m3u8$query; else playlist[$s]=$(nginx_path "tracks/$id/v1/master.m3u8"); fi
  segment[$s]=$("${kind}_path" "tracks/$id/v1/cmaf/$seg1")
  for rel in "$first" "$seg1"; do
    p=$("${kind}_path" "tracks/$id/v1/cmaf/$rel")
    code=$(curl -s --noproxy '*' -o "$work/check" -w '%{http_code}' "${url[$s]}$p" || echo 000)
    [ "$code" = 200 ] || die "$s returned HTTP $code for GET $p (expected 200$( [ "$kind" = host ] && echo "; does this streamhost serve /media/{id}/… (AUTH=$AUTH)?"))"
    cmp -s "$work/check" "$cmaf/$rel" || die "$s: GET $p did not return the bytes of $cmaf/$rel"
  done
  if [ "$kind" = host ] && [ "$AUTH" = signed ]; then
    # The token must be what opens the segment: without it the host refuses.
    p=/media/$id/v1/cmaf/$first
    code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "${url[$s]}$p" || echo 000)
    [ "$code" = 401 ] || die "host returned HTTP $code for GET $p without a token (expected 401: is auth on?)"
  fi
  code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "${url[$s]}${playlist[$s]}" || echo 000)
  [ "$code" = 200 ] || die "$s returned HTTP $code for GET ${playlist[$s]} (expected 200)"
done

# --- throughput: interleaved rounds ---------------------------------------------------------------
cpu_of() {
  case $1 in
    host) echo "$host" ;;
    proxy) echo "$proxied_host"; tree "${cpupids[proxy]}" ;; # the host behind it and nginx
    *) tree "${cpupids[$1]}" ;;
  esac
}
declare -A runs
run_wrk() { # run_wrk server duration out
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --latency -s "${lua[$1]}" "${url[$1]}" > "$3" 2>&1 || { cat "$3" >&2; die "wrk failed against $1"; }
  grep -q '^RESULT ' "$3" || { cat "$3" >&2; die "no RESULT line from wrk against $1"; }
}
for r in $(seq 1 "$ROUNDS"); do
  for s in "${servers[@]}"; do
    run_wrk "$s" "$WARMUP" "$work/warmup-$s-$r.txt"
    # shellcheck disable=SC2046
    c0=$(cpu_ticks $(cpu_of "$s"))
    run_wrk "$s" "$DURATION" "$work/wrk-$s-$r.txt"
    # shellcheck disable=SC2046
    c1=$(cpu_ticks $(cpu_of "$s"))
    read -r _ n us bytes p50 p99 non2xx errs < <(grep '^RESULT ' "$work/wrk-$s-$r.txt")
    [ "$non2xx" -eq 0 ] || die "$s: $non2xx responses were not 2xx/3xx in round $r"
    line=$(awk -v n="$n" -v us="$us" -v b="$bytes" -v p50="$p50" -v p99="$p99" -v e="$errs" -v c=$((c1 - c0)) -v hz="$hz" \
      'BEGIN {printf "%.1f %.1f %.2f %.2f %d %.2f", n / us * 1e6, b / us * 1e6 / 1048576, p50 / 1000, p99 / 1000, e, c / hz / (us / 1e6)}')
    runs[$s]+="$line"$'\n'
    read -r rps mibs l50 l99 e cores <<< "$line"
    printf 'round %d  %-10s %9.0f req/s  %7.1f MiB/s  p50 %6.2f ms  p99 %6.2f ms  socket errors %d  server CPU %.2f cores\n' \
      "$r" "$s" "$rps" "$mibs" "$l50" "$l99" "$e" "$cores"
  done
done
mean() { printf '%s' "${runs[$1]}" | awk -v f="$2" '{s += $f} END {printf "%.2f", s / NR}'; }
each() { printf '%s' "${runs[$1]}" | awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $1}'; }

# --- TTFB under load ------------------------------------------------------------------------------
ttfb() { # ttfb url out: TTFB_N sequential requests, one connection each, seconds per line
  local code t
  : > "$2"
  for _ in $(seq 1 "$TTFB_N"); do
    read -r code t < <(curl -s --noproxy '*' -o /dev/null -w '%{http_code} %{time_starttransfer}\n' "$1" || echo "000 0")
    [ "$code" = 200 ] || die "HTTP $code for $1 during the TTFB loop"
    echo "$t" >> "$2"
  done
}
pct() { sort -g "$1" | awk -v p="$2" '{v[NR] = $1} END {i = int((p / 100) * NR + 0.999999); if (i < 1) i = 1; printf "%.2f", v[i] * 1000}'; }
declare -A tt
for s in "${servers[@]}"; do
  wrk -t"$THREADS" -c"$CONNECTIONS" -d600s -s "${lua[$s]}" "${url[$s]}" > "$work/ttfb-load-$s.txt" 2>&1 &
  load=$!
  pids+=("$load")
  sleep 1
  ttfb "${url[$s]}${playlist[$s]}" "$work/ttfb-playlist-$s"
  ttfb "${url[$s]}${segment[$s]}" "$work/ttfb-segment-$s"
  kill -INT "$load" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  tt[$s]="$(pct "$work/ttfb-playlist-$s" 50) $(pct "$work/ttfb-playlist-$s" 99) $(pct "$work/ttfb-segment-$s" 50) $(pct "$work/ttfb-segment-$s" 99)"
done

# --- memory ---------------------------------------------------------------------------------------
declare -A rss
for s in "${servers[@]}"; do
  # shellcheck disable=SC2046
  set -- $(cpu_of "$s")
  rss[$s]=$(awk -v h="$(sum_kib VmHWM "$@")" -v r="$(sum_kib VmRSS "$@")" -v n=$# 'BEGIN {printf "%.1f MiB peak, %.1f MiB now (%d process%s)", h / 1024, r / 1024, n, (n > 1 ? "es" : "")}')
done

# --- summary --------------------------------------------------------------------------------------
label() { case $1 in nginx-1) echo "nginx $("$nginx_bin" -v 2>&1 | sed -n 's/.*nginx\///p'), worker_processes 1";; nginx-auto) echo "nginx, worker_processes auto ($nginx_auto_workers)";; host) echo "streamhost serve ($( [ "$AUTH" = signed ] && echo "signed URLs" || echo public), limits off)";;
  proxy) echo "streamhost behind nginx (reverse proxy, trusted; default limits, a client address per request)";; esac; }
echo
echo "## Segment delivery: streamhost vs nginx (same files, same run)"
echo
echo "$count CMAF segments of one 5-minute track ($renditions), $seg_min–$seg_max KiB (mean $seg_mean KiB)."
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION (after $WARMUP warm-up), keep-alive, cycling through all of them;"
echo "$ROUNDS rounds interleaved (${servers[*]}); $(nproc) cores shared by servers and wrk; figures are means over rounds."
echo
echo "| server | req/s | req/s per round | MiB/s | wrk p50 | wrk p99 | server CPU (cores) | socket errors |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for s in "${servers[@]}"; do
  printf '| %s | %.0f | %s | %.1f | %.2f ms | %.2f ms | %.2f | %d |\n' "$(label "$s")" "$(mean "$s" 1)" "$(each "$s")" \
    "$(mean "$s" 2)" "$(mean "$s" 3)" "$(mean "$s" 4)" "$(mean "$s" 6)" "$(printf '%s' "${runs[$s]}" | awk '{s += $5} END {print s}')"
done
echo
if [ "$SKIP_HOST" != 1 ]; then
  for s in "${servers[@]}"; do
    [ "$s" = host ] || [ "$s" = proxy ] && continue
    awk -v h="$(mean host 1)" -v n="$(mean "$s" 1)" -v l="$(label "$s")" \
      'BEGIN {r = h / n; printf "**host / %s: %.2f** (req/s; goal ≥ 0.8: %s)\n\n", l, r, (r >= 0.8 ? "met" : "not met")}'
  done
fi
if [ "$PROXY" = 1 ]; then
  awk -v p="$(mean proxy 1)" -v h="$(mean host 1)" \
    'BEGIN {printf "**behind nginx with the default limits / direct with limits off: %.2f** (req/s; every response 2xx: no client was refused)\n\n", p / h}'
fi
echo "Server CPU: user + system time of the server's processes over the run, in cores; the loopback"
echo "network stack's softirq work is mostly not charged to them (nginx's sendfile path is nearly all kernel)."
echo
echo "Time to first byte under load ($TTFB_N sequential curl requests, a new connection each, while wrk -c$CONNECTIONS loads the same server):"
echo
echo "| server | master playlist p50 | p99 | first segment (aac-128 seg-1) p50 | p99 |"
echo "| --- | ---: | ---: | ---: | ---: |"
for s in "${servers[@]}"; do
  read -r a b c d <<< "${tt[$s]}"
  what=$( [ "$s" = host ] || [ "$s" = proxy ] && echo "/hls/{id}/master.m3u8${query:+?token=…}" || echo "stored master.m3u8")
  echo "| $(label "$s") | $a ms ($what) | $b ms | $c ms | $d ms |"
done
echo
echo "Memory (VmHWM / VmRSS at the end):"
echo
for s in "${servers[@]}"; do echo "- $(label "$s"): ${rss[$s]}"; done
[ "$SKIP_HOST" = 1 ] || awk -v k="$packaging_peak" 'BEGIN {printf "- streamhost while packaging the track (the process before the restart): %.0f MiB peak\n", k / 1024}'
