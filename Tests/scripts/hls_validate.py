#!/usr/bin/env python3
"""Validates an HLS presentation as served: a multivariant playlist, every media playlist it
names, and every init and media segment they name.

Usage: hls_validate.py MASTER_URL [--duration SECONDS] [--tolerance 0.05]

Each playlist is first parsed by the third-party `m3u8` package in strict mode (its RFC 8216
EXT-X-VERSION compatibility rules, malformed EXTINF and unknown lines are errors), then held to
these RFC 8216 / rfc8216bis rules, each named in the output when it fails:

  master.first-line        the playlist starts with #EXTM3U (§4.3.1.1)
  master.has-variants      at least one EXT-X-STREAM-INF, each followed by a URI (§4.3.4.2)
  master.bandwidth         every variant has BANDWIDTH; AVERAGE-BANDWIDTH <= BANDWIDTH (§4.3.4.2)
  master.codecs            every variant has CODECS (§4.3.4.2: SHOULD; players need it for audio)
  master.one-codec         all variants carry the same CODECS: a player can switch between any two
  master.media-groups      an AUDIO attribute names an EXT-X-MEDIA group that exists (§4.3.4.2)
  media.first-line         the playlist starts with #EXTM3U
  media.target-duration    EXT-X-TARGETDURATION present; every EXTINF rounded to the nearest
                           integer is <= it (§4.3.3.1)
  media.version            EXT-X-VERSION >= 6 when EXT-X-MAP is used (§4.3.2.5, §7)
  media.map                an EXT-X-MAP precedes the first segment (fMP4, §3.3)
  media.vod                EXT-X-PLAYLIST-TYPE:VOD and EXT-X-ENDLIST (a VOD presentation)
  media.objects            the init segment and every media segment answer 200 with a body
  media.bandwidth          the variant's BANDWIDTH >= the measured average bit rate of its
                           segments; AVERAGE-BANDWIDTH within 2 % of it (§4.3.4.2)
  media.duration           the EXTINF sum equals --duration within --tolerance
  set.aligned              every variant has the same segment count and EXTINF durations
                           (segment boundaries aligned across the switching set)

Prints one JSON line {ok, checked, errors, variants}; exits 0 only when ok. Standard library
plus `m3u8`.
"""

import argparse
import json
import sys
import urllib.parse
import urllib.request

import m3u8

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url, method="GET"):
    request = urllib.request.Request(url, method=method)
    with OPENER.open(request, timeout=30) as response:
        return response.status, response.read() if method == "GET" else b"", response.headers


def attributes(text):
    """EXT-X-STREAM-INF / EXT-X-MEDIA attributes (quoted strings may hold commas)."""
    out, key, value, quoted, reading_key = {}, "", "", False, True
    for ch in text + ",":
        if reading_key:
            if ch == "=":
                reading_key = False
            elif ch != ",":
                key += ch
        elif ch == '"':
            quoted = not quoted
            value += ch
        elif ch == "," and not quoted:
            out[key.strip()] = value.strip('"')
            key, value, reading_key = "", "", True
        else:
            value += ch
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--duration", type=float)
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()

    errors, checked, variants = [], set(), []

    def check(rule, condition, message):
        checked.add(rule)
        if not condition:
            errors.append(f"{rule}: {message}")
        return condition

    def strict_parse(url, text):
        checked.add("m3u8.strict")
        try:
            return m3u8.parse(text, strict=True)
        except Exception as error:  # the package raises ParseError or a list of version errors
            errors.append(f"m3u8.strict: {url}: {error}")
            return None

    status, body, _ = fetch(args.url)
    master_text = body.decode("utf-8")
    check("master.first-line", master_text.startswith("#EXTM3U"), "no #EXTM3U")
    strict_parse("master", master_text)
    lines = [line.strip() for line in master_text.splitlines() if line.strip()]
    groups = {attributes(l[len("#EXT-X-MEDIA:"):]).get("GROUP-ID") for l in lines if l.startswith("#EXT-X-MEDIA:")}
    for index, line in enumerate(lines):
        if not line.startswith("#EXT-X-STREAM-INF:"):
            continue
        attrs = attributes(line[len("#EXT-X-STREAM-INF:"):])
        uri = lines[index + 1] if index + 1 < len(lines) and not lines[index + 1].startswith("#") else None
        if not check("master.has-variants", uri is not None, f"{line} has no URI"):
            continue
        bandwidth = int(attrs.get("BANDWIDTH", "0") or 0)
        average = int(attrs["AVERAGE-BANDWIDTH"]) if "AVERAGE-BANDWIDTH" in attrs else None
        check("master.bandwidth", bandwidth > 0 and (average is None or average <= bandwidth), line)
        check("master.codecs", bool(attrs.get("CODECS")), f"{uri}: no CODECS")
        if "AUDIO" in attrs:
            check("master.media-groups", attrs["AUDIO"] in groups, f"{uri}: AUDIO group {attrs['AUDIO']} not declared")
        variants.append({"uri": urllib.parse.urljoin(args.url, uri), "bandwidth": bandwidth, "average": average,
                         "codecs": attrs.get("CODECS")})
    check("master.has-variants", bool(variants), "no EXT-X-STREAM-INF")
    check("master.one-codec", len({v["codecs"] for v in variants}) <= 1,
          f"variants mix codecs {sorted({v['codecs'] or '' for v in variants})}")

    timelines = []
    for variant in variants:
        url = variant["uri"]
        name = urllib.parse.urlparse(url).path.rsplit("/", 1)[-1]
        _, body, _ = fetch(url)
        text = body.decode("utf-8")
        check("media.first-line", text.startswith("#EXTM3U"), f"{name}: no #EXTM3U")
        playlist = strict_parse(name, text)
        if playlist is None:
            continue
        target = playlist.get("targetduration")
        durations = [segment["duration"] for segment in playlist["segments"]]
        if check("media.target-duration", target is not None, f"{name}: no EXT-X-TARGETDURATION"):
            longest = max(durations, default=0)
            check("media.target-duration", int(longest + 0.5) <= target, f"{name}: EXTINF {longest} > target {target}")
        maps = playlist.get("segment_map") or []
        check("media.map", bool(maps) and "#EXT-X-MAP:" in text.split("#EXTINF:", 1)[0], f"{name}: no EXT-X-MAP before the first segment")
        check("media.version", not maps or (playlist.get("version") or 1) >= 6, f"{name}: EXT-X-MAP with EXT-X-VERSION {playlist.get('version')}")
        check("media.vod", playlist.get("playlist_type") == "vod" and playlist.get("is_endlist"), f"{name}: not a complete VOD playlist")
        total_bytes = 0
        objects = [urllib.parse.urljoin(url, m["uri"]) for m in maps[:1]] + \
                  [urllib.parse.urljoin(url, s["uri"]) for s in playlist["segments"]]
        for index, object_url in enumerate(objects):
            try:
                status, data, _ = fetch(object_url)
            except Exception as error:
                status, data = str(error), b""
            short = urllib.parse.urlparse(object_url).path.rsplit("/", 2)[-2:]
            check("media.objects", status == 200 and len(data) > 0, f"{'/'.join(short)}: status {status}, {len(data)} bytes")
            if index >= len(maps[:1]):
                total_bytes += len(data)
        seconds = sum(durations)
        if seconds > 0:
            measured = total_bytes * 8 / seconds
            check("media.bandwidth", variant["bandwidth"] >= measured * 0.999,
                  f"{name}: BANDWIDTH {variant['bandwidth']} < measured average {measured:.0f}")
            if variant["average"] is not None:
                check("media.bandwidth", abs(variant["average"] - measured) <= measured * 0.02,
                      f"{name}: AVERAGE-BANDWIDTH {variant['average']} vs measured {measured:.0f}")
        if args.duration is not None:
            check("media.duration", abs(seconds - args.duration) <= args.tolerance,
                  f"{name}: EXTINF sum {seconds:.3f} s, expected {args.duration:.3f} s")
        variant.update({"segments": len(durations), "seconds": round(seconds, 3), "measuredBitrate": round(measured) if seconds else 0})
        timelines.append((name, durations))
    for name, durations in timelines[1:]:
        check("set.aligned", durations == timelines[0][1], f"{name}'s segments differ from {timelines[0][0]}'s")

    result = {"ok": not errors, "checked": sorted(checked), "errors": errors, "variants": variants}
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
