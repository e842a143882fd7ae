#!/usr/bin/env bash
# Listener load (issue 9): LISTENERS simulated players (`veza-loadgen`) against nginx serving the
# published files and against the real `streamhost serve`, one after the other, at each playback
# speed of SPEEDS, on loopback, with the same listener mix.
#  1. one 3-minute stereo 44.1 kHz FLAC is uploaded and packaged by the host in signed mode: an
#     admin JWT is minted first with `streamhost token` (which creates <data>/secrets.json, so the
#     host signs with the same keys); the ready track's playback field carries the signed master
#     playlist URL (/hls/{id}/master.m3u8?token=…) and the progressive files' signed URLs. The
#     host's per-client limits are OFF (VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_UPLOAD_RATE=0
#     VEZA_LIMITS_MEDIA_RATE=0 VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0): every listener comes from
#     127.0.0.1, which the limits would take for one abusive client. Progressive pacing stays at
#     its default (a burst of 10 s of audio, then 4× the bitrate), as in production;
#  2. nginx serves <data>/objects as it is. Its master playlist is the STORED
#     tracks/{id}/v1/master.m3u8, whose variant URIs (aac-256.m3u8, …) and the media playlists'
#     URIs (cmaf/{rendition}/init.mp4, cmaf/{rendition}/seg-{k}.m4s) are relative and resolve
#     inside nginx's tree; this is checked file by file (and over HTTP) before any load. Were
#     they not relative (a leading /hls/…, a ?token=…), a copy of the master with URIs made
#     relative to v1/ would be written outside <data> and served at the same path by nginx;
#  3. for each speed: veza-loadgen against nginx, then against the host, each server started
#     fresh for its run (so its peak RSS is that run's), `--server-pid` of it (nginx: the master,
#     whose workers the loadgen counts as its children), a JSON report per run. The fraction
#     PROGRESSIVE_FRACTION of listeners reads the PROGRESSIVE_RENDITION file at real-time pace
#     (× speed); the others play HLS (StreamKit's ABR over the AAC ladder, 30 s buffer, skip
#     probability SKIP_PROBABILITY with restart);
#  4. a markdown summary: errors, stalls, TTFB and time to first audio, server CPU (mean cores,
#     and per 1000 listeners), server peak RSS, the load generator's CPU; the ratios host/nginx
#     of first-audio p99 and of CPU per listener (goal: within 2×) and host peak RSS vs 256 MiB.
# System checks first: open files (raised with ulimit -n up to the hard limit; LISTENERS sockets
# in the load generator and as many in the server), the ephemeral port range (every listener is
# a connection from 127.0.0.1 to one server port: one local port each, plus reconnects),
# net.core.somaxconn (caps every listen backlog), each server's actual accept backlog (from `ss`),
# nginx worker_connections (≥ 16384 and ≥ LISTENERS + 1024), conntrack, memory (the load
# generator needs about 150 KiB per listener). Kernel counters (listen queue overflows, TCP
# memory pressure) and the whole machine's CPU (with softirq, where loopback TCP is processed)
# are read around each run.
# The load generator and the servers share the machine's cores: on a small VM the figures say
# as much about the load generator as about the servers; its CPU use is in the table.
# Usage: Benchmarks/listener-load.sh   (uses .build/release/{streamhost,veza-loadgen}, building
#        them if missing; writes nothing outside /tmp; inherited VEZA_… variables are ignored)
# Knobs: SCENARIO=listeners  LISTENERS=10000  DURATION=60 (s, ramp included)  RAMP=20 (s)  SPEEDS="1 4"
#        PROGRESSIVE_FRACTION=0.1  STREAMHOST=path  LOADGEN=path
#        SKIP_PROBABILITY=0.3  PROGRESSIVE_RENDITION=aac-128  NGINX_WORKERS=1 (or auto)
#        PAUSE=10 (s between runs)  KEEP=1 (keep the work directory, with the JSON reports)
#        EVENT_LOOPS=0 (the host's server.eventLoops; 0: one per core)
#        LOADGEN_EVENT_LOOPS=0 (veza-loadgen's --event-loops, the threads its listeners run on; 0: one per core)
#        TARGETS="nginx host" (TARGETS=host measures the host alone: no ratios)
#        SESSIONS=shared (every HLS listener plays one signed URL) or per-listener (each its own
#        playback session, from `streamhost sign --count`, as each user of a platform gets its
#        own URL: what listening analytics count)
#        ANALYTICS=1 (0 turns the host's listening analytics off: VEZA_ANALYTICS_ENABLED=false)
#
# SCENARIO (default listeners) picks the run and its defaults:
#   listeners    the above (10,000 listeners, 10 % progressive, at 1× and 4×);
#   progressive  1,000 progressive listeners that read as fast as the server sends (a buffer of
#                100,000 s) and stop after 30 s without reconnecting: the bytes each received
#                against the bound the host's pacing sets (a 10 s burst + 30 s at 4× the
#                bitrate; nginx, which does not pace, is the reference), and zero stalls;
#   hostile      1,000 listeners (10 % progressive) with 250 slowloris connections (a request
#                head trickled one byte a second) and 250 that request the progressive file and
#                never read it, opened over the ramp: no stall for the listeners, and the slow
#                connections closed by the timeouts (the host: header deadline 10 s, send
#                timeout 30 s; nginx: client_header_timeout and send_timeout 60 s, its defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=Benchmarks/lib.sh
. Benchmarks/lib.sh

SCENARIO=${SCENARIO:-listeners}
case $SCENARIO in
  listeners) d_listeners=10000 d_duration=60 d_ramp=20 d_speeds="1 4" d_fraction=0.1 ;;
  progressive) d_listeners=1000 d_duration=40 d_ramp=5 d_speeds=1 d_fraction=1 ;;
  hostile) d_listeners=1000 d_duration=60 d_ramp=10 d_speeds=1 d_fraction=0.1 ;;
  *) echo "error: SCENARIO=$SCENARIO: expected listeners, progressive or hostile" >&2; exit 1 ;;
esac
LISTENERS=${LISTENERS:-$d_listeners}
DURATION=${DURATION:-$d_duration}
RAMP=${RAMP:-$d_ramp}
SPEEDS=${SPEEDS:-$d_speeds}
PROGRESSIVE_FRACTION=${PROGRESSIVE_FRACTION:-$d_fraction}
# What the scenario adds to each veza-loadgen run.
scenario_args=()
listen_seconds=$DURATION
case $SCENARIO in
  progressive) listen_seconds=30; scenario_args=(--buffer-seconds 100000 --no-restart) ;;
  hostile) scenario_args=(--slowloris 250 --slow-readers 250) ;;
esac
SKIP_PROBABILITY=${SKIP_PROBABILITY:-0.3}
EVENT_LOOPS=${EVENT_LOOPS:-0}
LOADGEN_EVENT_LOOPS=${LOADGEN_EVENT_LOOPS:-0}
TARGETS=${TARGETS:-nginx host}
SESSIONS=${SESSIONS:-shared}
case $SESSIONS in shared|per-listener) ;; *) die "SESSIONS=$SESSIONS: expected shared or per-listener";; esac
ANALYTICS=${ANALYTICS:-1}
case $ANALYTICS in 0|1) ;; *) die "ANALYTICS=$ANALYTICS: expected 0 or 1";; esac
for t in $TARGETS; do case $t in nginx|host) ;; *) die "TARGETS=$TARGETS: expected nginx and/or host";; esac; done
PROGRESSIVE_RENDITION=${PROGRESSIVE_RENDITION:-aac-128}
NGINX_WORKERS=${NGINX_WORKERS:-1}
PAUSE=${PAUSE:-10}
KEEP=${KEEP:-0}
TRACK_SECONDS=180
RSS_GOAL_MIB=256
RATIO_GOAL=2

[[ $LISTENERS =~ ^[1-9][0-9]*$ ]] || die "LISTENERS=$LISTENERS: expected a positive integer"
for knob in DURATION RAMP PAUSE; do
  [[ ${!knob} =~ ^[0-9]+$ ]] || die "$knob=${!knob}: expected a whole number of seconds"
done
if [ "$DURATION" -eq 0 ] || [ "$RAMP" -gt "$DURATION" ]; then die "expected 0 < DURATION and RAMP ≤ DURATION"; fi
for s in $SPEEDS; do [[ $s =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SPEEDS=\"$SPEEDS\": expected positive numbers"; done
for knob in PROGRESSIVE_FRACTION SKIP_PROBABILITY; do
  awk -v v="${!knob}" 'BEGIN {exit !(v ~ /^[0-9.]+$/ && v >= 0 && v <= 1)}' || die "$knob=${!knob}: expected a number in 0…1"
done
[[ $NGINX_WORKERS =~ ^([1-9][0-9]*|auto)$ ]] || die "NGINX_WORKERS=$NGINX_WORKERS: expected a count or auto"

# The host reads every VEZA_… variable: only the ones set below may count.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^VEZA_' || true)
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost,::1${no_proxy:+,$no_proxy}"

# --- tools: nginx, curl, ffmpeg, jq, ss (installed with apt only when missing) --------------------
ensure_tools nginx curl ffmpeg jq ss

# --- the release binaries -------------------------------------------------------------------------
binary() { # binary PRODUCT OVERRIDE: absolute path of the release binary
  local b=${2:-.build/release/$1}
  if [ ! -x "$b" ] && [ -z "$2" ]; then swift build -c release --product "$1" >/dev/null; fi
  [ -x "$b" ] || die "no $1 binary at $b (make a release build, or set $( [ "$1" = streamhost ] && echo STREAMHOST || echo LOADGEN))"
  echo "$(cd "$(dirname "$b")" && pwd)/$(basename "$b")"
}
bin=$(binary streamhost "${STREAMHOST:-}")
loadgen=$(binary veza-loadgen "${LOADGEN:-}")
"$loadgen" --help 2>&1 | grep -q -- '--server-pid' || die "$loadgen has no --server-pid option: rebuild it"

work=$(mktemp -d /tmp/veza-listener-load.XXXXXX)
pids=()
forget() { local p keep=(); for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; pids=("${keep[@]}"); }
stop() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget "$1"; }
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
sysctl_() { tr -s '\t ' ' ' < "/proc/sys/${1//.//}" 2>/dev/null || echo "?"; }
data=$work/data
objects=$data/objects

# --- system checks --------------------------------------------------------------------------------
echo "== system"
# Open files: the load generator holds one socket per listener (it needs LISTENERS + 256), and the
# server under test as many again plus its own files; children inherit the limit raised here.
want_files=200000
ulimit -n "$want_files" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
files=$(ulimit -n)
need_files=$((LISTENERS + 1024))
echo "open files (ulimit -n): $files (hard $(ulimit -Hn); wanted $want_files; needed ≥ $need_files per process)"
[ "$files" = unlimited ] || [ "$files" -ge "$need_files" ] \
  || die "$LISTENERS listeners need $need_files open files per process, the hard limit here is $(ulimit -Hn) (raising it needs CAP_SYS_RESOURCE): run at most $(( $(ulimit -Hn) - 1024 )) listeners"
# Ephemeral ports: each listener is one connection 127.0.0.1:* → 127.0.0.1:PORT, so the local
# port range bounds the concurrent listeners per server port (reconnects also leave TIME_WAIT
# entries, which loopback reuses when net.ipv4.tcp_tw_reuse is 1 or 2).
read -r port_lo port_hi <<< "$(sysctl_ net.ipv4.ip_local_port_range)"
ports=$((port_hi - port_lo + 1))
reserved=$(sysctl_ net.ipv4.ip_local_reserved_ports)
echo "ephemeral ports (net.ipv4.ip_local_port_range): $port_lo–$port_hi = $ports${reserved:+, reserved: $reserved}; tcp_tw_reuse $(sysctl_ net.ipv4.tcp_tw_reuse)"
[ "$ports" -gt "$LISTENERS" ] || die "$LISTENERS connections to one port from 127.0.0.1 need more than $ports ephemeral ports (widen net.ipv4.ip_local_port_range)"
[ "$ports" -ge $((LISTENERS * 3 / 2)) ] || warn "only $ports ephemeral ports for $LISTENERS listeners: reconnects in TIME_WAIT may exhaust them"
# Accept backlogs: every listen() backlog is capped by somaxconn; listeners arrive at
# LISTENERS / RAMP per second (at once when RAMP is 0).
somaxconn=$(sysctl_ net.core.somaxconn)
echo "net.core.somaxconn $somaxconn, net.ipv4.tcp_max_syn_backlog $(sysctl_ net.ipv4.tcp_max_syn_backlog); arrivals ≈ $(awk -v n="$LISTENERS" -v r="$RAMP" 'BEGIN {printf "%.0f", (r > 0 ? n / r : n)}') connections/s"
[ "$somaxconn" -ge 1024 ] || warn "net.core.somaxconn $somaxconn caps every accept backlog (nginx asks for 511, the host for 256)"
if [ -r /proc/sys/net/netfilter/nf_conntrack_max ]; then
  ct=$(sysctl_ net.netfilter.nf_conntrack_max)
  echo "conntrack: nf_conntrack_max $ct (count now $(sysctl_ net.netfilter.nf_conntrack_count))"
  [ "$ct" -ge $((LISTENERS * 2)) ] || warn "nf_conntrack_max $ct is low for $LISTENERS connections plus their TIME_WAITs"
fi
read -r _ tcp_pressure _ <<< "$(sysctl_ net.ipv4.tcp_mem)"
avail=$(awk '$1 == "MemAvailable:" {print int($2 / 1024)}' /proc/meminfo)
need_mib=$((LISTENERS * 150 / 1024 + 1024))
echo "memory: $avail MiB available; the load generator needs ≈ $((LISTENERS * 150 / 1024)) MiB (150 KiB per listener); TCP memory pressure from $((tcp_pressure * 4 / 1024)) MiB of socket buffers (net.ipv4.tcp_mem)"
[ "$avail" -ge "$need_mib" ] || die "$LISTENERS listeners need about $need_mib MiB free, $avail MiB are available"
echo "cores: $(nproc) (shared by the load generator and the server under test)"
# nginx: one worker holds every connection (NGINX_WORKERS=1), so worker_connections ≥ LISTENERS.
worker_connections=$((LISTENERS + 1024 > 16384 ? LISTENERS + 1024 : 16384))
nginx_nofile=$files
[ "$nginx_nofile" = unlimited ] && nginx_nofile=$((worker_connections * 2))
[ "$nginx_nofile" -ge "$worker_connections" ] || warn "nginx worker_connections $worker_connections exceeds the open-file limit $nginx_nofile"
echo "nginx: worker_processes $NGINX_WORKERS, worker_connections $worker_connections, worker_rlimit_nofile $nginx_nofile"

# Kernel counters around each run: listen queue overflows, SYNs dropped, TCP memory pressure,
# segments dropped for want of receive memory, retransmission timeouts (on loopback, each a drop).
tcpext() { # tcpext NAME…: values from /proc/net/netstat, in the order given
  awk -v names="$*" '$1 == "TcpExt:" {if (!h) {for (i = 2; i <= NF; i++) col[$i] = i; h = 1} else {n = split(names, a, " "); for (j = 1; j <= n; j++) printf "%s%s", (j > 1 ? " " : ""), (a[j] in col ? $(col[a[j]]) : 0); print ""}}' /proc/net/netstat
}
counters=(ListenOverflows ListenDrops TCPMemoryPressures TCPAbortOnMemory TCPRcvQDrop TCPTimeouts)
# The whole machine's CPU (every process and the kernel's softirq work, where loopback TCP is
# processed): busy and softirq ticks from /proc/stat's cpu line (user…steal, less idle and iowait).
machine_ticks() { awk '$1 == "cpu" {for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, $8; exit}' /proc/stat; }
hz=$(getconf CLK_TCK)

# --- input: 3 minutes, stereo 44.1 kHz FLAC, music-like (tones + noise) ---------------------------
long=$work/track.flac
music_flac "$long" "$TRACK_SECONDS"

# --- the host -------------------------------------------------------------------------------------
host=""
base=""
start_host() {
  local log=$work/serve-$1.log
  # Every listener is 127.0.0.1: the per-client rate limits and connection cap are off.
  VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_UPLOAD_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0 \
    VEZA_SERVER_EVENT_LOOPS=$EVENT_LOOPS VEZA_ANALYTICS_ENABLED=$( [ "$ANALYTICS" = 1 ] && echo true || echo false ) \
    "$bin" serve --port 0 --data-directory "$data" > "$log" 2>&1 &
  host=$!
  pids+=("$host")
  wait_listening "$log" "$host"
}

admin=$("$bin" token --scope admin --ttl 2h --data-directory "$data" 2>"$work/token.log") \
  || { cat "$work/token.log" >&2; die "streamhost token failed"; }
[ -n "$admin" ] || die "streamhost token printed no token"
[ -f "$data/secrets.json" ] || die "streamhost token wrote no $data/secrets.json (the host would sign with other keys)"
auth=(-H "Authorization: Bearer $admin")

start_host packaging
echo "== upload and package the $((TRACK_SECONDS / 60))-minute track ($base, signed URLs)"
response=$(curl_ "${auth[@]}" -X POST --data-binary @"$long" -H 'Content-Type: audio/flac' "$base/v1/tracks")
id=$(jq -r '.id // empty' <<< "$response" 2>/dev/null || true)
[ -n "$id" ] || die "upload failed (no track id in the response: $response)"
deadline=$((SECONDS + 900))
while :; do
  status=$(curl_ "${auth[@]}" "$base/v1/tracks/$id" || true)
  case $status in *'"status":"ready"'*) break;; *'"status":"failed"'*) die "track $id failed: $status";; esac
  [ $SECONDS -lt $deadline ] || die "track $id not ready after 15 minutes"
  sleep 0.5
done
stop "$host"
# The playback field: signed paths, the token in ?token=… (one per track, for /hls, /dash, /media).
hls_path=$(jq -r '.playback.hls // empty' <<< "$status")
prog_path=$(jq -r --arg r "$PROGRESSIVE_RENDITION" '.playback.progressive[]? | select(.rendition == $r) | .url' <<< "$status")
prog_key=$(jq -r --arg r "$PROGRESSIVE_RENDITION" '.renditions[]? | select(.id == $r) | .progressive // empty' <<< "$status")
[[ $hls_path == "/hls/$id/master.m3u8?token="* ]] || die "no signed master playlist in playback.hls: $status"
if [[ $prog_path != "/media/$id/"*"?token="* ]] || [ -z "$prog_key" ]; then die "no progressive $PROGRESSIVE_RENDITION file in playback.progressive: $status"; fi
version=$(jq -r '.version' <<< "$status")
v=tracks/$id/v$version
[ -f "$objects/$prog_key" ] || die "no stored $prog_key"
prog_kbps=$(awk -v b="$(stat -c %s "$objects/$prog_key")" -v s="$TRACK_SECONDS" 'BEGIN {printf "%.1f", b * 8 / s / 1000}')
echo "track $id: HLS ladder of $(grep -c '^#EXT-X-STREAM-INF' "$objects/$v/master.m3u8") variants; progressive $PROGRESSIVE_RENDITION at $prog_kbps kbit/s"

# --- nginx's playlists: the stored ones, checked to resolve inside its tree -----------------------
uris() { # uris PLAYLIST: the URIs of its lines and of its URI="…" attributes
  { grep -v '^#' "$1" | grep -v '^[[:space:]]*$' || true; grep -o 'URI="[^"]*"' "$1" | sed 's/^URI="//; s/"$//' || true; } | tr -d '\r'
}
resolves() { # resolves DIR URI: the stored file a relative URI without query names, under DIR
  local u=$1/$2
  [[ $2 != /* && $2 != *"://"* && $2 != *"?"* ]] && [ -f "$u" ] && [[ $(realpath -m "$u") == "$(realpath "$objects")"/* ]]
}
vdir=$objects/$v
nginx_master_root=""
bad=0
while read -r u; do resolves "$vdir" "$u" || bad=$((bad + 1)); done < <(uris "$vdir/master.m3u8")
if [ "$bad" -gt 0 ]; then
  # Adapt: a copy of the master with each variant URI reduced to its file name under v{n}/,
  # served by nginx at the same path from a directory of its own (<data> stays as published).
  echo "the stored master playlist has $bad variant URIs that do not resolve under $v/ on nginx; serving an adapted copy"
  nginx_master_root=$work/nginx-master
  mkdir -p "$nginx_master_root/$v"
  sed -E '/^#/!{s/\?.*$//; s#^.*/##}; s#URI="([^"?]*/)?([^"?/]*)(\?[^"]*)?"#URI="\2"#g' "$vdir/master.m3u8" > "$nginx_master_root/$v/master.m3u8"
  while read -r u; do resolves "$vdir" "$u" || die "adapted master: $u does not resolve under $v/"; done < <(uris "$nginx_master_root/$v/master.m3u8")
fi
variants=0
media=0
while read -r p; do
  variants=$((variants + 1))
  while read -r u; do
    [[ $u == cmaf/* ]] || die "$v/$p references $u, not a cmaf/… path"
    resolves "$vdir" "$u" || die "$v/$p references $u, which does not exist under $v/"
    media=$((media + 1))
  done < <(uris "$vdir/$p")
done < <(uris "${nginx_master_root:-$objects}/$v/master.m3u8")
echo "stored playlists: master → $variants variant playlists → $media cmaf/… URIs, every one a file under $v/"

# --- nginx ----------------------------------------------------------------------------------------
nginx=""
nginx_url=""
nginx_cfg=$("$nginx_bin" -V 2>&1)
start_nginx() { # start_nginx NAME
  local conf=$work/nginx-$1.conf tmp=$work/nginx-$1 port m temps="" master_loc=""
  mkdir -p "$tmp"
  # Every temp path compiled in must move out of /var/lib/nginx.
  for m in client_body proxy fastcgi uwsgi scgi; do
    case $m in client_body) ;; *) grep -q -- "--without-http_${m}_module" <<< "$nginx_cfg" && continue;; esac
    temps+="  ${m}_temp_path $tmp/${m}_temp;"$'\n'
  done
  [ -n "$nginx_master_root" ] && master_loc="    location = /$v/master.m3u8 { root $nginx_master_root; }"
  for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 12000))
    port_busy "$port" && continue
    cat > "$conf" <<EOF
# Workers as root only when the master is root: the data directory is private (mkdtemp, 0700).
$( [ "$(id -u)" -eq 0 ] && echo "user root;" )
worker_processes $NGINX_WORKERS;
worker_rlimit_nofile $nginx_nofile;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections $worker_connections; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  open_file_cache max=1000 inactive=60s;
  types { audio/mp4 mp4 m4a; video/iso.segment m4s; application/vnd.apple.mpegurl m3u8; audio/ogg opus; audio/flac flac; audio/mpeg mp3; }
  default_type application/octet-stream;
$temps
  server {
    listen 127.0.0.1:$port;
    root $objects;
$master_loc
    location / { }
  }
}
EOF
    "$nginx_bin" -c "$conf" -e "$tmp/error.log" &
    nginx=$!
    pids+=("$nginx")
    for _ in $(seq 1 50); do
      kill -0 "$nginx" 2>/dev/null || break
      curl_ -I -o /dev/null "http://127.0.0.1:$port/$v/master.m3u8" 2>/dev/null && { nginx_url=http://127.0.0.1:$port; return; }
      sleep 0.1
    done
    stop "$nginx"
    grep -q "Address already in use" "$tmp/error.log" 2>/dev/null || { cat "$tmp/error.log" >&2; die "nginx did not start"; }
  done
  die "no free port for nginx"
}

# --- preflight: both servers return the stored bytes; the host wants its token --------------------
same() { # same URL FILE: 200 and the file's bytes
  local code
  code=$(curl -s --noproxy '*' -o "$work/check" -w '%{http_code}' "$1" || echo 000)
  [ "$code" = 200 ] || die "HTTP $code for GET $1 (expected 200)"
  [ -z "${2:-}" ] || cmp -s "$work/check" "$2" || die "GET $1 did not return the bytes of $2"
}
first_variant=$(uris "${nginx_master_root:-$objects}/$v/master.m3u8" | head -1)
first_seg=$(uris "$vdir/$first_variant" | grep -v 'init' | head -1)
if [[ " $TARGETS " == *" nginx "* ]]; then
  start_nginx preflight
  same "$nginx_url/$v/master.m3u8" "${nginx_master_root:-$objects}/$v/master.m3u8"
  same "$nginx_url/$v/$first_variant" "$vdir/$first_variant"
  same "$nginx_url/$v/$first_seg" "$vdir/$first_seg"
  same "$nginx_url/$prog_key" "$objects/$prog_key"
  stop "$nginx"
fi
start_host preflight
same "$base$hls_path"
same "$base/media/$id/v$version/${first_seg}?${hls_path#*\?}" "$vdir/$first_seg"
same "$base$prog_path" "$objects/$prog_key"
code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "$base/hls/$id/master.m3u8" || echo 000)
[ "$code" = 401 ] || die "host returned HTTP $code for the master playlist without a token (expected 401: is auth on?)"
stop "$host"
if [[ " $TARGETS " == *" nginx "* ]]; then served="nginx and the host return"; else served="the host returns"; fi
echo "preflight: $served the stored files; the host refuses an unsigned request"

# --- runs -----------------------------------------------------------------------------------------
declare -A report extra
targets=()
run() { # run TARGET SPEED
  local target=$1 speed=$2 key=$1@$2 pid url prog port out log c0 c1 m0 m1 t0 t1 lg rc=0 est backlog=""
  if [ "$target" = nginx ]; then
    start_nginx "run-$speed"
    pid=$nginx url=$nginx_url/$v/master.m3u8 prog=$nginx_url/$prog_key port=${nginx_url##*:}
  else
    start_host "run-$speed"
    pid=$host url=$base$hls_path prog=$base$prog_path port=${base##*:}
  fi
  # The accept backlog in force: for a listening socket, ss's Send-Q is the backlog.
  backlog=$(ss -Hltn "sport = :$port" | awk 'NR == 1 {print $3}')
  out=$work/report-$target-$speed.json
  log=$work/loadgen-$target-$speed.log
  c0=$(tcpext "${counters[@]}")
  m0=$(machine_ticks)
  t0=$EPOCHREALTIME
  echo "== $target, speed $speed: $LISTENERS listeners for ${DURATION}s (ramp ${RAMP}s), accept backlog ${backlog:-?}"
  local sessions=()
  if [ "$target" = host ] && [ "$SESSIONS" = per-listener ]; then
    "$bin" sign "/hls/$id/master.m3u8" --count "$LISTENERS" --ttl 2h --data-directory "$data" | sed "s|^|$base|" > "$work/urls-$speed"
    sessions=(--urls "$work/urls-$speed")
  fi
  "$loadgen" --url "$url" "${sessions[@]}" --progressive-url "$prog" --progressive-fraction "$PROGRESSIVE_FRACTION" \
    --progressive-kbps "$prog_kbps" --listen-seconds "$listen_seconds" --listeners "$LISTENERS" --duration "$DURATION" \
    --ramp-seconds "$RAMP" --speed "$speed" --skip-probability "$SKIP_PROBABILITY" --server-pid "$pid" \
    --event-loops "$LOADGEN_EVENT_LOOPS" "${scenario_args[@]}" --json "$out" > "$log" 2>&1 &
  lg=$!
  pids+=("$lg")
  # Established connections to the server, a few seconds after the ramp.
  sleep "$(( RAMP + 5 < DURATION - 2 ? RAMP + 5 : (DURATION > 2 ? DURATION - 2 : 1) ))"
  est=$(ss -Htn state established "dport = :$port" 2>/dev/null | wc -l)
  wait "$lg" || rc=$?
  t1=$EPOCHREALTIME
  m1=$(machine_ticks)
  forget "$lg"
  c1=$(tcpext "${counters[@]}")
  kill -0 "$pid" 2>/dev/null || warn "$target exited during the run (see $work)"
  if [ "$target" = nginx ]; then stop "$nginx"; else stop "$host"; fi
  sed 's/^/    /' "$log"
  if [ "$rc" -ne 0 ] || [ ! -s "$out" ]; then
    warn "veza-loadgen failed against $target at speed $speed (exit $rc)"
    report[$key]=""
  else
    report[$key]=$out
  fi
  extra[$key]="$est ${backlog:-?} $(awk -v a="$m1" -v b="$m0" -v t0="$t0" -v t1="$t1" -v hz="$hz" \
    'BEGIN {split(a, x); split(b, y); printf "%.2f %.2f", (x[1] - y[1]) / hz / (t1 - t0), (x[2] - y[2]) / hz / (t1 - t0)}') $(awk -v a="$c1" -v b="$c0" 'BEGIN {n = split(a, x); split(b, y); for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? " " : ""), x[i] - y[i]}')"
  sleep "$PAUSE"
}
for speed in $SPEEDS; do
  for target in $TARGETS; do
    run "$target" "$speed"
    targets+=("$target@$speed")
  done
done

# --- summary --------------------------------------------------------------------------------------
q() { local f=$1; shift; jq -r "$@" "$f"; } # q REPORT [--arg NAME VALUE…] FILTER
label() { case ${1%@*} in nginx) echo "nginx $("$nginx_bin" -v 2>&1 | sed -n 's/.*nginx\///p') ($NGINX_WORKERS worker$( [ "$NGINX_WORKERS" = 1 ] || echo s))";; host) echo "streamhost serve (signed, limits off)";; esac; }
echo
echo "## Listener load: streamhost vs nginx (same files, same listener mix)"
echo
echo "$LISTENERS listeners per run ($(awk -v f="$PROGRESSIVE_FRACTION" 'BEGIN {printf "%g", f * 100}') % progressive $PROGRESSIVE_RENDITION at $prog_kbps kbit/s × speed, the rest HLS with"
echo "StreamKit's ABR over the AAC ladder, 30 s buffer, skip probability $SKIP_PROBABILITY with restart), ${DURATION} s per run"
echo "including a ${RAMP} s ramp; one $((TRACK_SECONDS / 60))-minute track; each server fresh for its run; $(nproc) cores shared by the"
echo "server and veza-loadgen. CPU: user + system time of the server's processes (nginx: master +"
echo "workers) over the run, in cores; loopback softirq work is mostly not charged to them."
echo
echo "| target | speed | listeners | errors | stalls | TTFB p50 / p99 | first audio p50 / p99 | server CPU (cores, mean) | CPU per 1000 listeners | steady state: server CPU per request | server peak RSS | loadgen CPU (cores) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for t in "${targets[@]}"; do
  r=${report[$t]}
  if [ -z "$r" ]; then echo "| $(label "$t") | ${t#*@}× | $LISTENERS | run failed | | | | | | | | |"; continue; fi
  # shellcheck disable=SC2016 # \(…) is jq's interpolation
  q "$r" --arg l "$(label "$t")" '"| \($l) | \(.speed)× | \(.listeners) | \(.errorsTotal) | \(.stalls) | \(.timeToFirstByteMs.p50 * 100 | round / 100) / \(.timeToFirstByteMs.p99 * 100 | round / 100) ms | \(.timeToFirstAudioMs.p50 * 100 | round / 100) / \(.timeToFirstAudioMs.p99 * 100 | round / 100) ms | \(.server.meanCores * 100 | round / 100) | \(.server.meanCores / .listeners * 1000000 | round / 1000) | \(if .steady then "\(.steady.serverMicrosecondsPerRequest * 10 | round / 10) µs" else "–" end) | \(.server.peakRSSMiB * 10 | round / 10) MiB | \(.loadgen.meanCores * 100 | round / 100) |"'
done
echo
echo "| target | speed | errors (non-2xx / connect / lost / timeout / playlist) | stall time | machine CPU busy (cores of $(nproc); softirq) | established after the ramp | accept backlog | listen overflows | TCP memory pressure; receive drops; RTOs | Mbit/s | requests | sessions | progressive first audio p99 | progressive kbit/s (pace) | loadgen peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for t in "${targets[@]}"; do
  r=${report[$t]}
  [ -n "$r" ] || continue
  read -r est backlog busy softirq overflows _ pressure _ rcvqdrop rto <<< "${extra[$t]}"
  # shellcheck disable=SC2016 # \(…) is jq's interpolation
  q "$r" --arg l "$(label "$t")" --arg est "$est" --arg b "$backlog" --arg o "$overflows" --arg p "$pressure; $rcvqdrop; $rto" --arg busy "$busy" --arg si "$softirq" \
    '"| \($l) | \(.speed)× | \(.errors.status) / \(.errors.connect) / \(.errors.connectionLost) / \(.errors.timeout) / \(.errors.playlist) | \(.stallSeconds * 10 | round / 10) s | \($busy); \($si) | \($est) | \($b) | \($o) | \($p) | \(.bytes * 8 / .durationSeconds / 1e6 | round) | \(.requests) | \(.sessions) | \(if .progressive then "\(.progressive.timeToFirstAudioMs.p99 * 100 | round / 100) ms" else "–" end) | \(if .progressive then "\(.progressive.meanKbps | round) (\(.progressive.paceKbps | round))" else "–" end) | \(.loadgen.peakRSSMiB | round) MiB |"'
done
echo
# No same-run ratios in the progressive scenario: nginx sends each file at once and idles.
[ "$SCENARIO" = progressive ] && SPEEDS_RATIO="" || SPEEDS_RATIO=$SPEEDS
for speed in $SPEEDS_RATIO; do
  case " $TARGETS " in *" nginx "*) ;; *) continue;; esac
  case " $TARGETS " in *" host "*) ;; *) continue;; esac
  n=${report[nginx@$speed]:-} h=${report[host@$speed]:-}
  if [ -z "$n" ] || [ -z "$h" ]; then echo "speed $speed×: no ratio (a run failed)"; echo; continue; fi
  awk -v fa_h="$(q "$h" .timeToFirstAudioMs.p99)" -v fa_n="$(q "$n" .timeToFirstAudioMs.p99)" \
      -v c_h="$(q "$h" '.server.meanCores / .listeners')" -v c_n="$(q "$n" '.server.meanCores / .listeners')" \
      -v p_h="$(q "$h" '.steady.serverMicrosecondsPerRequest // 0')" -v p_n="$(q "$n" '.steady.serverMicrosecondsPerRequest // 0')" \
      -v rss="$(q "$h" .server.peakRSSMiB)" -v goal="$RATIO_GOAL" -v rgoal="$RSS_GOAL_MIB" -v s="$speed" '
    function ratio(a, b) { return b > 0 ? sprintf("%.2f×", a / b) : "n/a" }
    function met(a, b) { return b > 0 && a / b <= goal ? "met" : "not met" }
    BEGIN {
      printf "**speed %s×, host / nginx:** first audio p99 %s, CPU per listener %s (goal ≤ %d×: %s, %s); host peak RSS %.0f MiB (goal ≤ %d MiB: %s); steady-state CPU per request %s\n\n",
        s, ratio(fa_h, fa_n), ratio(c_h, c_n), goal, met(fa_h, fa_n), met(c_h, c_n), rss, rgoal, (rss <= rgoal ? "met" : "not met"), ratio(p_h, p_n)
    }'
done
if [ "$SCENARIO" = progressive ]; then
  # The host's pacing (defaults): a burst of 10 s of audio, then 4× the bitrate.
  bound=$(awk -v k="$prog_kbps" -v l="$listen_seconds" 'BEGIN {printf "%d", k * 1000 / 8 * (10 + 4 * l)}')
  file_bytes=$(stat -c %s "$objects/$prog_key")
  echo "**Progressive listeners who stop after $listen_seconds s** (reading as fast as the server sends; file $file_bytes bytes):"
  echo
  echo "| target | listeners | stalls | bytes each: min / median / max | bound: 10 s burst + $listen_seconds s at 4× | max / bound |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
  for t in "${targets[@]}"; do
    r=${report[$t]}
    [ -n "$r" ] || continue
    # shellcheck disable=SC2016 # \(…) is jq's interpolation
    q "$r" --arg l "$(label "$t")" --argjson b "$bound" \
      '(.progressive.bytesPerListener | sort) as $s | "| \($l) | \(.progressive.listeners) | \(.stalls) | \($s[0]) / \($s[($s | length) / 2 | floor]) / \($s[-1]) | \($b) | \(($s[-1] / $b * 100 | round) / 100) |"'
  done
  echo
fi
if [ "$SCENARIO" = hostile ]; then
  echo "**Slow connections beside the listeners** (opened over the ramp):"
  echo
  echo "| target | kind | connections | closed by the server | after (p50 / max) | still open at the end | listeners' stalls / errors |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
  for t in "${targets[@]}"; do
    r=${report[$t]}
    [ -n "$r" ] || continue
    # shellcheck disable=SC2016 # \(…) is jq's interpolation
    q "$r" --arg l "$(label "$t")" '. as $run | .slow[]? | "| \($l) | \(.kind) | \(.connections) | \(.closedByServer) | \(.closeSecondsP50 * 10 | round / 10) / \(.closeSecondsMax * 10 | round / 10) s | \(.stillOpenAtEnd) | \($run.stalls) / \($run.errorsTotal) |"'
  done
  echo
fi
echo "Kernel counters are deltas over each run (machine-wide): ListenOverflows (accept queue full),"
echo "TCPMemoryPressures (socket buffers above net.ipv4.tcp_mem's pressure threshold), TCPRcvQDrop"
echo "(segments dropped for want of receive memory) and TCPTimeouts (retransmission timeouts, each"
echo "at least 200 ms of silence on a connection, doubling when repeated). Machine CPU: all"
echo "processes and the kernel over the run (from /proc/stat), of which softirq (loopback TCP)."
