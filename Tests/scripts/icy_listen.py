#!/usr/bin/env python3
"""An ICY listener for the live tests: connects to URL with `Icy-MetaData: 1`, reads for
SECONDS, takes the metadata blocks out of the body (every icy-metaint bytes), writes the audio
to OUT and prints JSON: status, headers, audio bytes, the StreamTitle values seen in order, and
whether every block was well formed. Exits 1 when the response is not a 200 ICY stream.

    icy_listen.py URL SECONDS OUT [--no-metadata]
"""
import http.client
import json
import sys
import time
import urllib.parse


def main():
    url, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    want_metadata = "--no-metadata" not in sys.argv
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    headers = {"Icy-MetaData": "1"} if want_metadata else {}
    connection.request("GET", parts.path + (("?" + parts.query) if parts.query else ""), headers=headers)
    response = connection.getresponse()
    result = {"status": response.status, "headers": {k.lower(): v for k, v in response.getheaders()}}
    if response.status != 200:
        result["body"] = response.read(2000).decode("utf-8", "replace")
        print(json.dumps(result))
        sys.exit(1)
    metaint = int(result["headers"].get("icy-metaint", "0")) if want_metadata else 0
    titles, malformed, audio = [], 0, 0
    deadline = time.monotonic() + seconds
    until_meta = metaint
    with open(out, "wb") as sink:
        while time.monotonic() < deadline:
            if metaint:
                chunk = response.read(min(until_meta, 4096))
                if not chunk:
                    break
                sink.write(chunk)
                audio += len(chunk)
                until_meta -= len(chunk)
                if until_meta == 0:
                    length = response.read(1)
                    if not length:
                        break
                    block = response.read(length[0] * 16)
                    if len(block) != length[0] * 16:
                        break
                    if block:
                        text = block.rstrip(b"\0").decode("utf-8", "replace")
                        if text.startswith("StreamTitle='") and text.endswith("';"):
                            titles.append(text[len("StreamTitle='"):-2])
                        else:
                            malformed += 1
                    until_meta = metaint
            else:
                chunk = response.read1(4096)
                if not chunk:
                    break
                sink.write(chunk)
                audio += len(chunk)
    result.update({"audioBytes": audio, "titles": titles, "malformedBlocks": malformed})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
