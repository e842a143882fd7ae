#!/usr/bin/env python3
"""WHEP (RFC 9725) test client built on aiortc.

Usage:
  whep_client.py URL [--token T] [--seconds N] [--expect-hz F] [--json]
  whep_client.py --print-offer            # print aiortc's offer SDP, no network

It POSTs a recvonly audio offer to URL (Content-Type: application/sdp), expects
201 + Location + an SDP answer, receives the audio track for N seconds, then
DELETEs the resource and prints one JSON object:

  {"status", "frames", "seconds_of_audio", "gaps", "first_frame_s",
   "dominant_hz", "packets_received", "packets_lost", "delete_status", ...}

Exit codes: 0 success; 1 a check failed (no audio, gaps, wrong tone, DELETE
failed); 2 HTTP/signalling error (status and body are printed); 3 the media
connection did not come up (ICE/DTLS) or no frame arrived in time.

Host candidates: aioice never offers 127.0.0.1 (it skips it on purpose) and
would offer every other interface address instead. When URL points at a
loopback host the client therefore restricts its host candidates to
127.0.0.1 (or ::1), so all media stays on loopback; --candidate-ip overrides
this (an address, or "all" for aioice's default). No STUN server is used.

Needs: pip install aiortc (numpy is optional: FFT tone estimate, else a
zero-crossing count).
"""

import argparse
import asyncio
import ipaddress
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from client_report import emit

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy is optional
    np = None

try:
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError
except ImportError as exc:  # pragma: no cover
    print(f"whep_client: aiortc is not installed ({exc}); "
          "run: python3 -m pip install aiortc", file=sys.stderr)
    sys.exit(2)


class ClientError(Exception):
    """A failure with an exit code and a message for the user."""

    def __init__(self, code, status, message, **extra):
        super().__init__(message)
        self.code = code
        self.status = status
        self.extra = extra


# ---------------------------------------------------------------- candidates

def restrict_host_candidates(addresses):
    """Make aioice gather host candidates on exactly these addresses."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(addresses)


def loopback_candidate_for(url):
    """127.0.0.1 / ::1 when the URL's host is a loopback address, else None."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.ip_address(socket.gethostbyname(host))
        except OSError:
            return None
    if ip.is_loopback:
        return "::1" if ip.version == 6 else "127.0.0.1"
    return None


def configure_candidates(url, candidate_ip):
    if candidate_ip == "all":
        return None
    if candidate_ip in (None, "auto"):
        candidate_ip = loopback_candidate_for(url) if url else "127.0.0.1"
        if candidate_ip is None:
            return None
    restrict_host_candidates([candidate_ip])
    return candidate_ip


# ---------------------------------------------------------------- offer

async def make_offer(pc):
    pc.addTransceiver("audio", direction="recvonly")
    offer = await pc.createOffer()
    # aiortc gathers ICE candidates inside setLocalDescription and adds them
    # (plus a=end-of-candidates) to pc.localDescription, not to `offer`.
    await pc.setLocalDescription(offer)
    sdp = pc.localDescription.sdp
    if "a=candidate:" not in sdp:
        raise ClientError(3, "no-candidates",
                          "aiortc gathered no ICE candidate (check --candidate-ip)")
    return sdp


# ---------------------------------------------------------------- HTTP

def http_request(method, url, body=None, headers=None, timeout=10.0):
    """Returns (status, headers, body bytes); HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        try:
            data = err.read()
        except Exception:  # noqa: BLE001
            data = b""
        return err.code, err.headers, data


async def http(method, url, body=None, headers=None, timeout=10.0):
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(
            None, lambda: http_request(method, url, body, headers, timeout))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(2, "http-error", f"{method} {url} failed: {reason}")


def auth_headers(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


# ---------------------------------------------------------------- audio analysis

class AudioStats:
    def __init__(self):
        self.frames = 0
        self.samples = 0
        self.sample_rate = None
        self.channels = None
        self.formats = set()
        self.gaps = []
        self.expected_pts = None
        self.first_pts = None
        self.mono = []          # list of numpy arrays or python lists (channel 0)

    def add(self, frame, elapsed):
        self.frames += 1
        self.samples += frame.samples
        self.sample_rate = frame.sample_rate
        self.channels = len(frame.layout.channels)
        self.formats.add(frame.format.name)
        pts = frame.pts
        if pts is not None:
            if self.first_pts is None:
                self.first_pts = pts
            if self.expected_pts is not None and pts != self.expected_pts:
                self.gaps.append({
                    "at_s": round(elapsed, 3),
                    "frame": self.frames,
                    "expected_pts": self.expected_pts,
                    "pts": pts,
                    # > 0: samples missing, < 0: overlap / timestamp went back
                    "delta_samples": pts - self.expected_pts,
                })
            self.expected_pts = pts + frame.samples
        self.mono.append(channel0(frame))

    def dominant_hz(self):
        if not self.sample_rate or not self.mono:
            return None, None
        rate = self.sample_rate
        if np is not None:
            x = np.concatenate([np.asarray(m, dtype=np.float64) for m in self.mono])
            # skip the first 100 ms (codec start-up) when there is enough audio
            if len(x) > rate // 2:
                x = x[rate // 10:]
            x = x - x.mean()
            rms = float(np.sqrt(np.mean(x * x))) if len(x) else 0.0
            if len(x) < 64 or rms == 0.0:
                return None, rms
            spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
            spec[0] = 0.0
            k = int(np.argmax(spec))
            # parabolic interpolation of the peak for sub-bin precision
            if 0 < k < len(spec) - 1:
                a, b, c = spec[k - 1], spec[k], spec[k + 1]
                denom = a - 2 * b + c
                shift = 0.5 * (a - c) / denom if denom else 0.0
            else:
                shift = 0.0
            return (k + shift) * rate / len(x), rms
        # fallback: zero crossings of channel 0
        x = [v for m in self.mono for v in m]
        if len(x) > rate // 2:
            x = x[rate // 10:]
        if len(x) < 2:
            return None, None
        mean = sum(x) / len(x)
        crossings = sum(1 for a, b in zip(x, x[1:]) if (a - mean) < 0 <= (b - mean))
        rms = (sum((v - mean) ** 2 for v in x) / len(x)) ** 0.5
        return crossings * rate / len(x), rms


def channel0(frame):
    """Channel 0 of an av.AudioFrame as floats in [-1, 1]."""
    channels = len(frame.layout.channels)
    scale = {"s16": 32768.0, "s16p": 32768.0, "s32": 2147483648.0,
             "s32p": 2147483648.0}.get(frame.format.name, 1.0)
    if np is not None:
        arr = frame.to_ndarray()
        if frame.format.is_planar:
            data = arr[0]
        else:
            data = arr.reshape(-1)[0::channels]
        return data.astype(np.float64) / scale
    # without numpy: read the first plane's bytes
    import array
    typecode = {"s16": "h", "s16p": "h", "s32": "i", "s32p": "i",
                "flt": "f", "fltp": "f", "dbl": "d", "dblp": "d"}[frame.format.name]
    values = array.array(typecode, bytes(frame.planes[0]))
    if sys.byteorder != "little":
        values.byteswap()
    step = 1 if frame.format.is_planar else channels
    return [v / scale for v in values[0::step][: frame.samples]]


# ---------------------------------------------------------------- inbound stats

async def rtp_stats(receiver):
    try:
        report = await receiver.getStats()
    except Exception:  # noqa: BLE001
        return {}
    out = {}
    for stat in report.values():
        if getattr(stat, "type", None) == "inbound-rtp":
            out["packets_received"] = out.get("packets_received", 0) + stat.packetsReceived
            out["packets_lost"] = out.get("packets_lost", 0) + stat.packetsLost
            # aiortc reports jitter in RTP timestamp units (48 kHz for Opus)
            out["jitter_ms"] = round(stat.jitter / 48.0, 3)
            out["ssrc"] = stat.ssrc
    return out


# ---------------------------------------------------------------- main flow

async def run(args):
    result = {"status": "error", "url": args.url, "frames": 0, "seconds_of_audio": 0.0,
              "gaps": 0, "first_frame_s": None, "dominant_hz": None,
              "packets_received": None, "packets_lost": None, "delete_status": None}
    candidate_ip = configure_candidates(args.url, args.candidate_ip)
    result["candidate_ip"] = candidate_ip or "all"
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    resource = None
    headers = auth_headers(args.token)
    t0 = time.monotonic()
    try:
        offer_sdp = await make_offer(pc)
        status, resp_headers, body = await http(
            "POST", args.url, offer_sdp.encode(),
            dict(headers, **{"Content-Type": "application/sdp",
                             "Accept": "application/sdp"}),
            args.http_timeout)
        result["post_status"] = status
        text = body.decode("utf-8", "replace")
        if status != 201:
            raise ClientError(2, "http-error",
                              f"POST {args.url} returned {status} (expected 201): {text.strip()}",
                              http_status=status, http_body=text)
        location = resp_headers.get("Location")
        if location:
            resource = urllib.parse.urljoin(args.url, location)
            result["location"] = resource
        ctype = (resp_headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/sdp":
            result.setdefault("warnings", []).append(
                f"answer Content-Type is {ctype or 'missing'!r}, expected application/sdp")
        if resp_headers.get("ETag"):
            result["etag"] = resp_headers.get("ETag")
        if not location:
            raise ClientError(2, "http-error", "201 response has no Location header",
                              http_body=text)
        if not text.lstrip().startswith("v=0"):
            raise ClientError(2, "bad-answer", f"201 body is not an SDP answer: {text[:200]!r}")
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))
        except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError etc.
            raise ClientError(2, "bad-answer",
                              f"aiortc rejected the SDP answer: {type(exc).__name__}: {exc}",
                              answer=text)
        result["answer_s"] = round(time.monotonic() - t0, 3)

        transceiver = pc.getTransceivers()[0]
        track = transceiver.receiver.track
        if track is None:
            raise ClientError(2, "bad-answer",
                              "the answer gives no audio track to receive "
                              "(is its direction a=sendonly?)")

        stats = AudioStats()
        # wait for the first frame
        try:
            frame = await asyncio.wait_for(track.recv(), timeout=args.connect_timeout)
        except asyncio.TimeoutError:
            raise ClientError(3, "no-media",
                              f"no audio frame within {args.connect_timeout}s "
                              f"(ice={pc.iceConnectionState}, connection={pc.connectionState})")
        except MediaStreamError:
            raise ClientError(3, "no-media",
                              f"track ended before any frame (connection={pc.connectionState})")
        first = time.monotonic()
        result["first_frame_s"] = round(first - t0, 3)
        stats.add(frame, 0.0)
        ended = None
        deadline = first + args.seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                frame = await asyncio.wait_for(track.recv(), timeout=left)
            except asyncio.TimeoutError:
                break
            except MediaStreamError:
                ended = round(time.monotonic() - first, 3)
                break
            stats.add(frame, time.monotonic() - first)
        result["connection_state"] = pc.connectionState
        if ended is not None:
            result["track_ended_at_s"] = ended

        result.update(await rtp_stats(transceiver.receiver))
        hz, rms = stats.dominant_hz()
        result.update({
            "frames": stats.frames,
            "seconds_of_audio": round(stats.samples / (stats.sample_rate or 48000), 3),
            "gaps": len(stats.gaps),
            "gap_details": stats.gaps[:20],
            "dominant_hz": round(hz, 2) if hz is not None else None,
            "rms": round(rms, 5) if rms is not None else None,
            "sample_rate": stats.sample_rate,
            "channels": stats.channels,
            "sample_format": ",".join(sorted(stats.formats)),
            "analysis": "fft" if np is not None else "zero-crossings",
        })

        failures = []
        if stats.frames == 0:
            failures.append("no audio frames")
        if len(stats.gaps) > args.max_gaps:
            failures.append(f"{len(stats.gaps)} gap(s) in frame timestamps (max {args.max_gaps})")
        if ended is not None:
            failures.append(f"track ended after {ended}s")
        if args.expect_hz is not None:
            tol = max(args.hz_tolerance * args.expect_hz, 2.0)
            if hz is None or abs(hz - args.expect_hz) > tol:
                failures.append(f"dominant frequency {hz if hz is None else round(hz, 1)} Hz, "
                                f"expected {args.expect_hz} +/- {round(tol, 1)} Hz")
        result["failures"] = failures
        result["status"] = "fail" if failures else "ok"
    except ClientError as err:
        result["status"] = err.status
        result["error"] = str(err)
        result.update(err.extra)
        result["_code"] = err.code
    finally:
        if resource:
            try:
                dstatus, _, dbody = await http("DELETE", resource, None, headers,
                                               args.http_timeout)
                result["delete_status"] = dstatus
                if dstatus not in (200, 204):
                    result.setdefault("failures", []).append(
                        f"DELETE {resource} returned {dstatus}: "
                        f"{dbody.decode('utf-8', 'replace').strip()}")
                    if result["status"] == "ok":
                        result["status"] = "fail"
            except ClientError as err:
                result["delete_status"] = None
                result.setdefault("failures", []).append(str(err))
                if result["status"] == "ok":
                    result["status"] = "fail"
        await pc.close()
    return result


async def print_offer(args):
    configure_candidates(args.url, args.candidate_ip)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        sdp = await make_offer(pc)
    finally:
        await pc.close()
    sys.stdout.write(sdp)


def main(argv=None):
    p = argparse.ArgumentParser(description="WHEP (RFC 9725) audio test client (aiortc)")
    p.add_argument("url", nargs="?", help="WHEP endpoint URL")
    p.add_argument("--token", help="send Authorization: Bearer TOKEN")
    p.add_argument("--seconds", type=float, default=5.0,
                   help="seconds to receive after the first frame (default 5)")
    p.add_argument("--expect-hz", type=float,
                   help="fail unless the dominant frequency is this (a test tone)")
    p.add_argument("--hz-tolerance", type=float, default=0.03,
                   help="relative tolerance for --expect-hz (default 0.03, at least 2 Hz)")
    p.add_argument("--max-gaps", type=int, default=0,
                   help="timestamp gaps allowed before failing (default 0)")
    p.add_argument("--connect-timeout", type=float, default=10.0,
                   help="seconds to wait for the first frame after the answer (default 10)")
    p.add_argument("--http-timeout", type=float, default=10.0)
    p.add_argument("--candidate-ip", default="auto",
                   help='host candidate address: "auto" (127.0.0.1/::1 for a loopback URL, '
                        'else aioice default), an IP, or "all"')
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--print-offer", action="store_true",
                   help="print the offer SDP aiortc generates and exit (no network)")
    args = p.parse_args(argv)

    if args.print_offer:
        asyncio.run(print_offer(args))
        return 0
    if not args.url:
        p.error("URL is required (unless --print-offer)")

    result = asyncio.run(run(args))
    code = result.pop("_code", None)
    if code is None:
        code = 0 if result["status"] == "ok" else 1
    return emit("whep_client", result, code, args.json)


if __name__ == "__main__":
    sys.exit(main())
