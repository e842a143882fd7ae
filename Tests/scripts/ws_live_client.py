#!/usr/bin/env python3
"""WebSocket live-stream test client (CMAF over WebSocket).

Usage:
  ws_live_client.py ws://HOST:PORT/ws/live/{mount}?rung=R[&token=T]
                    [--token T] [--seconds N] [--json] [--out FILE]

Protocol (server side):
  1. a TEXT message with JSON, e.g. {"mount": ..., "rung": ...,
     "mimeType": "audio/mp4; codecs=\\"mp4a.40.2\\"", "timescale": 48000,
     "partSeconds": 0.32}
  2. a BINARY message: the CMAF init segment (ftyp + moov)
  3. BINARY messages, one CMAF part each: optional styp/prft/emsg boxes, then
     moof + mdat.

Checks: the init has ftyp and moov; every part has moof (mfhd, traf with tfhd,
tfdt and trun) followed by mdat; a part's duration comes from the trun sample
durations, else tfhd default_sample_duration, else the trex in moov/mvex;
tfdt(n) == tfdt(n-1) + duration(n-1) (gaps and overlaps are reported); mfhd
sequence numbers increase; the mdat holds the trun's sample sizes.

Prints one JSON object: {"messages", "parts", "gaps", "seconds_of_media",
"first_part_s", "init_bytes", "mime", ...}. --out FILE writes init + parts
concatenated (ffprobe FILE should decode it).

Exit codes: 0 success; 1 a check failed (gaps, bad boxes, early close);
2 connection/handshake error (a refused upgrade prints its HTTP status and
body); 3 no part arrived in time.

Needs: pip install websockets (>= 13, for websockets.asyncio).
"""

import argparse
import asyncio
import json
import struct
import sys
import time
import urllib.parse

from client_report import emit

try:
    import websockets
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
except ImportError as exc:  # pragma: no cover
    print(f"ws_live_client: the websockets package (>= 13) is missing ({exc}); "
          "run: python3 -m pip install websockets", file=sys.stderr)
    sys.exit(2)


class BoxError(ValueError):
    pass


# ---------------------------------------------------------------- ISO BMFF

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf",
              b"edts", b"dinf", b"udta"}


def iter_boxes(data, start=0, end=None):
    """Yields (type, payload_start, box_end, header_size) for boxes in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if end - pos < 8:
            raise BoxError(f"{end - pos} trailing byte(s) at offset {pos}, too short for a box")
        size, btype = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise BoxError(f"truncated largesize box at offset {pos}")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise BoxError(f"box {btype!r} at offset {pos} has size {size}, "
                           f"only {end - pos} byte(s) left")
        yield btype, pos + header, pos + size, header
        pos += size


def children(data, start, end):
    return [(t, s, e) for t, s, e, _ in iter_boxes(data, start, end)]


def find(data, start, end, btype):
    for t, s, e in children(data, start, end):
        if t == btype:
            return s, e
    return None


def find_all(data, start, end, btype):
    return [(s, e) for t, s, e in children(data, start, end) if t == btype]


def full_box(data, s):
    version = data[s]
    flags = int.from_bytes(data[s + 1:s + 4], "big")
    return version, flags, s + 4


def parse_init(data):
    """Returns {'tracks': {track_id: {...}}, 'trex': {track_id: {...}}, 'boxes': [...]}."""
    top = children(data, 0, len(data))
    types = [t.decode("latin-1") for t, _, _ in top]
    if b"ftyp" not in [t for t, _, _ in top]:
        raise BoxError(f"init segment has no ftyp (top-level boxes: {types})")
    moov = find(data, 0, len(data), b"moov")
    if moov is None:
        raise BoxError(f"init segment has no moov (top-level boxes: {types})")
    info = {"boxes": types, "tracks": {}, "trex": {}}
    ftyp = find(data, 0, len(data), b"ftyp")
    info["major_brand"] = data[ftyp[0]:ftyp[0] + 4].decode("latin-1")
    info["compatible_brands"] = [data[i:i + 4].decode("latin-1")
                                 for i in range(ftyp[0] + 8, ftyp[1] - 3, 4)]
    for ts, te in find_all(data, *moov, b"trak"):
        tkhd = find(data, ts, te, b"tkhd")
        track_id = None
        if tkhd:
            v, _, p = full_box(data, tkhd[0])
            track_id = struct.unpack_from(">I", data, p + (16 if v == 1 else 8))[0]
        track = {}
        mdia = find(data, ts, te, b"mdia")
        if mdia:
            mdhd = find(data, *mdia, b"mdhd")
            if mdhd:
                v, _, p = full_box(data, mdhd[0])
                track["timescale"] = struct.unpack_from(">I", data, p + (16 if v == 1 else 8))[0]
            hdlr = find(data, *mdia, b"hdlr")
            if hdlr:
                track["handler"] = data[hdlr[0] + 8:hdlr[0] + 12].decode("latin-1")
        info["tracks"][track_id] = track
    mvex = find(data, *moov, b"mvex")
    if mvex is None:
        raise BoxError("init segment's moov has no mvex (not a fragmented MP4)")
    for s, _ in find_all(data, *mvex, b"trex"):
        _, _, p = full_box(data, s)
        tid, sdi, dur, size, flags = struct.unpack_from(">IIIII", data, p)
        info["trex"][tid] = {"default_sample_duration": dur, "default_sample_size": size}
    return info


def parse_part(data, init):
    """Parses one CMAF part. Returns a dict with seq, track_id, tfdt, duration, samples..."""
    top = children(data, 0, len(data))
    types = [t.decode("latin-1") for t, _, _ in top]
    moofs = [(s, e, i) for i, (t, s, e) in enumerate(top) if t == b"moof"]
    if not moofs:
        raise BoxError(f"part has no moof (boxes: {types})")
    if len(moofs) > 1:
        raise BoxError(f"part has {len(moofs)} moof boxes (boxes: {types}); expected one")
    ms, me, mi = moofs[0]
    moof_start = ms - 8  # header size of moof (never largesize in practice)
    for t, _, _ in top[:mi]:
        if t not in (b"emsg", b"styp", b"prft", b"sidx"):
            raise BoxError(f"unexpected box {t!r} before moof (boxes: {types})")
    mdats = [(s, e) for t, s, e in top[mi + 1:] if t == b"mdat"]
    if not mdats:
        raise BoxError(f"part has no mdat after moof (boxes: {types})")
    mfhd = find(data, ms, me, b"mfhd")
    if mfhd is None:
        raise BoxError("moof has no mfhd")
    _, _, p = full_box(data, mfhd[0])
    seq = struct.unpack_from(">I", data, p)[0]
    trafs = find_all(data, ms, me, b"traf")
    if not trafs:
        raise BoxError("moof has no traf")
    ts, te = trafs[0]
    tfhd = find(data, ts, te, b"tfhd")
    if tfhd is None:
        raise BoxError("traf has no tfhd")
    _, tf_flags, p = full_box(data, tfhd[0])
    track_id = struct.unpack_from(">I", data, p)[0]
    p += 4
    default_dur = default_size = None
    if tf_flags & 0x01:
        p += 8  # base_data_offset
    if tf_flags & 0x02:
        p += 4  # sample_description_index
    if tf_flags & 0x08:
        default_dur = struct.unpack_from(">I", data, p)[0]
        p += 4
    if tf_flags & 0x10:
        default_size = struct.unpack_from(">I", data, p)[0]
        p += 4
    trex = init["trex"].get(track_id) or {}
    if default_dur is None:
        default_dur = trex.get("default_sample_duration")
    if default_size is None:
        default_size = trex.get("default_sample_size")
    tfdt = find(data, ts, te, b"tfdt")
    if tfdt is None:
        raise BoxError("traf has no tfdt")
    v, _, p = full_box(data, tfdt[0])
    base = struct.unpack_from(">Q" if v == 1 else ">I", data, p)[0]
    truns = find_all(data, ts, te, b"trun")
    if not truns:
        raise BoxError("traf has no trun")
    samples = duration = total_size = 0
    sizes_known = True
    data_offset = None
    for rs, _ in truns:
        _, fl, p = full_box(data, rs)
        count = struct.unpack_from(">I", data, p)[0]
        p += 4
        if fl & 0x01:
            off = struct.unpack_from(">i", data, p)[0]
            data_offset = off if data_offset is None else data_offset
            p += 4
        if fl & 0x04:
            p += 4
        for _ in range(count):
            if fl & 0x100:
                duration += struct.unpack_from(">I", data, p)[0]
                p += 4
            elif default_dur is not None:
                duration += default_dur
            else:
                raise BoxError("no sample duration in trun, tfhd or trex")
            if fl & 0x200:
                total_size += struct.unpack_from(">I", data, p)[0]
                p += 4
            elif default_size:
                total_size += default_size
            else:
                sizes_known = False
            if fl & 0x400:
                p += 4
            if fl & 0x800:
                p += 4
        samples += count
    mdat_payload = sum(e - s for s, e in mdats)
    problems = []
    if duration == 0:
        problems.append(f"part has zero duration ({samples} samples; no duration in "
                        "trun, tfhd or trex?)")
    if sizes_known and total_size != mdat_payload and len(trafs) == 1:
        problems.append(f"mdat holds {mdat_payload} bytes, trun sample sizes add up to {total_size}")
    if data_offset is not None and len(trafs) == 1:
        # with default-base-is-moof (or no base_data_offset) offsets are from the moof start
        first_mdat_payload = mdats[0][0]
        if not (tf_flags & 0x01) and moof_start + data_offset != first_mdat_payload:
            problems.append(f"trun data_offset {data_offset} points at byte "
                            f"{moof_start + data_offset}, mdat payload starts at {first_mdat_payload}")
    return {"seq": seq, "track_id": track_id, "tfdt": base, "tfdt_version": v,
            "duration": duration, "samples": samples, "bytes": len(data),
            "emsg": sum(1 for t, _, _ in top[:mi] if t == b"emsg"),
            "boxes": types, "problems": problems}


# ---------------------------------------------------------------- checker

class StreamChecker:
    def __init__(self):
        self.header = None
        self.init = None
        self.init_bytes = 0
        self.parts = []
        self.gaps = []
        self.overlaps = []
        self.seq_errors = []
        self.seq_skips = 0
        self.problems = []
        self.emsg = 0
        self.text_messages = 0
        self.expected_tfdt = None
        self.last_seq = None
        self.timescale = None

    def on_init(self, data):
        self.init = parse_init(data)
        self.init_bytes = len(data)
        scales = [t.get("timescale") for t in self.init["tracks"].values() if t.get("timescale")]
        if scales:
            self.timescale = scales[0]
        hdr_ts = (self.header or {}).get("timescale")
        if hdr_ts and self.timescale and hdr_ts != self.timescale:
            self.problems.append(f"header timescale {hdr_ts} != mdhd timescale {self.timescale}")
        if not self.timescale:
            self.timescale = hdr_ts or 48000

    def on_part(self, data, elapsed):
        index = len(self.parts)
        part = parse_part(data, self.init)
        part["at_s"] = round(elapsed, 3)
        self.emsg += part["emsg"]
        for pr in part["problems"]:
            self.problems.append(f"part {index} (seq {part['seq']}): {pr}")
        if self.last_seq is not None:
            if part["seq"] <= self.last_seq:
                self.seq_errors.append({"part": index, "prev_seq": self.last_seq,
                                        "seq": part["seq"]})
            elif part["seq"] != self.last_seq + 1:
                self.seq_skips += 1
        self.last_seq = part["seq"]
        if self.expected_tfdt is not None and part["tfdt"] != self.expected_tfdt:
            delta = part["tfdt"] - self.expected_tfdt
            entry = {"part": index, "seq": part["seq"], "at_s": part["at_s"],
                     "expected_tfdt": self.expected_tfdt, "tfdt": part["tfdt"],
                     "delta": delta, "delta_s": round(delta / self.timescale, 6)}
            (self.gaps if delta > 0 else self.overlaps).append(entry)
        self.expected_tfdt = part["tfdt"] + part["duration"]
        self.parts.append(part)

    def summary(self):
        durs = [p["duration"] / self.timescale for p in self.parts] if self.timescale else []
        return {
            "parts": len(self.parts),
            "gaps": len(self.gaps),
            "overlaps": len(self.overlaps),
            "seconds_of_media": round(sum(durs), 6),
            "gap_details": (self.gaps + self.overlaps)[:20],
            "sequence_errors": len(self.seq_errors),
            "sequence_error_details": self.seq_errors[:20],
            "sequence_skips": self.seq_skips,
            "part_seconds_min": round(min(durs), 6) if durs else None,
            "part_seconds_max": round(max(durs), 6) if durs else None,
            "first_tfdt": self.parts[0]["tfdt"] if self.parts else None,
            "first_seq": self.parts[0]["seq"] if self.parts else None,
            "timescale": self.timescale,
            "emsg_boxes": self.emsg,
            "box_problems": self.problems[:20],
        }


# ---------------------------------------------------------------- client

def with_token(url, token):
    if not token:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not any(k == "token" for k, _ in query):
        query.append(("token", token))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def run(args):
    url = with_token(args.url, args.token)
    result = {"status": "error", "url": url, "messages": 0, "parts": 0, "gaps": 0,
              "seconds_of_media": 0.0, "first_part_s": None, "init_bytes": 0, "mime": None}
    checker = StreamChecker()
    out = open(args.out, "wb") if args.out else None
    t0 = time.monotonic()
    code = 0
    failures = []
    try:
        try:
            ws = await connect(url, max_size=None, open_timeout=args.connect_timeout,
                               proxy=None, compression=None if args.no_compression else "deflate")
        except InvalidStatus as exc:
            resp = exc.response
            body = (resp.body or b"").decode("utf-8", "replace").strip()
            result.update(status="http-error", http_status=resp.status_code, http_body=body,
                          error=f"WebSocket upgrade refused: HTTP {resp.status_code} "
                                f"{resp.reason_phrase}: {body}")
            return result, 2
        except (InvalidHandshake, OSError, asyncio.TimeoutError) as exc:
            result.update(status="connect-error",
                          error=f"cannot open {url}: {type(exc).__name__}: {exc}")
            return result, 2
        result["connect_s"] = round(time.monotonic() - t0, 3)
        messages = 0
        first_part_at = None
        closed = None
        try:
            async with ws:
                while True:
                    now = time.monotonic()
                    if first_part_at is None:
                        # header, init and the first part must all come within the timeout
                        left = t0 + args.connect_timeout - now
                    else:
                        left = first_part_at + args.seconds - now
                    if left <= 0:
                        break
                    try:
                        msg = await asyncio.wait_for(ws.recv(), timeout=left)
                    except asyncio.TimeoutError:
                        break
                    messages += 1
                    elapsed = time.monotonic() - t0
                    if isinstance(msg, str):
                        if checker.header is None and messages == 1:
                            try:
                                checker.header = json.loads(msg)
                            except ValueError:
                                failures.append(f"first message is not JSON: {msg[:200]!r}")
                                break
                            result["header"] = checker.header
                            result["mime"] = checker.header.get("mimeType")
                        else:
                            checker.text_messages += 1
                            result.setdefault("later_text_messages", []).append(msg[:500])
                        continue
                    if checker.header is None:
                        failures.append("first message is binary, expected a JSON text header")
                        break
                    if checker.init is None:
                        try:
                            checker.on_init(msg)
                        except (BoxError, struct.error) as exc:
                            failures.append(f"bad init segment ({len(msg)} bytes): {exc}")
                            break
                        if out:
                            out.write(msg)
                        continue
                    try:
                        checker.on_part(msg, elapsed)
                    except (BoxError, struct.error) as exc:
                        failures.append(f"bad part #{len(checker.parts)} ({len(msg)} bytes): {exc}")
                        break
                    if out:
                        out.write(msg)
                    if first_part_at is None:
                        first_part_at = time.monotonic()
                        result["first_part_s"] = round(first_part_at - t0, 3)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            closed = {"code": rcvd.code if rcvd else None,
                      "reason": rcvd.reason if rcvd else None,
                      "at_s": round(time.monotonic() - t0, 3)}
            result["closed_by_server"] = closed
        result["messages"] = messages
        result["init_bytes"] = checker.init_bytes
        if checker.init:
            result["init"] = {k: checker.init[k] for k in ("boxes", "major_brand",
                                                          "compatible_brands")}
        result.update(checker.summary())
        result["text_messages_after_header"] = checker.text_messages

        if checker.header is None and not failures:
            failures.append("no JSON header message received")
        elif checker.init is None and not failures:
            failures.append("no init segment received")
        if not checker.parts and not failures:
            result.update(status="no-media", error=f"no part within {args.connect_timeout}s")
            code = 3
        if closed is not None:
            failures.append(f"server closed the connection after {closed['at_s']}s "
                            f"(code {closed['code']}, reason {closed['reason']!r})")
        if len(checker.gaps) + len(checker.overlaps) > args.max_gaps:
            failures.append(f"{len(checker.gaps)} gap(s) and {len(checker.overlaps)} overlap(s) "
                            f"in tfdt (max {args.max_gaps})")
        if checker.seq_errors:
            failures.append(f"{len(checker.seq_errors)} non-increasing mfhd sequence number(s)")
        if checker.problems:
            failures.extend(checker.problems[:5])
        result["failures"] = failures
        if code == 0:
            result["status"] = "fail" if failures else "ok"
            code = 1 if failures else 0
        elif failures:
            result["error"] = result.get("error", "") + "; " + "; ".join(failures)
        return result, code
    finally:
        if out:
            out.close()


def main(argv=None):
    p = argparse.ArgumentParser(description="CMAF-over-WebSocket live test client")
    p.add_argument("url", help="ws://HOST:PORT/ws/live/{mount}?rung=R[&token=T]")
    p.add_argument("--token", help="add token=T to the query (unless it has one)")
    p.add_argument("--seconds", type=float, default=5.0,
                   help="seconds to receive after the first part (default 5)")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for the handshake and the first part (default 10)")
    p.add_argument("--max-gaps", type=int, default=0,
                   help="tfdt gaps/overlaps allowed before failing (default 0)")
    p.add_argument("--out", help="write init + parts concatenated to this file")
    p.add_argument("--no-compression", action="store_true",
                   help="do not offer permessage-deflate")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    args = p.parse_args(argv)

    result, code = asyncio.run(run(args))
    return emit("ws_live_client", result, code, args.json)


if __name__ == "__main__":
    sys.exit(main())
