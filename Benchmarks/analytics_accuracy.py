#!/usr/bin/env python3
"""Listening analytics against the known truth (issue 24): what veza-loadgen's listeners did
(--truth, one JSON line per listener) against what the host reports (its analytics API, and
each session as its store keeps it: SQLite or ClickHouse).

Usage: analytics_accuracy.py --truth T.jsonl --plan PLAN.json --api BASE --token ADMIN
         (--sqlite CATALOG | --clickhouse URL --clickhouse-database DB)
         [--segment-seconds 6] [--threshold 30] [--label NAME] [--json OUT] [--markdown OUT]

PLAN.json: {"tracks": {id: seconds}, "listeners": [{"subject": s, "country": cc or null}, ...]}
(listener i is line i of the URLs the load generator played).

Definitions (the host's, applied to the truth):
- a session is one that played media (a listener whose every request failed is not one);
- completed: played to the end of the track; else skipped when it listened less than the play
  threshold, else abandoned; a play is a session that listened at least the threshold or completed;
- listening time: media seconds the playhead advanced while playing (no pause, stall, seek jump);
- peak concurrent listeners: per track and minute, the most sessions playing at one instant
  (sampled every 0.25 s); the run's peak is the largest of them;
- unique listeners: distinct token subjects.
Bounds checked: plays, skip rate, completion rate, peak listeners and listening time of the
sessions that sent beacons within 1 %; unique listeners within 3 of the sketch's stated standard
errors; each session without beacons within one segment of its true listening time; countries
exact. Exit status 1 when a bound does not hold.
"""
import argparse
import base64
import collections
import json
import math
import sqlite3
import sys
import urllib.request


def get_json(url, token=None, auth=None):
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", "Bearer " + token)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        return response.read().decode()


def host_sessions(args):
    """id -> (listened, outcome, play, country, beacons) for every session the store kept."""
    rows = {}
    if args.sqlite:
        db = sqlite3.connect(f"file:{args.sqlite}?mode=ro", uri=True)
        for row in db.execute("SELECT id, listened_seconds, outcome, play, country, beacons, track_id FROM listening_session"):
            rows[row[0]] = dict(listened=row[1], outcome=row[2], play=bool(row[3]), country=row[4], beacons=row[5], track=row[6])
    else:
        query = (f"SELECT id, listened_seconds, outcome, play, country, beacons, track FROM {args.clickhouse_database}.listening_session "
                 "FORMAT JSONEachRow")
        text = get_json(args.clickhouse.rstrip("/") + "/?query=" + urllib.parse.quote(query), auth=args.clickhouse_auth)
        for line in text.splitlines():
            row = json.loads(line)
            rows[row["id"]] = dict(listened=float(row["listened_seconds"]), outcome=row["outcome"], play=bool(int(row["play"])),
                                   country=row["country"] or None, beacons=int(row["beacons"]), track=row["track"])
    return rows


def truth_outcome(session, threshold):
    if session["completed"]:
        return "completed"
    return "skipped" if session["listenedSeconds"] < threshold else "abandoned"


def minute_peaks(sessions, step=0.25):
    """track -> {minute: most sessions playing at one instant}."""
    peaks = {}
    by_track = collections.defaultdict(list)
    for s in sessions:
        by_track[s["track"]].extend(s["playing"])
    for track, intervals in by_track.items():
        if not intervals:
            continue
        start = math.floor(min(a for a, _ in intervals))
        end = math.ceil(max(b for _, b in intervals))
        count = int((end - start) / step) + 2
        delta = [0] * (count + 1)
        for a, b in intervals:
            first = math.ceil((a - start) / step)
            last = math.floor((b - start) / step)
            if last >= first:
                delta[first] += 1
                delta[last + 1] -= 1
        running = 0
        per_minute = {}
        for i in range(count):
            running += delta[i]
            minute = int((start + i * step) // 60) * 60
            per_minute[minute] = max(per_minute.get(minute, 0), running)
        peaks[track] = per_minute
    return peaks


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--truth", required=True)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--sqlite")
    parser.add_argument("--clickhouse")
    parser.add_argument("--clickhouse-database", default="veza")
    parser.add_argument("--clickhouse-auth", default="veza:veza")
    parser.add_argument("--segment-seconds", type=float, default=6)
    parser.add_argument("--threshold", type=float, default=30)
    parser.add_argument("--label", default="")
    parser.add_argument("--json")
    parser.add_argument("--markdown")
    args = parser.parse_args()

    plan = json.load(open(args.plan))
    truth = [json.loads(line) for line in open(args.truth)]
    listeners = plan["listeners"]
    played = [s for s in truth if s["playing"]]
    problems = []
    cut = sum(1 for s in truth if s["cutShort"])
    failed = sum(1 for s in truth if s["failed"])
    if cut:
        problems.append(f"{cut} sessions were cut short by the end of the run (make it longer)")

    # The host's figures per track over the run, minute by minute.
    start = math.floor(min(a for s in played for a, _ in s["playing"]) / 3600) * 3600
    end = math.ceil(max(b for s in played for _, b in s["playing"]) / 60) * 60 + 600
    reports = {}
    for track in plan["tracks"]:
        text = get_json(f"{args.api}/v1/analytics/tracks/{track}?interval=minute&from={start}&to={end}", token=args.token)
        reports[track] = json.loads(text)

    rows = []

    def check(name, true_value, host_value, bound, ok, note=""):
        rows.append(dict(figure=name, truth=true_value, host=host_value, bound=bound, ok=bool(ok), note=note))
        if not ok:
            problems.append(f"{name}: truth {true_value}, host {host_value} ({bound})")

    def relative(a, b):
        return abs(b - a) / a if a else (0 if b == 0 else math.inf)

    # Counts, all tracks together and the worst track.
    totals = collections.Counter()
    host_totals = collections.Counter()
    worst = collections.defaultdict(float)
    peaks = minute_peaks(played)
    for track in plan["tracks"]:
        mine = [s for s in played if s["track"] == track]
        t = collections.Counter()
        t["sessions"] = len(mine)
        for s in mine:
            outcome = truth_outcome(s, args.threshold)
            t[outcome] += 1
            t["plays"] += 1 if (s["listenedSeconds"] >= args.threshold or s["completed"]) else 0
            t["listened"] += s["listenedSeconds"]
        t["unique"] = len({listeners[s["listener"]]["subject"] for s in mine})
        t["peak"] = max(peaks.get(track, {0: 0}).values())
        figures = reports[track]["totals"]
        h = collections.Counter(sessions=figures["sessions"], plays=figures["plays"], completed=figures["completions"],
                                skipped=figures["skips"], abandoned=figures["abandons"], listened=figures["listenedSeconds"],
                                unique=figures["uniqueListeners"], peak=figures["peakListeners"])
        for key in ["sessions", "plays", "completed", "skipped", "abandoned", "listened"]:
            totals[key] += t[key]
            host_totals[key] += h[key]
        for key in ["plays", "peak"]:
            worst[key] = max(worst[key], relative(t[key], h[key]))
        worst["skip rate"] = max(worst["skip rate"], relative(t["skipped"] / t["sessions"], h["skipped"] / max(1, h["sessions"])))
        worst["completion rate"] = max(worst["completion rate"], relative(t["completed"] / t["sessions"], h["completed"] / max(1, h["sessions"])))
        error = figures.get("uniqueListenersError", 0.0) or 0.0
        allowed = max(1, 3 * error * t["unique"])
        check(f"unique listeners, track {track}", t["unique"], h["unique"], f"±{allowed:.0f} (3 × {error:.4f})", abs(h["unique"] - t["unique"]) <= allowed)
        check(f"peak listeners, track {track}", t["peak"], h["peak"], "≤ 1 %", relative(t["peak"], h["peak"]) <= 0.01)

    check("sessions", totals["sessions"], host_totals["sessions"], "≤ 1 %", relative(totals["sessions"], host_totals["sessions"]) <= 0.01)
    check("plays", totals["plays"], host_totals["plays"], "≤ 1 %", relative(totals["plays"], host_totals["plays"]) <= 0.01,
          f"worst track {worst['plays'] * 100:.2f} %")
    skip_t = totals["skipped"] / totals["sessions"]
    skip_h = host_totals["skipped"] / max(1, host_totals["sessions"])
    check("skip rate", round(skip_t, 4), round(skip_h, 4), "≤ 1 % (relative)", relative(skip_t, skip_h) <= 0.01,
          f"worst track {worst['skip rate'] * 100:.2f} %")
    done_t = totals["completed"] / totals["sessions"]
    done_h = host_totals["completed"] / max(1, host_totals["sessions"])
    check("completion rate", round(done_t, 4), round(done_h, 4), "≤ 1 % (relative)", relative(done_t, done_h) <= 0.01,
          f"worst track {worst['completion rate'] * 100:.2f} %")
    check("abandons", totals["abandoned"], host_totals["abandoned"], "(reported)", True)
    check("listening time, all (s)", round(totals["listened"]), round(host_totals["listened"]), "(reported)", True,
          f"{relative(totals['listened'], host_totals['listened']) * 100:.2f} %")

    # Session by session, from the store.
    stored = host_sessions(args)
    missing = [s for s in played if s["session"] not in stored]
    check("sessions found in the store", len(played), len(played) - len(missing), "all", not missing)
    beacon_truth = beacon_host = 0.0
    errors = []
    outside = collections.Counter()
    confusion = collections.Counter()
    for s in played:
        row = stored.get(s["session"])
        if not row:
            continue
        confusion[(truth_outcome(s, args.threshold), row["outcome"])] += 1
        if s["beacons"]:
            beacon_truth += s["listenedSeconds"]
            beacon_host += row["listened"]
        else:
            errors.append(row["listened"] - s["listenedSeconds"])
            if abs(errors[-1]) > args.segment_seconds:
                outside[s["behaviour"]] += 1
    check("listening time, sessions with beacons (s)", round(beacon_truth), round(beacon_host), "≤ 1 %",
          relative(beacon_truth, beacon_host) <= 0.01, f"{relative(beacon_truth, beacon_host) * 100:.3f} %")
    if errors:
        within = sum(1 for e in errors if abs(e) <= args.segment_seconds)
        errors.sort(key=abs)
        p99 = abs(errors[int(0.99 * (len(errors) - 1))])
        check("listening time, sessions without beacons: within one segment", len(errors), within,
              f"all (|error| ≤ {args.segment_seconds:g} s)", within == len(errors),
              f"mean {sum(errors) / len(errors):+.2f} s, p99 {p99:.2f} s, max {abs(errors[-1]):.2f} s"
              + (f"; outside, by behaviour: {dict(sorted(outside.items()))}" if outside else ""))

    # Countries: each session's, from its address (the plan), against the host's breakdown.
    country_truth = collections.Counter(listeners[s["listener"]]["country"] or "unknown" for s in played)
    country_host = collections.Counter()
    for report in reports.values():
        for entry in report.get("countries", []):
            country_host[entry["value"]] += entry["sessions"]
    check("countries (sessions per country)", dict(sorted(country_truth.items())), dict(sorted(country_host.items())), "exact",
          country_truth == country_host)

    summary = dict(label=args.label, sessions=len(truth), played=len(played), failed=failed, cutShort=cut, rows=rows,
                   confusion={f"{a}->{b}": n for (a, b), n in sorted(confusion.items())}, problems=problems)
    lines = [f"| {r['figure']} | {r['truth']} | {r['host']} | {r['bound']} | {'yes' if r['ok'] else '**no**'} | {r['note']} |" for r in rows]
    markdown = "\n".join([f"{args.label}: {len(played)} sessions played ({failed} failed, {cut} cut short)", "",
                          "| figure | truth | host | bound | holds | note |", "| --- | --- | --- | --- | --- | --- |"] + lines
                         + ["", "outcomes (truth -> host): " + ", ".join(f"{k} {v}" for k, v in summary["confusion"].items())])
    print(markdown)
    if args.json:
        json.dump(summary, open(args.json, "w"), indent=2, default=str)
    if args.markdown:
        open(args.markdown, "w").write(markdown + "\n")
    if problems:
        print("\n".join(["", "bounds that do not hold:"] + problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
