#!/usr/bin/env python3
"""Live benchmarks (issue 21), driven by Benchmarks/live.sh.

    live_bench.py latency SOURCE.mp3 MARKERS.json VEZA_BASE ICECAST_BASE SECONDS
    live_bench.py cost SOURCE.mp3 VEZA_BASE HOST_PID MOUNTS SECONDS
    live_bench.py source SOURCE.mp3 SECONDS BASE PATH PASSWORD [BASE PATH PASSWORD …]

latency: one paced source (this process) sends the same MP3 bytes, in real time, to a Veza
mount (PUT /live/lat) and to icecast2 (PUT /lat) at once. The MP3 carries a 1 kHz burst every
few seconds (MARKERS.json: their times in the file). The instant the sender writes a marker's
first byte is its send time. Three listeners run beside it:
  - ICY from Veza and ICY from icecast2: the relayed bytes are the source's own bytes, so a
    marker is heard when the listener has received the byte where the marker starts (found by
    matching the received bytes to the file); latency = that arrival − send time, after the
    burst (markers sent before the listener connected are not counted);
  - WebSocket from Veza (the same AAC parts pushed as they are encoded), played on the same
    clock as LL-HLS below, and WebRTC from Veza (WHEP, aiortc: Opus decoded after its jitter
    buffer; a marker is heard when the first loud frame comes out of the decoder);
  - LL-HLS from Veza, as a real player follows it: it joins PART-HOLD-BACK behind the live edge,
    fetches each part as soon as it exists (blocking playlist reload on the preload hint) and
    plays on a clock that starts when its first part is in hand and stalls whenever a part is
    not there in time. Markers are found by decoding the received parts (ffmpeg), and the
    latency is the instant the player's clock plays the marker − its send time.
Prints one JSON object.

cost: MOUNTS paced sources (threads of this process sending the same MP3 in real time) to
mounts cost-1…cost-N of a Veza host, each transcoded to the default live ladder. Measures the
host's CPU (from /proc) over the steady part of the run, part-deadline misses and the part
publish latency histogram from /metrics. Prints one JSON object.
"""
import array
import base64
import bisect
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

BYTES_PER_SECOND = 16000  # the source files are CBR 128 kb/s


def open_source(base, path, password):
    """An Icecast 2.4 PUT source connection; returns the socket once the server said 100/200."""
    parts = urllib.parse.urlsplit(base)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    auth = base64.b64encode(f"source:{password}".encode()).decode()
    head = (f"PUT {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: audio/mpeg\r\nIce-Name: bench\r\nExpect: 100-continue\r\n\r\n")
    sock.sendall(head.encode())
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"{base}{path}: closed before answering")
        reply += chunk
    status = reply.split(b" ", 2)[1]
    if status not in (b"100", b"200"):
        raise RuntimeError(f"{base}{path}: {reply[:200]!r}")
    sock.settimeout(None)
    return sock


def paced_send(sockets, data, seconds, start, offsets_sent=None, stop=None):
    """Sends data[0:] to every socket in real time from `start` (monotonic), 20 ms at a time.
    offsets_sent, when given, gets (byte offset, monotonic time) for each write."""
    step = BYTES_PER_SECOND // 50
    total = min(len(data), int(seconds * BYTES_PER_SECOND))
    offset = 0
    while offset < total and not (stop and stop.is_set()):
        due = start + offset / BYTES_PER_SECOND
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        piece = data[offset:offset + step]
        now = time.monotonic()
        for sock in sockets:
            try:
                sock.sendall(piece)
            except OSError:
                pass
        if offsets_sent is not None:
            offsets_sent.append((offset, now))
        offset += len(piece)


def icy_listener(url, result, stop):
    """Reads an ICY stream (no metadata), recording (bytes so far, monotonic time) per read."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", parts.path)
    response = conn.getresponse()
    result["status"] = response.status
    received = bytearray()
    arrivals = []
    result["bytes"], result["arrivals"] = received, arrivals
    try:
        while not stop.is_set():
            chunk = response.read1(65536)
            if not chunk:
                break
            received += chunk
            arrivals.append((len(received), time.monotonic()))
    except OSError:
        pass  # Veza keeps listeners through the fallback after the source stops: a read times out


def icy_latencies(result, data, marker_offsets, send_time_of_offset, joined_at):
    """Latency of each marker the listener received after its connection: arrival of the
    marker's first byte − the instant the sender wrote it."""
    received = bytes(result.get("bytes", b""))
    if len(received) < 4096:
        return []
    # Where the listener's stream starts in the file: the burst's first bytes, found by content.
    probe = received[2048:2048 + 1024]
    at = data.find(probe)
    if at < 0:
        return []
    origin = at - 2048
    ends = [end for end, _ in result["arrivals"]]
    latencies = []
    for marker in marker_offsets:
        position = marker - origin
        if position < 0 or position >= len(received):
            continue
        sent = send_time_of_offset(marker)
        if sent is None or sent < joined_at:
            continue
        index = bisect.bisect_right(ends, position)
        if index >= len(ends):
            continue
        latencies.append(result["arrivals"][index][1] - sent)
    return latencies


def get(url, timeout=15):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def llhls_player(base, rung, result, stop):
    """Follows the live edge of one rung like an LL-HLS player; records each part's arrival."""
    playlist = get(f"{base}/{rung}/index.m3u8").decode()
    hold = float(re.search(r"PART-HOLD-BACK=([\d.]+)", playlist).group(1))
    part_target = float(re.search(r"PART-TARGET=([\d.]+)", playlist).group(1))
    parts = re.findall(r'#EXT-X-PART:DURATION=[\d.]+,URI="part-(\d+)\.(\d+)\.m4s"', playlist)
    per = max(1, round(3.84 / part_target))
    indexes = [int(m) * per + int(p) for m, p in parts]
    # Join: the part PART-HOLD-BACK before the end of the last one.
    back = int(round(hold / part_target))
    index = max(indexes[0], indexes[-1] - back + 1)
    result["init"] = get(f"{base}/{rung}/init.mp4")
    result["first_part"] = index
    result["part_seconds"] = part_target
    result["parts"] = []
    while not stop.is_set():
        msn, p = divmod(index, per)
        try:
            body = get(f"{base}/{rung}/part-{msn}.{p}.m4s", timeout=10)
        except Exception:
            # Not there yet: wait for it with a blocking playlist reload, then retry.
            try:
                get(f"{base}/{rung}/index.m3u8?_HLS_msn={msn}&_HLS_part={p}", timeout=10)
            except Exception:
                time.sleep(0.05)
            continue
        result["parts"].append((index, time.monotonic(), body))
        index += 1


def websocket_player(url, result, stop):
    """Listens over WebSocket (/ws/live/{mount}): the greeting, the init, then each part as
    pushed; records each part's index (its mfhd sequence number − 1) and arrival."""
    import asyncio
    import websockets

    async def run():
        async with websockets.connect(url, max_size=None, compression=None) as ws:
            greeting = json.loads(await ws.recv())
            result["part_seconds"] = greeting["partSeconds"]
            result["init"] = await ws.recv()
            result["parts"] = []
            while not stop.is_set():
                try:
                    body = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                at = body.find(b"mfhd")
                index = int.from_bytes(body[at + 8:at + 12], "big") - 1
                result["parts"].append((index, time.monotonic(), body))

    asyncio.run(run())


def webrtc_player(url, result, stop):
    """Plays over WebRTC (WHEP) with aiortc: records each decoded 20 ms frame's arrival (after
    aiortc's jitter buffer and decoder, as a player hears it) and its RMS."""
    import asyncio
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "Tests" / "scripts"))
    import whep_client
    from aiortc import RTCPeerConnection, RTCSessionDescription

    async def run():
        whep_client.configure_candidates(url, "auto")
        pc = RTCPeerConnection()
        sdp = await whep_client.make_offer(pc)  # a receive-only audio transceiver
        request = urllib.request.Request(url, data=sdp.encode(), method="POST", headers={"Content-Type": "application/sdp"})
        response = await asyncio.get_running_loop().run_in_executor(None, lambda: urllib.request.urlopen(request, timeout=10))
        answer, location = response.read().decode(), urllib.parse.urljoin(url, response.headers["Location"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        track = pc.getTransceivers()[0].receiver.track
        frames = result.setdefault("frames", [])
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=1)
            except asyncio.TimeoutError:
                continue
            samples = whep_client.channel0(frame)
            level = (sum(v * v for v in samples) / max(1, len(samples))) ** 0.5
            frames.append((time.monotonic(), frame.samples / frame.sample_rate, level))
        urllib.request.urlopen(urllib.request.Request(location, method="DELETE"), timeout=5).read()
        await pc.close()

    asyncio.run(run())


def cmaf_latencies(player, markers, send_time_of_offset, joined):
    """Latencies of the markers a CMAF player (LL-HLS or WebSocket: parts with their index and
    arrival) plays: on a clock that starts when its first part is in hand and waits for a late
    part (a stall). Returns the summary with the stall time."""
    parts = player.get("parts", [])
    latencies, stalls = [], 0.0
    if parts:
        part_seconds = player["part_seconds"]
        first_index = parts[0][0]
        clock = parts[0][1]  # wall time at which media position (first part's start) plays
        play_start = []  # wall time each part starts playing
        for index, arrived, _ in parts:
            due = clock + (index - first_index) * part_seconds
            if arrived > due:  # a stall: the clock waits for the part
                stalls += arrived - due
                clock += arrived - due
                due = arrived
            play_start.append(due)
        media = player["init"] + b"".join(body for _, _, body in parts)
        onsets = decode_onsets(media, ["-f", "mp4"])
        origin = first_index * part_seconds  # ladder time of the first received sample
        for onset in onsets:
            ladder_time = origin + onset
            # The ladder's time 0 is the source's first decoded sample: the marker is the one
            # sent closest to that time in the file (markers are seconds apart).
            nearest = min(markers["times"], key=lambda t: abs(t - ladder_time))
            if abs(nearest - ladder_time) > 0.5:
                continue
            position = int(onset / part_seconds)
            if position >= len(play_start):
                continue
            played = play_start[position] + (onset - position * part_seconds)
            sent_at = send_time_of_offset(int(nearest * BYTES_PER_SECOND))
            if sent_at is not None and sent_at >= joined:
                latencies.append(played - sent_at)
    report = summary(latencies)
    report["stall_seconds"] = round(stalls, 3)
    report["parts"] = len(parts)
    return report


def webrtc_latencies(player, marker_sent_times, joined):
    """Latencies of the markers a WebRTC player hears: a frame louder than the threshold after
    at least 1 s of quiet frames is a marker's onset, heard when the frame came out of the
    decoder; it is matched to the latest marker sent before it."""
    latencies, quiet = [], 0.0
    for arrived, duration, level in player.get("frames", []):
        if level > 0.1:
            if quiet >= 1.0:
                sent = [t for t in marker_sent_times if joined <= t <= arrived]
                if sent and arrived - sent[-1] < 3:
                    latencies.append(arrived - sent[-1])
            quiet = 0.0
        else:
            quiet += duration
    report = summary(latencies)
    report["frames"] = len(player.get("frames", []))
    return report


def decode_onsets(media, fmt_args, rate=8000):
    """Sample times (s) where 1 kHz bursts start in the decoded audio (20 ms RMS over a threshold
    after at least 1 s below it)."""
    decoded = subprocess.run(["ffmpeg", "-v", "error"] + fmt_args + ["-i", "pipe:", "-ac", "1", "-ar", str(rate), "-f", "s16le", "pipe:"],
                             input=media, capture_output=True).stdout
    samples = array.array("h")
    samples.frombytes(decoded[: len(decoded) // 2 * 2])
    window = rate // 50
    onsets, quiet = [], 0
    for start in range(0, len(samples) - window, window):
        energy = sum(v * v for v in samples[start:start + window]) / window
        if energy > 3000 ** 2 / 2:
            if quiet >= 50:
                onsets.append(start / rate)
            quiet = 0
        else:
            quiet += 1
    return onsets


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3)


def summary(values):
    return {"count": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95), "max": round(max(values), 3) if values else None}


def latency(source, markers_file, veza, icecast, seconds):
    data = open(source, "rb").read()
    markers = json.load(open(markers_file))  # seconds into the file
    marker_offsets = [int(t * BYTES_PER_SECOND) for t in markers["times"]]
    sockets = [open_source(veza, "/live/lat", "lat-pw-123"), open_source(icecast, "/lat", "lat-pw-123")]
    start = time.monotonic() + 0.2
    sent = []
    stop = threading.Event()
    sender = threading.Thread(target=paced_send, args=(sockets, data, seconds, start, sent, stop))
    sender.start()

    def send_time_of_offset(offset):
        # The write that carried byte `offset`.
        keys = [o for o, _ in sent]
        index = bisect.bisect_right(keys, offset) - 1
        return sent[index][1] if index >= 0 else None

    time.sleep(6)  # the ladder's first segment, a few markers in the bursts
    results = {"veza-icy": {}, "icecast-icy": {}, "veza-llhls": {}, "veza-websocket": {}, "veza-webrtc": {}}
    joined = time.monotonic()
    ws_url = "ws://" + veza.split("://", 1)[1] + "/ws/live/lat?rung=aac-128"
    threads = [
        threading.Thread(target=icy_listener, args=(f"{veza}/live/lat", results["veza-icy"], stop)),
        threading.Thread(target=icy_listener, args=(f"{icecast}/lat", results["icecast-icy"], stop)),
        threading.Thread(target=llhls_player, args=(f"{veza}/live/lat", "aac-128", results["veza-llhls"], stop)),
        threading.Thread(target=websocket_player, args=(ws_url, results["veza-websocket"], stop)),
        threading.Thread(target=webrtc_player, args=(f"{veza}/whep/lat", results["veza-webrtc"], stop)),
    ]
    for thread in threads:
        thread.start()
    sender.join()
    time.sleep(1)
    stop.set()
    for sock in sockets:
        sock.close()
    for thread in threads:
        thread.join(timeout=15)
    report = {"seconds": seconds, "markers_sent": sum(1 for t in markers["times"] if t < seconds)}
    for name in ("veza-icy", "icecast-icy"):
        report[name] = summary(icy_latencies(results[name], data, marker_offsets, send_time_of_offset, joined))
    # LL-HLS and WebSocket: decode what the player received; its clock starts when the first
    # part is in hand.
    report["veza-llhls"] = cmaf_latencies(results["veza-llhls"], markers, send_time_of_offset, joined)
    report["veza-websocket"] = cmaf_latencies(results["veza-websocket"], markers, send_time_of_offset, joined)
    marker_sent_times = [t for t in (send_time_of_offset(offset) for offset in marker_offsets) if t is not None]
    report["veza-webrtc"] = webrtc_latencies(results["veza-webrtc"], marker_sent_times, joined)
    print(json.dumps(report))


def source(path, seconds, targets):
    """A paced source to every target (BASE PATH PASSWORD triples) for `seconds`."""
    data = open(path, "rb").read()
    sockets = [open_source(base, mount, password) for base, mount, password in targets]
    paced_send(sockets, data, seconds, time.monotonic() + 0.1)
    for sock in sockets:
        sock.close()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / 100.0


def metric(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def histogram_quantile(text, name, q):
    buckets = []
    for line in text.splitlines():
        match = re.match(name + r'_bucket\{le="([^"]+)"\} (\S+)', line)
        if match:
            buckets.append((float("inf") if match.group(1) == "+Inf" else float(match.group(1)), float(match.group(2))))
    if not buckets or buckets[-1][1] == 0:
        return None
    target = q * buckets[-1][1]
    for bound, count in buckets:
        if count >= target:
            return bound
    return None


def cost(source, veza, pid, mounts, seconds):
    data = open(source, "rb").read()
    stop = threading.Event()
    start = time.monotonic() + 0.5
    threads = []
    for n in range(1, mounts + 1):
        sock = open_source(veza, f"/live/cost-{n}", "cost-pw-123")
        thread = threading.Thread(target=paced_send, args=([sock], data, seconds, start, None, stop))
        thread.start()
        threads.append((thread, sock))
    warmup = min(15, seconds / 3)
    time.sleep(warmup + 0.5)
    before = get(f"{veza}/metrics").decode()
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds - warmup - 2)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    after = get(f"{veza}/metrics").decode()
    stop.set()
    for thread, sock in threads:
        thread.join()
        sock.close()
    cores = (cpu1 - cpu0) / (t1 - t0)
    report = {
        "mounts": mounts,
        "measured_seconds": round(t1 - t0, 1),
        "host_cpu_cores": round(cores, 3),
        "cpu_per_mount_percent": round(100 * cores / mounts, 2),
        # CPU seconds the host spends per second of audio per mount (relay, decode, ladder,
        # packaging): the ladder's real-time factor (1 would be one core per mount).
        "ladder_real_time_factor": round(cores / mounts, 4),
        "deadline_misses": metric(after, "veza_live_part_deadline_misses_total") - metric(before, "veza_live_part_deadline_misses_total"),
        "deadline_misses_total_run": metric(after, "veza_live_part_deadline_misses_total"),
        "parts_published": metric(after, "veza_live_part_publish_seconds_count") - metric(before, "veza_live_part_publish_seconds_count"),
        "publish_p50_le_seconds": histogram_quantile(after, "veza_live_part_publish_seconds", 0.5),
        "publish_p99_le_seconds": histogram_quantile(after, "veza_live_part_publish_seconds", 0.99),
        "fallback_seconds": metric(after, "veza_live_fallback_seconds_total"),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1] == "latency":
        latency(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]))
    elif sys.argv[1] == "cost":
        cost(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    elif sys.argv[1] == "source":
        rest = sys.argv[4:]
        source(sys.argv[2], float(sys.argv[3]), [tuple(rest[i:i + 3]) for i in range(0, len(rest), 3)])
    else:
        sys.exit(__doc__)
