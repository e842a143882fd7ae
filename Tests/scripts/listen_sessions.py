#!/usr/bin/env python3
"""Listeners with known behaviour against a host's HLS, for the listening-analytics tests.

Each listener plays one playback session the way a real-time player does: it fetches the
multivariant and media playlists and the init segment, then a burst of `--buffer` segments,
then the next segment each time its position has advanced by one more (so it stays `--buffer`
segments ahead), pausing and stopping as its behaviour says. Listeners with beacons also send
play/pause/resume/complete/skip events to POST /v1/events. The ground truth (media seconds
actually "heard" per listener, and its outcome) is printed as JSON lines.

Usage: listen_sessions.py PLAN.json   (a list of listeners:
  {"name", "master" (URL with ?token=), "behaviour": "complete"|"stop"|"bot", "stopAt": s,
   "pauseAt": s, "pauseFor": s, "beacons": bool, "userAgent": str, "forwardedFor": address sent as
   X-Forwarded-For, for a host that trusts this client as a proxy})
"""
import json
import sys
import threading
import time
import urllib.parse
import urllib.request

BUFFER = 3


FORWARDED = {}


def get(url, agent):
    request = urllib.request.Request(url, headers={"User-Agent": agent, **FORWARDED.get(agent, {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def media_playlist(master_url, agent):
    master = get(master_url, agent).decode()
    variant = next(line for line in master.splitlines() if line and not line.startswith("#"))
    url = urllib.parse.urljoin(master_url, variant)
    text = get(url, agent).decode()
    init, segments, duration = None, [], None
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            uri = line.split('URI="', 1)[1].split('"', 1)[0]
            init = urllib.parse.urljoin(url, uri)
        elif line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",", 1)[0])
        elif line and not line.startswith("#"):
            segments.append((urllib.parse.urljoin(url, line), duration))
    return init, segments


def beacon(master_url, agent, events):
    query = urllib.parse.urlparse(master_url).query
    base = master_url.split("/hls/", 1)[0]
    body = json.dumps({"events": events}).encode()
    request = urllib.request.Request(base + "/v1/events?" + query, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": agent, **FORWARDED.get(agent, {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def listen(plan, results):
    name = plan["name"]
    agent = plan.get("userAgent", f"VezaTestPlayer/1.0 (Mozilla/5.0; {name})")
    if plan.get("forwardedFor"):
        FORWARDED[agent] = {"X-Forwarded-For": plan["forwardedFor"]}
    if plan["behaviour"] == "bot":
        get(plan["master"], agent)
        media_playlist(plan["master"], agent)
        results[name] = {"name": name, "listened": 0, "outcome": "bot"}
        return
    init, segments = media_playlist(plan["master"], agent)
    total = sum(d for _, d in segments)
    stop_at = total if plan["behaviour"] == "complete" else min(plan["stopAt"], total)
    pause_at, pause_for = plan.get("pauseAt"), plan.get("pauseFor", 0)
    beacons = plan.get("beacons", False)
    counter = [0]

    def event(kind, position, **extra):
        if not beacons:
            return
        counter[0] += 1
        payload = {"id": f"{name}-{counter[0]}", "type": kind, "position": round(position, 3),
                   "clientTime": int(time.time() * 1000)}
        payload.update(extra)
        beacon(plan["master"], agent, [payload])

    get(init, agent)
    fetched = 0
    starts = []
    acc = 0.0
    for _, d in segments:
        starts.append(acc)
        acc += d
    while fetched < min(BUFFER, len(segments)):
        get(segments[fetched][0], agent)
        fetched += 1
    event("play", 0)
    position, last, paused = 0.0, time.monotonic(), False
    while position < stop_at:
        time.sleep(0.05)
        now = time.monotonic()
        position = min(stop_at, position + (now - last))
        last = now
        if pause_at is not None and not paused and position >= pause_at:
            paused = True
            event("pause", position)
            time.sleep(pause_for)
            last = time.monotonic()
            event("resume", position)
        # Stay BUFFER segments ahead of the segment being played.
        while fetched < len(segments) and position < stop_at and position >= starts[fetched - BUFFER + 1]:
            get(segments[fetched][0], agent)
            fetched += 1
    if plan["behaviour"] == "complete":
        event("complete", total)
        outcome = "completed"
    else:
        if plan.get("skipEvent"):
            event("skip", position)
        outcome = "skipped" if stop_at < plan.get("threshold", 30) else "abandoned"
    results[name] = {"name": name, "listened": round(stop_at, 3), "outcome": outcome, "segmentsFetched": fetched}


def main():
    plans = json.load(open(sys.argv[1]))
    results = {}
    threads = [threading.Thread(target=listen, args=(plan, results)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for plan in plans:
        print(json.dumps(results.get(plan["name"], {"name": plan["name"], "error": "did not finish"})))


if __name__ == "__main__":
    main()
