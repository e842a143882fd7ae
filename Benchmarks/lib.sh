# Helpers shared by the benchmark scripts (sourced, after `set -euo pipefail`).

die() { echo "error: $*" >&2; exit 1; }
warn() { echo "warning: $*" >&2; }
# curl_ ARGS…: curl on loopback, never through a proxy.
curl_() { curl -sS --noproxy '*' "$@"; }
# port_busy PORT: whether something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# music_flac OUT SECONDS: stereo 44.1 kHz 16-bit FLAC, music-like (tones, a sweep, noise).
music_flac() {
  ffmpeg -v error -f lavfi -i "aevalsrc=0.3*sin(2*PI*440*t)+0.2*sin(2*PI*3000*t*(1+0.1*sin(t)))+0.08*(random(0)-0.5)|0.3*sin(2*PI*663*t)+0.1*sin(2*PI*5100*t)+0.08*(random(1)-0.5):s=44100:d=$2:c=stereo" \
    -c:a flac -sample_fmt s16 "$1"
}

# tone_flac OUT SECONDS I: a short stereo FLAC whose tones depend on I (distinct tracks).
tone_flac() {
  ffmpeg -v error -f lavfi -i "aevalsrc=0.3*sin(2*PI*$((200 + $3 * 37))*t)+0.08*(random(0)-0.5)|0.3*sin(2*PI*$((300 + $3 * 41))*t)+0.08*(random(1)-0.5):s=44100:d=$2:c=stereo" \
    -c:a flac -sample_fmt s16 "$1"
}

# wait_listening LOG PID [WHAT]: waits up to 30 s for `streamhost … listening on http://…` in LOG
# while PID lives, then sets `base` to that URL (0.0.0.0 as 127.0.0.1). Sets a variable rather
# than printing it: `die` in a command substitution would only end the subshell.
wait_listening() {
  local log=$1 pid=$2 what=${3:-streamhost serve}
  for _ in $(seq 1 300); do
    grep -q "streamhost listening on http://" "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$what exited at start"; }
    sleep 0.1
  done
  grep -q "streamhost listening on http://" "$log" || die "$what did not print 'listening on' within 30 s"
  base=$(grep -o 'streamhost listening on http://[0-9.]*:[0-9]*' "$log" | head -1 | sed 's/.* //' | sed 's#//0\.0\.0\.0:#//127.0.0.1:#')
}

# ensure_tools COMMAND…: installs with apt (as root, or with sudo) what is missing: each
# command's Debian package (ss: iproute2; nginx: nginx-light, or nginx where that is gone).
# With nginx among them, sets `nginx_bin`.
ensure_tools() {
  local c sudo="" missing=() wants_nginx=0
  for c in "$@"; do
    case $c in
      nginx)
        wants_nginx=1
        nginx_bin=$(command -v nginx || true)
        if [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ]; then nginx_bin=/usr/sbin/nginx; fi
        if [ -z "$nginx_bin" ]; then missing+=(nginx-light); fi ;;
      ss) command -v ss >/dev/null 2>&1 || missing+=(iproute2) ;;
      *) command -v "$c" >/dev/null 2>&1 || missing+=("$c") ;;
    esac
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "Installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    # nginx-light is gone from newer Debian releases: fall back to the nginx package.
    missing=("${missing[@]/nginx-light/nginx}")
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [ "$wants_nginx" = 1 ]; then nginx_bin=$(command -v nginx || echo /usr/sbin/nginx); fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# icecast2, the live benchmarks' reference server, on a free port in the background: one source
# password, a 64 KiB burst like Veza's, CLIENTS listeners; it refuses to run as root without
# changeowner. Sets ice_port and ice_pid.  Usage: start_icecast WORK PASSWORD CLIENTS
start_icecast() {
  local work=$1 password=$2 clients=$3 owner=""
  ice_port=$(free_port)
  mkdir -p "$work/icecast/log"
  if [ "$(id -u)" -eq 0 ]; then
    owner="<security><changeowner><user>nobody</user><group>nogroup</group></changeowner></security>"
    chown -R nobody:nogroup "$work/icecast"
    chmod 755 "$work"
  fi
  cat > "$work/icecast/icecast.xml" <<XML
<icecast>
  <limits><clients>$clients</clients><sources>10</sources><queue-size>524288</queue-size><burst-size>65536</burst-size><source-timeout>10</source-timeout></limits>
  <authentication><source-password>$password</source-password><admin-user>admin</admin-user><admin-password>admin-pw-123</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>$ice_port</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <fileserve>0</fileserve>
  <paths><basedir>/usr/share/icecast2</basedir><logdir>$work/icecast/log</logdir><webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot></paths>
  <logging><errorlog>error.log</errorlog><accesslog>-</accesslog><loglevel>2</loglevel></logging>
  $owner
</icecast>
XML
  icecast2 -c "$work/icecast/icecast.xml" > "$work/icecast.out" 2>&1 &
  ice_pid=$!
  for _ in $(seq 1 50); do port_busy "$ice_port" && break; sleep 0.1; done
  port_busy "$ice_port" || { cat "$work/icecast.out" "$work/icecast/log/error.log" 2>/dev/null; die "icecast2 did not start"; }
}
