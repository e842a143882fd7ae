#!/usr/bin/env bash
# Scale-out throughput (issue 8), against the real `streamhost serve` / `streamhost worker` on
# loopback ports and the real servers of scripts/services.sh (PostgreSQL and SeaweedFS's S3
# gateway, started here and stopped on exit):
#  A. jobs per minute with separate worker processes: `streamhost serve --workers 0` (API only)
#     plus N `streamhost worker --workers 1` processes (each with its own data directory), all on
#     S3 + PostgreSQL, for every N in WORKER_COUNTS (default "1 2"). JOBS short tracks
#     (TRACK_SECONDS-long stereo 44.1 kHz FLAC, music-like) are uploaded one after the other as
#     fast as the API takes them; the wall time runs from the first upload to the last track
#     `ready`. Reported: jobs/min per N and the ratio to the first N. The workers' CPU use (cores
#     busy over the wall time) says how much of the machine one job already uses: the encoder runs
#     the ladder's renditions in parallel inside one job, so on 2 cores one worker process
#     already keeps more than one core busy and a second process can at best fill the rest.
#  B. publish time of one LONG_SECONDS-long track: from the upload's 202 to `ready`, with plain
#     `streamhost serve` (its default worker count) on (a) the embedded default (local disk +
#     SQLite) and (b) S3 + PostgreSQL; and the job's own duration, from the host's JSON log
#     (`job started` → `job done`). The ratio b/a is what the scale-out backends cost.
# Every scenario gets a fresh PostgreSQL database (CREATE DATABASE … OWNER veza) and fresh data
# directories; the S3 bucket is shared (every upload is a new track id). Auth is on: an admin JWT
# from `streamhost token --scope admin --data-directory DIR` is minted before the API host that
# uses DIR starts (the token command creates DIR/secrets.json), and every API call carries it.
# Usage: Benchmarks/scaleout-throughput.sh   (uses .build/release/streamhost, building it if
#        missing; writes nothing outside /tmp; inherited VEZA_… variables are ignored)
# Knobs: STREAMHOST=path  JOBS=12  TRACK_SECONDS=30  WORKER_COUNTS="1 2"  LONG_SECONDS=300
#        TIMEOUT=900 (seconds per scenario)  SKIP_A=1  SKIP_B=1  KEEP=1 (keep the work directory)
set -euo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-12}
TRACK_SECONDS=${TRACK_SECONDS:-30}
WORKER_COUNTS=${WORKER_COUNTS:-1 2}
LONG_SECONDS=${LONG_SECONDS:-300}
TIMEOUT=${TIMEOUT:-900}
SKIP_A=${SKIP_A:-0}
SKIP_B=${SKIP_B:-0}
KEEP=${KEEP:-0}
for knob in JOBS TRACK_SECONDS LONG_SECONDS TIMEOUT; do
  [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || { echo "error: $knob=${!knob}: expected a positive integer" >&2; exit 2; }
done
for n in $WORKER_COUNTS; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "error: WORKER_COUNTS=\"$WORKER_COUNTS\": expected positive integers" >&2; exit 2; }
done

# The host reads every VEZA_… variable: only the ones set below may count.
while read -r v; do unset "$v"; done < <(compgen -e | grep '^VEZA_' || true)
export NO_PROXY="127.0.0.1,localhost,::1${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost,::1${no_proxy:+,$no_proxy}"

# --- tools: ffmpeg, curl, python3 (installed with apt only when missing); services.sh does the rest --
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the release binary ---------------------------------------------------------------------------
bin=${STREAMHOST:-.build/release/streamhost}
if [ ! -x "$bin" ] && [ -z "${STREAMHOST:-}" ]; then
  swift build -c release --product streamhost >/dev/null
fi
[ -x "$bin" ] || { echo "error: no streamhost binary at $bin (make a release build, or set STREAMHOST)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
"$bin" worker --help >/dev/null 2>&1 || { echo "error: $bin has no 'worker' command: rebuild it (swift build -c release --product streamhost)" >&2; exit 1; }

work=$(mktemp -d /tmp/veza-scaleout-bench.XXXXXX)
# Apart from $work: services.sh makes its directory searchable by the postgres user, not $work.
services=$(mktemp -d /tmp/veza-scaleout-services.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  scripts/services.sh stop "$services" >/dev/null 2>&1 || true
  if [ "$KEEP" = 1 ]; then
    echo "kept $work and $services" >&2
  else
    rm -rf "$work" "$services"
  fi
}
trap cleanup EXIT
# shellcheck source=Benchmarks/lib.sh
. Benchmarks/lib.sh
now() { date +%s.%N; }
calc() { awk "BEGIN {printf \"%.${2:-1}f\", $1}"; } # calc EXPRESSION [DECIMALS]
hz=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the PIDs given (0 for a PID that is gone)
  local p t=0 f
  for p in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + $(echo "$f" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
hwm_mib() { awk '$1 == "VmHWM:" {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

# --- inputs: music-like stereo 44.1 kHz FLAC (tones + noise), as in host-throughput.sh ------------
echo "== inputs: $JOBS × ${TRACK_SECONDS}-s and 1 × ${LONG_SECONDS}-s stereo 44.1 kHz FLAC"
long=$work/long.flac
music_flac "$long" "$LONG_SECONDS"
for i in $(seq 1 "$JOBS"); do tone_flac "$work/short-$i.flac" "$TRACK_SECONDS" "$i"; done

# --- PostgreSQL + SeaweedFS S3 --------------------------------------------------------------------
echo "== services: scripts/services.sh start $services"
scripts/services.sh start "$services"
# services.env: KEY=value lines quoted with printf %q (VEZA_PG_URL, VEZA_S3_…, PG_PORT, …).
# shellcheck disable=SC1091
. "$services/services.env"
: "${VEZA_PG_URL:?services.env has no VEZA_PG_URL}" "${PG_PORT:?services.env has no PG_PORT}"
: "${VEZA_S3_ENDPOINT:?services.env has no VEZA_S3_ENDPOINT}"
psql_bin=$(command -v psql || true)
if [ -z "$psql_bin" ]; then
  psql_bin=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/psql' 2>/dev/null | sort -V | tail -n 1)
fi
[ -n "$psql_bin" ] || die "no psql (PostgreSQL's client) found"
admin_url=postgres://postgres@127.0.0.1:$PG_PORT/postgres
s3_vars=()
while read -r k; do s3_vars+=("$k=${!k}"); done < <(grep -o '^VEZA_S3_[A-Z0-9_]*' "$services/services.env" | sort -u)
new_database() { # new_database NAME → prints the URL for the veza role
  "$psql_bin" -X -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE $1 OWNER veza" >/dev/null
  echo "${VEZA_PG_URL%/*}/$1"
}
# One loopback client uploads as fast as it can: per-client limits would measure themselves.
limits_off=(VEZA_LIMITS_API_RATE=0 VEZA_LIMITS_UPLOAD_RATE=0 VEZA_LIMITS_MEDIA_RATE=0 VEZA_LIMITS_CONNECTIONS_PER_CLIENT=0)
backend_env=() # the VEZA_… variables of the next process started
use_scaleout() { # use_scaleout DATABASE
  local url
  url=$(new_database "$1")
  backend_env=(VEZA_STORAGE_BACKEND=s3 VEZA_CATALOG_BACKEND=postgres "VEZA_POSTGRES_URL=$url" "${s3_vars[@]}" "${limits_off[@]}")
}
use_embedded() { backend_env=("${limits_off[@]}"); }

# --- processes ------------------------------------------------------------------------------------
host="" base="" auth=()
start_serve() { # start_serve NAME [serve flags…]: mints the admin token, starts the host, sets host/base/auth
  local name=$1 data=$work/$1/api log=$work/$1/serve.log admin
  shift
  mkdir -p "$data"
  admin=$(env "${backend_env[@]}" "$bin" token --scope admin --ttl 2h --data-directory "$data" 2>"$work/$name/token.log") \
    || { cat "$work/$name/token.log" >&2; die "streamhost token failed"; }
  [ -n "$admin" ] || die "streamhost token printed no token"
  [ -f "$data/secrets.json" ] || die "streamhost token wrote no $data/secrets.json (the host would sign with other keys)"
  auth=(-H "Authorization: Bearer $admin")
  env "${backend_env[@]}" "$bin" serve --port 0 --data-directory "$data" --log-format json "$@" > "$log" 2>&1 &
  host=$!
  pids+=("$host")
  wait_listening "$log" "$host" "streamhost serve ($name)"
}
workers=() worker_logs=()
start_worker() { # start_worker NAME K
  local dir=$work/$1/worker-$2 pid
  mkdir -p "$dir"
  env "${backend_env[@]}" "$bin" worker --workers 1 --data-directory "$dir" --log-format json > "$dir/out.log" 2> "$dir/worker.log" &
  pid=$!
  pids+=("$pid")
  workers+=("$pid")
  worker_logs+=("$dir/worker.log")
  for _ in $(seq 1 300); do
    grep -q '^streamhost worker .* running' "$dir/out.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/out.log" "$dir/worker.log" >&2; die "streamhost worker $2 ($1) exited at start"; }
    sleep 0.1
  done
  grep -q '^streamhost worker .* running' "$dir/out.log" || die "streamhost worker $2 ($1) did not say it was running within 30 s"
}
stop() { local p; for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done; for p in "$@"; do wait "$p" 2>/dev/null || true; done; }

upload() { # upload FILE → prints the track id (the 202's)
  local response code
  # No `Expect: 100-continue`: curl sends it for bodies over 1 MiB and, as the host answers no
  # 100 Continue, waits 1 s before sending the body (≈ 1 s per 30-s FLAC, 12 s over 12 uploads).
  response=$(curl_ "${auth[@]}" -X POST --data-binary @"$1" -H 'Content-Type: audio/flac' -H 'Expect:' -w '\n%{http_code}' "$base/v1/tracks")
  code=${response##*$'\n'}
  [ "$code" = 202 ] || die "upload of $1: HTTP $code (expected 202): ${response%$'\n'*}"
  sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<< "${response%$'\n'*}" | head -1
}
wait_ready() { # wait_ready DEADLINE ID…: polls GET /v1/tracks/{id} until every one is ready
  local deadline=$1 pending status id
  shift
  pending=("$@")
  while [ ${#pending[@]} -gt 0 ]; do
    local left=()
    for id in "${pending[@]}"; do
      status=$(curl_ "${auth[@]}" "$base/v1/tracks/$id" || true)
      case $status in
        *'"status":"ready"'*) ;;
        *'"status":"failed"'*) die "track $id failed: $status";;
        *) left+=("$id");;
      esac
    done
    pending=("${left[@]+"${left[@]}"}")
    [ ${#pending[@]} -eq 0 ] && break
    [ "$(date +%s)" -lt "$deadline" ] || die "${#pending[@]} track(s) not ready after $TIMEOUT s: ${pending[*]}"
    sleep 0.2
  done
}
job_stats() { # job_stats LOG… → "count mean min max" of job durations (s), from the JSON logs
  python3 - "$@" <<'EOF'
import datetime, json, sys
started, done = {}, []
for path in sys.argv[1:]:
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if "job" not in o or "ts" not in o:
                continue
            ts = datetime.datetime.strptime(o["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
            if o.get("msg") == "job started":
                started[o["job"]] = ts
            elif o.get("msg") == "job done" and o["job"] in started:
                done.append(ts - started[o["job"]])
if done:
    print("%d %.2f %.2f %.2f" % (len(done), sum(done) / len(done), min(done), max(done)))
else:
    print("0 0 0 0")
EOF
}
jobs_done() { grep -c '"msg":"job done"' "$1" || true; }

# --- A: jobs per minute, N worker processes -------------------------------------------------------
declare -A a_wall a_rate a_upload a_jobs a_cores a_split a_hwm
if [ "$SKIP_A" != 1 ]; then
  for n in $WORKER_COUNTS; do
    name=a-$n
    echo "== A, N=$n: streamhost serve --workers 0 + $n × streamhost worker --workers 1 (S3 + PostgreSQL)"
    use_scaleout "veza_bench_a$n"
    start_serve "$name" --workers 0
    workers=() worker_logs=()
    for k in $(seq 1 "$n"); do start_worker "$name" "$k"; done
    c0=$(cpu_ticks "${workers[@]}") s0=$(cpu_ticks "$host")
    ids=()
    t0=$(now)
    for i in $(seq 1 "$JOBS"); do ids+=("$(upload "$work/short-$i.flac")"); done
    t_up=$(now)
    wait_ready $(($(date +%s) + TIMEOUT)) "${ids[@]}"
    t1=$(now)
    c1=$(cpu_ticks "${workers[@]}") s1=$(cpu_ticks "$host")
    wall=$(calc "$t1 - $t0" 2)
    a_wall[$n]=$wall
    a_rate[$n]=$(calc "$JOBS * 60 / $wall" 1)
    a_upload[$n]=$(calc "$t_up - $t0" 1)
    a_cores[$n]="$(calc "($c1 - $c0) / $hz / $wall" 2) / $(calc "($s1 - $s0) / $hz / $wall" 2)"
    read -r cnt mean mn mx < <(job_stats "${worker_logs[@]}")
    [ "$cnt" -eq "$JOBS" ] || echo "note: $cnt 'job done' lines in the worker logs for $JOBS tracks" >&2
    a_jobs[$n]="$mean ($mn–$mx)"
    split=""
    for log in "${worker_logs[@]}"; do split+="${split:+ + }$(jobs_done "$log")"; done
    a_split[$n]=$split
    hwm=0
    for p in "${workers[@]}"; do h=$(hwm_mib "$p"); [ "$h" -gt "$hwm" ] && hwm=$h; done
    a_hwm[$n]=$hwm
    printf '   %d tracks in %s s (uploads took %s s) = %s jobs/min; jobs per worker: %s\n' "$JOBS" "$wall" "${a_upload[$n]}" "${a_rate[$n]}" "$split"
    stop "${workers[@]}" "$host"
  done
fi

# --- B: publish time of one long track, embedded vs S3 + PostgreSQL ------------------------------
declare -A b_publish b_upload b_job b_cores
if [ "$SKIP_B" != 1 ]; then
  for setup in embedded scaleout; do
    name=b-$setup
    if [ "$setup" = embedded ]; then
      echo "== B: ${LONG_SECONDS}-s track, streamhost serve on the embedded default (local disk + SQLite)"
      use_embedded
    else
      echo "== B: ${LONG_SECONDS}-s track, streamhost serve on S3 + PostgreSQL"
      use_scaleout veza_bench_b
    fi
    start_serve "$name"
    s0=$(cpu_ticks "$host")
    t_req=$(now)
    id=$(upload "$long")
    t0=$(now)
    wait_ready $(($(date +%s) + TIMEOUT)) "$id"
    t1=$(now)
    s1=$(cpu_ticks "$host")
    b_upload[$setup]=$(calc "$t0 - $t_req" 2)
    b_publish[$setup]=$(calc "$t1 - $t0" 2)
    b_cores[$setup]=$(calc "($s1 - $s0) / $hz / ($t1 - $t_req)" 2)
    read -r cnt mean _ _ < <(job_stats "$work/$name/serve.log")
    [ "$cnt" -eq 1 ] || echo "note: $cnt 'job done' lines in the host log for 1 track" >&2
    b_job[$setup]=$mean
    printf '   upload request %s s; 202 → ready %s s; job %s s\n' "${b_upload[$setup]}" "${b_publish[$setup]}" "$mean"
    stop "$host"
  done
fi

# --- summary --------------------------------------------------------------------------------------
echo
echo "## Scale-out throughput (issue 8): S3 + PostgreSQL, worker processes"
echo
echo "$(nproc) cores; streamhost $bin; PostgreSQL and SeaweedFS S3 from scripts/services.sh on the same machine."
if [ "$SKIP_A" != 1 ]; then
  first=${WORKER_COUNTS%% *}
  echo
  echo "A. Jobs per minute: $JOBS × ${TRACK_SECONDS}-s stereo 44.1 kHz FLAC uploaded one after the other to"
  echo "\`streamhost serve --workers 0\`, N \`streamhost worker --workers 1\` processes; wall time from the first"
  echo "upload to the last \`ready\`. CPU: user + system time over the wall time, in cores (workers / API host)."
  echo
  echo "| scenario | N | tracks | wall s | jobs/min | vs N=$first | uploads s | job s, mean (min–max) | jobs per worker | CPU cores (workers / API) | worker peak RSS |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
  for n in $WORKER_COUNTS; do
    printf '| A: S3 + PostgreSQL | %d | %d | %s | %s | %s× | %s | %s | %s | %s | %s MiB |\n' "$n" "$JOBS" "${a_wall[$n]}" "${a_rate[$n]}" \
      "$(calc "${a_rate[$n]} / ${a_rate[$first]}" 2)" "${a_upload[$n]}" "${a_jobs[$n]}" "${a_split[$n]}" "${a_cores[$n]}" "${a_hwm[$n]}"
  done
fi
if [ "$SKIP_B" != 1 ]; then
  echo
  echo "B. Publish time: one ${LONG_SECONDS}-s stereo 44.1 kHz FLAC, plain \`streamhost serve\` (default workers);"
  echo "from the upload's 202 to \`ready\` (polled every 0.2 s), and the job alone from the host's log."
  echo
  echo "| scenario | backends | upload request s | 202 → ready s | job s | host CPU cores |"
  echo "| --- | --- | ---: | ---: | ---: | ---: |"
  echo "| B (a) | embedded: local disk + SQLite | ${b_upload[embedded]} | ${b_publish[embedded]} | ${b_job[embedded]} | ${b_cores[embedded]} |"
  echo "| B (b) | S3 (SeaweedFS) + PostgreSQL | ${b_upload[scaleout]} | ${b_publish[scaleout]} | ${b_job[scaleout]} | ${b_cores[scaleout]} |"
  echo
  printf '**S3 + PostgreSQL / embedded: %s× (202 → ready), %s× (job)**\n' \
    "$(calc "${b_publish[scaleout]} / ${b_publish[embedded]}" 2)" "$(calc "${b_job[scaleout]} / ${b_job[embedded]}" 2)"
fi
echo
echo "Commands (DB: a fresh database per scenario, CREATE DATABASE … OWNER veza; ENV = VEZA_STORAGE_BACKEND=s3"
echo "VEZA_CATALOG_BACKEND=postgres VEZA_POSTGRES_URL=postgres://veza:…@127.0.0.1:PORT/DB VEZA_S3_* from services.env):"
echo
echo '```'
echo "scripts/services.sh start DIR    # … scripts/services.sh stop DIR on exit"
echo "psql postgres://postgres@127.0.0.1:PORT/postgres -c \"CREATE DATABASE DB OWNER veza\""
echo "ENV streamhost token --scope admin --ttl 2h --data-directory API_DIR"
echo "ENV streamhost serve --port 0 --data-directory API_DIR --log-format json --workers 0          # A"
echo "ENV streamhost worker --workers 1 --data-directory WORKER_DIR_K --log-format json             # A, K = 1…N"
echo "    streamhost serve --port 0 --data-directory API_DIR --log-format json                     # B (a)"
echo "ENV streamhost serve --port 0 --data-directory API_DIR --log-format json                     # B (b)"
echo "curl -H 'Authorization: Bearer …' -H 'Content-Type: audio/flac' -H 'Expect:' --data-binary @FILE \$BASE/v1/tracks   # → 202"
echo "curl -H 'Authorization: Bearer …' \$BASE/v1/tracks/ID   # until \"status\":\"ready\""
echo '```'
