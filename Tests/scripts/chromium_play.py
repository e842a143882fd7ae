#!/usr/bin/env python3
"""Plays the Veza Stream demo page in headless Chromium and checks that audio really plays
(or, with --dashboard PNG, that the listening dashboard draws its charts, and screenshots it).

Usage: chromium_play.py URL [--seconds 4] [--timeout 60] [--switch RENDITION] [--chromium PATH]

Opens URL (normally http://host/demo?autoplay=first#token=…) in a fresh headless Chromium
driven over the DevTools protocol on a pipe (fds 3 and 4, NUL-terminated JSON), then polls
`window.vezaDemo` until `audio.currentTime` has advanced by at least --seconds of media time
while `state == "playing"`. With --switch R it asks the page to switch to rendition R after
1 s of playback (`vezaDemo.setRendition(R)`) and then requires another --seconds of playback
with `vezaDemo.rendition == R`.

With --native, URL is an HLS playlist instead, played by Chromium's own HLS player in an
<audio> element (at --rate) until it ends (with --live: for --seconds from where it started); --throttle-kbps K limits the page's download rate for
the first --throttle-seconds, so the player's ABR starts low and switches up afterwards. The
result then carries duration, the final currentTime and the renditions whose segments were fetched.

Prints one JSON line: {ok, currentTime, rendition, state, error, consoleErrors, ...}; exits 0
only when ok. Chromium and its temporary profile are always removed. Standard library only.
"""

import argparse
import base64
import contextlib
import ctypes
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")
POLL_INTERVAL = 0.2
SWITCH_AFTER = 1.0

STATUS_EXPRESSION = """(() => {
  const d = window.vezaDemo;
  if (!d) return null;
  const a = d.audio;
  return { state: d.state, error: d.error, rendition: d.rendition,
           currentTime: a ? a.currentTime : null, paused: a ? a.paused : null, duration: a ? a.duration : null,
           engine: d.engine, liveParts: d.liveParts ?? null, catchUps: d.catchUps ?? null, webrtc: d.webrtcStats ?? null,
           ended: a ? a.ended : null, readyState: a ? a.readyState : null };
})()"""


class Failure(Exception):
    """Ends the run with ok=false and this message as the reason."""


class Terminated(Exception):
    """SIGTERM/SIGINT/SIGHUP arrived; unwinds through the cleanup."""


class DevToolsPipe:
    """The DevTools protocol over --remote-debugging-pipe."""

    def __init__(self, to_browser, from_browser, on_event):
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.on_event = on_event
        self.buffer = b""
        self.next_id = 0
        self.replies = {}

    def send(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            written = os.write(self.to_browser, data)
            data = data[written:]
        return self.next_id

    def call(self, method, params=None, session=None, timeout=15.0):
        """Sends a command and waits for its reply; raises Failure on a protocol error."""
        ident = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while ident not in self.replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Failure(f"no DevTools reply to {method} within {timeout:.0f} s")
            self.pump(remaining)
        reply = self.replies.pop(ident)
        if "error" in reply:
            raise Failure(f"{method} failed: {reply['error'].get('message', reply['error'])}")
        return reply.get("result", {})

    def pump(self, timeout):
        """Reads whatever arrives within `timeout` seconds and dispatches it."""
        ready, _, _ = select.select([self.from_browser], [], [], max(0.0, timeout))
        if not ready:
            return
        chunk = os.read(self.from_browser, 1 << 20)
        if not chunk:
            raise Failure("Chromium closed the DevTools pipe (crashed or exited)")
        self.buffer += chunk
        while b"\0" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\0", 1)
            if not raw:
                continue
            message = json.loads(raw)
            if "id" in message:
                self.replies[message["id"]] = message
            else:
                self.on_event(message)


def find_chromium(explicit):
    chosen = explicit or os.environ.get("CHROMIUM")
    if chosen:
        path = shutil.which(chosen)
        if not path:
            raise Failure(f"Chromium not found at {chosen}")
        return path
    for candidate in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(candidate)
        if path:
            return path
    raise Failure("Chromium not found (install chromium or pass --chromium / set CHROMIUM)")


def high_fd(fd):
    """A close-on-exec copy of fd numbered ≥ 10, so that dup2 onto 3 and 4 cannot collide."""
    copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return copy


def launch(binary, profile, log):
    """Starts Chromium in its own process group with the DevTools pipe on fds 3 (in) and 4 (out)."""
    command_read, command_write = (high_fd(fd) for fd in os.pipe())
    reply_read, reply_write = (high_fd(fd) for fd in os.pipe())

    def child_setup():
        os.dup2(command_read, 3)   # dup2 clears close-on-exec on the copies
        os.dup2(reply_write, 4)
        # Close any other inheritable descriptor this process was given (close-on-exec ones
        # close by themselves, including subprocess's own error pipe).
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 4:
                try:
                    if not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                        os.close(fd)
                except OSError:
                    pass

    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
    arguments = [
        binary, "--headless=new", "--no-sandbox", "--disable-gpu",
        "--autoplay-policy=no-user-gesture-required", "--no-first-run", "--no-default-browser-check",
        f"--user-data-dir={profile}", "--remote-debugging-pipe", "--no-proxy-server",
        "--disable-extensions", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", "--disable-crash-reporter", "--disable-breakpad",
        "--mute-audio", "--allow-loopback-in-peer-connection", "about:blank",
    ]
    try:
        process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                   close_fds=False, preexec_fn=child_setup, start_new_session=True)
    finally:
        os.close(command_read)
        os.close(reply_write)
    return process, command_write, reply_read


def become_subreaper():
    """Linux: orphaned Chromium helpers are re-parented to us (not to a PID 1 that may never
    reap them), so that stop() can kill and reap every one of them."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def own_children():
    """Pids of live processes whose parent is this process (from /proc)."""
    children = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return children
    me = os.getpid()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == me:
            children.append(int(name))
    return children


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop(process):
    """Kills Chromium's process group (it leads a new session), then any helper of it that
    was re-parented to us, and reaps them all."""
    if process is None:
        return
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, signal.SIGKILL)   # helpers left in the group
        except (ProcessLookupError, PermissionError):
            pass
        reap()
        leftovers = own_children()
        if not leftovers:
            return
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def describe_console(params):
    parts = []
    for arg in params.get("args", []):
        if "value" in arg:
            parts.append(str(arg["value"]))
        else:
            parts.append(arg.get("description") or arg.get("type", "?"))
    return " ".join(parts)


def describe_exception(params):
    details = params.get("exceptionDetails", {})
    exception = details.get("exception") or {}
    text = exception.get("description") or details.get("text") or "exception"
    where = details.get("url")
    return f"{text} ({where}:{details.get('lineNumber', 0) + 1})" if where else text


@contextlib.contextmanager
def page(args, result, url, on_event_extra=None):
    """A fresh headless Chromium with one page at `url`, attached over the DevTools pipe.
    Yields (cdp, session, evaluate, process); always stops Chromium and removes its profile.
    Console errors and exceptions go to result["consoleErrors"]; a Failure inside the block
    ends the run with result["reason"] (and Chromium's log if it died)."""
    binary = find_chromium(args.chromium)
    become_subreaper()
    profile = tempfile.mkdtemp(prefix="veza-chromium-")
    log_path = os.path.join(profile, "chromium.log")
    process = None
    pipes = []
    yielded = False
    try:
        with open(log_path, "wb") as log:
            process, to_browser, from_browser = launch(binary, profile, log)
        pipes = [to_browser, from_browser]

        console_errors = result["consoleErrors"]

        def on_event(message):
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                console_errors.append(describe_console(params))
            elif method == "Runtime.exceptionThrown":
                console_errors.append(describe_exception(params))
            elif method in ("Target.targetCrashed", "Inspector.targetCrashed"):
                raise Failure("the page crashed")
            elif method == "Target.detachedFromTarget":
                raise Failure("DevTools detached from the page")
            elif on_event_extra:
                on_event_extra(method, params)

        cdp = DevToolsPipe(to_browser, from_browser, on_event)
        target = cdp.call("Target.createTarget", {"url": "about:blank"}, timeout=30)["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        cdp.call("Runtime.enable", session=session)
        cdp.call("Page.enable", session=session)
        if on_event_extra:
            cdp.call("Network.enable", session=session)
        navigation = cdp.call("Page.navigate", {"url": url}, session=session)
        if navigation.get("errorText"):
            raise Failure(f"navigation failed: {navigation['errorText']}")

        def evaluate(expression):
            reply = cdp.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                  "awaitPromise": True}, session=session)
            if "exceptionDetails" in reply:
                raise Failure(f"evaluating {expression!r}: {describe_exception(reply)}")
            return reply.get("result", {}).get("value")

        yielded = True
        yield cdp, session, evaluate, process
    except Failure as failure:
        result["reason"] = str(failure)
        if process is not None and os.path.exists(log_path):
            with open(log_path, "rb") as log:
                tail = log.read()[-2000:].decode("utf-8", "replace").strip()
            if tail and process.poll() is not None:
                result["chromiumLog"] = tail
        if not yielded:
            raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)   # a second signal must not interrupt the cleanup
        stop(process)
        for fd in pipes:
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(profile, ignore_errors=True)


def wait(cdp, seconds):
    """Waits, handling DevTools events meanwhile."""
    until = time.monotonic() + seconds
    while (remaining := until - time.monotonic()) > 0:
        cdp.pump(remaining)


def run(args, result):
    """The demo page (MSE player): enough playback, optionally after a switch."""
    deadline = time.monotonic() + args.timeout
    with page(args, result, args.url) as (cdp, _session, evaluate, process):
        baseline = None        # media time when the measured stretch began
        status = None
        switch_requested = False
        switched = args.switch is None
        rate_set = False
        seen = []
        while True:
            if time.monotonic() > deadline:
                if status is None:
                    raise Failure(f"timed out after {args.timeout:.0f} s (window.vezaDemo never appeared)")
                waiting = "for the switch to " + args.switch if not switched else "for enough playback"
                raise Failure(f"timed out after {args.timeout:.0f} s waiting {waiting} "
                              f"(state={status['state']}, currentTime={status['currentTime']})")
            if process.poll() is not None:
                raise Failure(f"Chromium exited with status {process.returncode}")
            status = evaluate(STATUS_EXPRESSION)
            if status:
                result.update({k: status[k] for k in ("currentTime", "rendition", "state", "error", "duration", "engine", "liveParts", "catchUps", "webrtc")})
                if status["error"] or status["state"] == "error":
                    raise Failure(f"page reported an error: {status['error']}")
                playing = status["state"] == "playing" and status["currentTime"] is not None
                if args.to_end:
                    if playing and not rate_set:
                        evaluate(f"window.vezaDemo.audio.playbackRate = {json.dumps(args.rate)}, true")
                        rate_set = True
                    if status["rendition"] and status["rendition"] not in seen:
                        seen.append(status["rendition"])
                    result["renditions"] = seen
                    if status["ended"]:
                        result["ok"] = True
                        return
                    wait(cdp, POLL_INTERVAL)
                    continue
                if playing and not switched:
                    if baseline is None:
                        baseline = status["currentTime"]
                    if not switch_requested and status["currentTime"] - baseline >= SWITCH_AFTER:
                        evaluate(f"window.vezaDemo.setRendition({json.dumps(args.switch)}), true")
                        switch_requested = True
                        result["switchRequestedAt"] = status["currentTime"]
                    if switch_requested and status["rendition"] == args.switch:
                        switched = True
                        baseline = status["currentTime"]
                        result["switchedAt"] = baseline
                elif playing:
                    if baseline is None:
                        baseline = status["currentTime"]
                    if args.switch is not None and status["rendition"] != args.switch:
                        raise Failure(f"rendition went back to {status['rendition']} after switching to {args.switch}")
                    if status["currentTime"] - baseline >= args.seconds:
                        result["ok"] = True
                        result["playedSeconds"] = round(status["currentTime"] - baseline, 3)
                        return
                if status["ended"]:
                    raise Failure("the track ended before enough playback was seen")
            wait(cdp, POLL_INTERVAL)


NATIVE_START = """(() => {
  const a = document.createElement("audio");
  a.muted = true;
  window.vezaNative = { audio: a, error: null, maxTime: 0 };
  a.addEventListener("error", () => {
    window.vezaNative.error = a.error ? `media error ${a.error.code}: ${a.error.message}` : "media error";
  });
  a.addEventListener("timeupdate", () => { window.vezaNative.maxTime = Math.max(window.vezaNative.maxTime, a.currentTime); });
  a.addEventListener("ratechange", () => {});
  a.src = %s;
  a.playbackRate = %s;
  document.body ? document.body.appendChild(a) : document.documentElement.appendChild(a);
  return a.play().then(() => true, (e) => { window.vezaNative.error = String(e); return false; });
})()"""

NATIVE_STATUS = """(() => {
  const n = window.vezaNative, a = n.audio;
  return { currentTime: a.currentTime, duration: a.duration, ended: a.ended, paused: a.paused,
           readyState: a.readyState, error: n.error, maxTime: n.maxTime, playbackRate: a.playbackRate };
})()"""


def run_native(args, result):
    """Chromium's own HLS player: <audio src=master.m3u8> played to its end. With --throttle-kbps
    the page's network is throttled for the first --throttle-seconds (DevTools network
    emulation), so the player's ABR starts low and must switch up once the link is free.
    Reports the renditions whose segments were fetched, in order of first request."""
    deadline = time.monotonic() + args.timeout
    fetched = []

    def on_network(method, params):
        if method == "Network.requestWillBeSent":
            url = params.get("request", {}).get("url", "")
            marker = "/cmaf/"
            if marker in url and "/seg-" in url:
                rendition = url.split(marker, 1)[1].split("/", 1)[0]
                if rendition not in fetched:
                    fetched.append(rendition)

    # Chromium refuses HLS in <audio> on about:blank ("no supported source"): the page is a
    # plain one of the playlist's own origin.
    home = urllib.parse.urljoin(args.native, "/healthz")
    with page(args, result, home, on_event_extra=on_network) as (cdp, session, evaluate, process):
        throttled_until = None
        if args.throttle_kbps:
            cdp.call("Network.emulateNetworkConditions", {
                "offline": False, "latency": 0, "uploadThroughput": -1,
                "downloadThroughput": args.throttle_kbps * 1000 / 8}, session=session)
            throttled_until = time.monotonic() + args.throttle_seconds
        if not evaluate(NATIVE_START % (json.dumps(args.native), json.dumps(args.rate))):
            raise Failure(f"play() was refused: {evaluate('window.vezaNative.error')}")
        status = None
        while True:
            now = time.monotonic()
            if throttled_until is not None and now >= throttled_until:
                cdp.call("Network.emulateNetworkConditions", {
                    "offline": False, "latency": 0, "uploadThroughput": -1, "downloadThroughput": -1}, session=session)
                throttled_until = None
                result["throttleLiftedAt"] = status["currentTime"] if status else None
            if now > deadline:
                raise Failure(f"timed out after {args.timeout:.0f} s before the end (status {status})")
            if process.poll() is not None:
                raise Failure(f"Chromium exited with status {process.returncode}")
            status = evaluate(NATIVE_STATUS)
            result.update({"currentTime": status["currentTime"], "duration": status["duration"],
                           "renditions": list(fetched)})
            if status["error"]:
                raise Failure(f"the player reported {status['error']}")
            if status["ended"]:
                result["ok"] = True
                return
            if args.live and status["currentTime"] and not status["paused"]:
                # A live stream never ends: --seconds of playback from the first position seen.
                start = result.setdefault("startTime", status["currentTime"])
                if status["currentTime"] - start >= args.seconds:
                    result["ok"] = True
                    return
            wait(cdp, POLL_INTERVAL)


def run_dashboard(args, result):
    """The listening dashboard: every chart drawn, the live count received, then a screenshot."""
    deadline = time.monotonic() + args.timeout
    with page(args, result, args.url) as (cdp, session, evaluate, process):
        cdp.call("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1100, "deviceScaleFactor": 1, "mobile": False},
                 session=session)
        while True:
            if time.monotonic() > deadline:
                raise Failure(f"timed out after {args.timeout:.0f} s: {result.get('dashboard')}")
            if process.poll() is not None:
                raise Failure(f"Chromium exited with status {process.returncode}")
            status = evaluate("window.vezaDashboard ? JSON.parse(JSON.stringify(window.vezaDashboard)) : null")
            result["dashboard"] = status
            if status and status.get("error"):
                raise Failure(f"the dashboard reported: {status['error']}")
            if status and status.get("ready") and status.get("charts", 0) >= args.min_charts and status.get("listenersNow") is not None:
                break
            wait(cdp, POLL_INTERVAL)
        shot = cdp.call("Page.captureScreenshot", {"format": "png"}, session=session, timeout=30)
        with open(args.dashboard, "wb") as out:
            out.write(base64.b64decode(shot["data"]))
        result["screenshot"] = args.dashboard
        result["ok"] = True


def main():
    parser = argparse.ArgumentParser(description="Check that the Veza demo page plays audio in headless Chromium.")
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=4.0, help="media seconds of playback to require (default 4)")
    parser.add_argument("--timeout", type=float, default=60.0, help="overall limit in seconds (default 60)")
    parser.add_argument("--switch", metavar="RENDITION", help="switch to this rendition after 1 s and keep playing it")
    parser.add_argument("--chromium", help="Chromium binary (default: $CHROMIUM, then chromium on PATH)")
    parser.add_argument("--native", action="store_true",
                        help="URL is an HLS playlist: play it in Chromium's own HLS player (<audio src>) to the end")
    parser.add_argument("--live", action="store_true", help="--native: a live stream; succeed after --seconds of playback")
    parser.add_argument("--rate", type=float, default=1.0, help="--native, --to-end: playbackRate (default 1)")
    parser.add_argument("--to-end", action="store_true",
                        help="demo page: play at --rate until the track ends (reports duration and the final currentTime)")
    parser.add_argument("--throttle-kbps", type=float, default=0,
                        help="--native: throttle the download to this many kbit/s at first (DevTools network emulation)")
    parser.add_argument("--throttle-seconds", type=float, default=5.0, help="--native: how long the throttle lasts")
    parser.add_argument("--dashboard", metavar="PNG",
                        help="URL is the listening dashboard: wait for its charts and live count, save a screenshot here")
    parser.add_argument("--min-charts", type=int, default=5, help="--dashboard: charts that must be drawn (default 5)")
    args = parser.parse_args()

    def terminate(signum, _frame):
        raise Terminated(f"terminated by signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, terminate)

    result = {"ok": False, "currentTime": None, "rendition": None, "state": None, "error": None, "consoleErrors": []}
    try:
        if args.dashboard:
            run_dashboard(args, result)
        elif args.native:
            args.native = args.url
            run_native(args, result)
        else:
            run(args, result)
    except (Failure, Terminated) as stopped:
        result["reason"] = str(stopped)
    except Exception as unexpected:  # report, never hang or leak a browser
        result["reason"] = f"{type(unexpected).__name__}: {unexpected}"
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
