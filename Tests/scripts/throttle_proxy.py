#!/usr/bin/env python3
"""Runs a player through a TCP proxy whose downstream bandwidth is throttled for a while, so
that the player's adaptive bitrate logic has to switch variants.

Usage: throttle_proxy.py --target HOST:PORT [--kbps 160] [--seconds 12] -- COMMAND ARG...

Listens on 127.0.0.1 (a free port), forwards every connection to --target, and limits the bytes
flowing back to the clients (all connections together) to --kbps kilobits per second for the
first --seconds after the first connection; unlimited afterwards. Every `{proxy}` in the
command's arguments becomes `http://127.0.0.1:PORT`. Requests are read as they pass (HTTP/1.1
request lines), so the proxy knows which CMAF renditions' segments the player fetched.

Prints the command's own output, then one JSON line {exit, requests, renditions, switches}:
`renditions` in order of first segment request, `switches` the number of times consecutive
segment requests changed rendition. Exits with the command's status. Standard library only.
"""

import argparse
import json
import re
import socket
import subprocess
import sys
import threading
import time

REQUEST_LINE = re.compile(rb"(?:GET|HEAD) (\S+) HTTP/1\.[01]\r\n")
SEGMENT = re.compile(r"/cmaf/([^/]+)/seg-(\d+)\.m4s")


class Throttle:
    """One token bucket shared by every connection's downstream, in force until `until`."""

    def __init__(self, bytes_per_second, seconds):
        self.rate = bytes_per_second
        self.seconds = seconds
        self.until = None
        self.allowance = 0.0
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            if self.until is None:
                self.until = time.monotonic() + self.seconds
                self.last = time.monotonic()

    def take(self, count):
        """Blocks until `count` bytes may pass."""
        while True:
            with self.lock:
                now = time.monotonic()
                if self.rate <= 0 or self.until is None or now >= self.until:
                    return
                self.allowance = min(self.rate * 0.25, self.allowance + (now - self.last) * self.rate)
                self.last = now
                if self.allowance >= count:
                    self.allowance -= count
                    return
                wait = (count - self.allowance) / self.rate
            time.sleep(min(wait, 0.05))


def pump(source, sink, throttle=None, on_data=None):
    try:
        while True:
            data = source.recv(4096 if throttle else 65536)
            if not data:
                break
            if on_data:
                on_data(data)
            if throttle:
                throttle.take(len(data))
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (sink, source):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the server")
    parser.add_argument("--kbps", type=float, default=160, help="downstream limit while throttled (kbit/s)")
    parser.add_argument("--seconds", type=float, default=12, help="how long the limit lasts")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    host, port = args.target.rsplit(":", 1)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"
    throttle = Throttle(args.kbps * 1000 / 8, args.seconds)
    paths, lock = [], threading.Lock()

    def serve():
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            throttle.start()
            upstream = socket.create_connection((host, int(port)))
            pending = bytearray()

            def on_request_bytes(data, pending=pending):
                pending.extend(data)
                for match in REQUEST_LINE.finditer(pending):
                    with lock:
                        paths.append(match.group(1).decode("latin-1"))
                cut = pending.rfind(b"\r\n")
                del pending[: cut + 2 if cut >= 0 else 0]

            threading.Thread(target=pump, args=(client, upstream, None, on_request_bytes), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client, throttle), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    completed = subprocess.run([part.replace("{proxy}", base) for part in command])
    listener.close()

    renditions, switches, previous = [], 0, None
    with lock:
        for path in paths:
            match = SEGMENT.search(path)
            if not match:
                continue
            rendition = match.group(1)
            if rendition not in renditions:
                renditions.append(rendition)
            if previous is not None and rendition != previous:
                switches += 1
            previous = rendition
        summary = {"exit": completed.returncode, "requests": len(paths), "renditions": renditions, "switches": switches}
    print(json.dumps(summary), flush=True)
    sys.exit(completed.returncode)


if __name__ == "__main__":
    main()
