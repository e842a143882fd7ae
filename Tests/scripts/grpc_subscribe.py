#!/usr/bin/env python3
"""Follows the gRPC event stream (veza.v1.Events/Subscribe) and writes each event as a JSON line.

Usage: grpc_subscribe.py --target HOST:PORT --admin TOKEN --out FILE [--after CURSOR] [--seconds N]

Prints `subscribed` once the stream is open, then appends {"id", "type", "subject", "cursor",
"data"} per event to FILE (flushed at once) until N seconds have passed or it is killed.
"""
import argparse
import json
import os
import sys
import tempfile
import threading

import grpc
from grpc_tools import protoc

PROTOS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Protos"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--after", default="")
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="veza-grpc-py-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    if protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                    os.path.join(PROTOS, "veza", "v1", "veza.proto")]) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    from veza.v1 import veza_pb2 as pb, veza_pb2_grpc as rpc  # noqa: E402

    channel = grpc.insecure_channel(args.target)
    grpc.channel_ready_future(channel).result(timeout=10)
    stream = rpc.EventsStub(channel).Subscribe(pb.SubscribeRequest(after_cursor=args.after),
                                               metadata=[("authorization", "Bearer " + args.admin)])
    threading.Timer(args.seconds, stream.cancel).start()
    print("subscribed", flush=True)
    with open(args.out, "a") as file:
        try:
            for event in stream:
                file.write(json.dumps({"id": event.id, "type": event.type, "subject": event.subject, "cursor": event.cursor,
                                       "data": json.loads(event.body_json)["data"]}) + "\n")
                file.flush()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                print(f"stream ended: {error.code().name} {error.details()}", file=sys.stderr, flush=True)
                sys.exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
