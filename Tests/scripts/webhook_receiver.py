#!/usr/bin/env python3
"""A webhook receiver for the tests: checks each delivery's Standard Webhooks signature with the
reference library and appends one JSON line per request to --out:
{"path", "id", "timestamp", "valid", "type", "data", "eventTime"
(the body's timestamp), "received" (seconds since 1970)}.

POST /hook answers 204; POST /gone answers 410 (the endpoint is gone). Prints the bound port on
its first line (--port 0 picks one); a restart with the same --port binds it again.
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--secret", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
verifier = Webhook(args.secret)
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        headers = {key.lower(): value for key, value in self.headers.items()}
        try:
            verifier.verify(body, headers)
            valid = True
        except WebhookVerificationError:
            valid = False
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        line = {"path": self.path, "id": headers.get("webhook-id"), "timestamp": headers.get("webhook-timestamp"),
                "valid": valid, "type": message.get("type"), "data": message.get("data"),
                "eventTime": message.get("timestamp"), "received": time.time()}
        with lock:
            with open(args.out, "a") as out:
                out.write(json.dumps(line) + "\n")
        self.send_response(410 if self.path == "/gone" else 204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


ThreadingHTTPServer.allow_reuse_address = True
ThreadingHTTPServer.daemon_threads = True
# The default listen backlog (5) resets connections when a dispatcher opens 16 at once.
ThreadingHTTPServer.request_queue_size = 256
server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
