#!/usr/bin/env python3
"""The gRPC API from Python's grpcio, with stubs made from Protos/ by grpcio-tools' protoc.

Usage: grpc_client.py --target HOST:PORT --http BASE --admin TOKEN --source KEY --junk KEY

Runs the scenario of Tests/StreamHostTests/GRPCTests.swift against a live `streamhost serve
--grpc-port`: tokens minted over gRPC, a track created from an object in storage and watched
until it is ready, read, listed, its playback URL fetched over HTTP, deleted; refusals with
their status codes; the event stream from now, resumed after a cursor, and from the start.
Prints one line per check; exits 1 at the first failure, printing what it got.
"""
import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
import urllib.request

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.normpath(os.path.join(HERE, "..", "..", "Protos"))


def stubs():
    """Generates veza_pb2 / veza_pb2_grpc into a temporary directory and imports them."""
    out = tempfile.mkdtemp(prefix="veza-grpc-py-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    code = protoc.main(["protoc", f"-I{PROTOS}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                        os.path.join(PROTOS, "veza", "v1", "veza.proto")])
    if code != 0:
        sys.exit(f"protoc failed: {code}")
    sys.path.insert(0, out)
    from veza.v1 import veza_pb2, veza_pb2_grpc  # noqa: E402
    return veza_pb2, veza_pb2_grpc


def fail(message):
    print("FAIL " + message, flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print("ok " + message, flush=True)


def expect_status(code, call, what):
    try:
        result = call()
    except grpc.RpcError as error:
        check(error.code() == code, f"{what}: {error.code().name} ({error.details()})")
        return error
    fail(f"{what}: expected {code.name}, got {result!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--admin", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--junk", required=True)
    parser.add_argument("--burst", type=int, default=0,
                        help="only check that the token subject's API limit (this burst, a slow refill) refuses the next call")
    args = parser.parse_args()
    pb, rpc = stubs()
    if args.burst:
        rate_limit(pb, rpc, args)
        return

    channel = grpc.insecure_channel(args.target)
    grpc.channel_ready_future(channel).result(timeout=10)
    tracks = rpc.TracksStub(channel)
    tokens = rpc.TokensStub(channel)
    events = rpc.EventsStub(channel)

    def bearer(token):
        return [("authorization", "Bearer " + token)]

    admin = bearer(args.admin)

    # Auth: no token, a malformed one, a token without the scope.
    expect_status(grpc.StatusCode.UNAUTHENTICATED, lambda: tracks.ListTracks(pb.ListTracksRequest()), "ListTracks without a token")
    expect_status(grpc.StatusCode.UNAUTHENTICATED, lambda: tracks.ListTracks(pb.ListTracksRequest(), metadata=bearer("not.a.jwt")),
                  "ListTracks with a malformed token")
    uploader = tokens.MintToken(pb.MintTokenRequest(subject="grpc-uploader", scopes=[pb.SCOPE_UPLOAD], ttl_seconds=600), metadata=admin)
    check(uploader.token.count(".") == 2 and uploader.token_id and uploader.expires_at.seconds > time.time() + 500,
          f"MintToken: an upload token ({uploader.token_id}) for 10 minutes")
    expect_status(grpc.StatusCode.PERMISSION_DENIED, lambda: tokens.MintToken(
        pb.MintTokenRequest(subject="x", scopes=[pb.SCOPE_ADMIN]), metadata=bearer(uploader.token)), "MintToken with an upload token")
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: tokens.MintToken(pb.MintTokenRequest(subject="x"), metadata=admin),
                  "MintToken with no scope")
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: tokens.MintToken(
        pb.MintTokenRequest(subject="x", scopes=[pb.SCOPE_STREAM], ttl_seconds=10 * 366 * 86400), metadata=admin),
        "MintToken for ten years")

    # The event stream, from now on, in the background.
    received = queue.Queue()
    live = events.Subscribe(pb.SubscribeRequest(), metadata=admin)

    def drain():
        try:
            for event in live:
                received.put(event)
        except grpc.RpcError as error:
            received.put(error)

    threading.Thread(target=drain, daemon=True).start()
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: next(events.Subscribe(pb.SubscribeRequest(types=["track.exploded"]), metadata=admin)),
                  "Subscribe to an unknown event type")
    expect_status(grpc.StatusCode.PERMISSION_DENIED, lambda: next(events.Subscribe(pb.SubscribeRequest(), metadata=bearer(uploader.token))),
                  "Subscribe with an upload token")
    time.sleep(0.5)

    # CreateTrack: refusals first.
    up = bearer(uploader.token)
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: tracks.CreateTrack(pb.CreateTrackRequest(source_key="tracks/x/source/original.mp3"), metadata=up),
                  "CreateTrack from one of the host's own objects")
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: tracks.CreateTrack(pb.CreateTrackRequest(source_key="../etc/passwd"), metadata=up),
                  "CreateTrack from a key with ..")
    expect_status(grpc.StatusCode.NOT_FOUND, lambda: tracks.CreateTrack(pb.CreateTrackRequest(source_key="incoming/none.mp3"), metadata=up),
                  "CreateTrack from a missing object")
    junk = expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: tracks.CreateTrack(pb.CreateTrackRequest(source_key=args.junk), metadata=up),
                         "CreateTrack from an object that is not audio")
    codes = dict(junk.trailing_metadata() or [])
    check(codes.get("veza-error-code") == "unsupported_media_type", f"its veza-error-code trailer: {codes}")

    created = tracks.CreateTrack(pb.CreateTrackRequest(source_key=args.source, idempotency_key="grpc-once"), metadata=up)
    check(created.id and created.status in (pb.TRACK_STATUS_QUEUED, pb.TRACK_STATUS_PROCESSING), f"CreateTrack: {created.id} queued")
    again = tracks.CreateTrack(pb.CreateTrackRequest(source_key=args.source, idempotency_key="grpc-once"), metadata=up)
    check(again.id == created.id, "CreateTrack again with the same idempotency key: the same track")

    # A token for this track only, minted over gRPC; WatchTrack to the end.
    listener = tokens.MintToken(pb.MintTokenRequest(subject="grpc-listener", scopes=[pb.SCOPE_STREAM], track=created.id), metadata=admin)
    listen = bearer(listener.token)
    statuses = []
    for update in tracks.WatchTrack(pb.WatchTrackRequest(id=created.id), metadata=listen, timeout=300):
        statuses.append((update.status, update.progress))
    order = [status for status, _ in statuses]
    check(order[-1] == pb.TRACK_STATUS_READY and order == sorted(order),
          f"WatchTrack: {len(statuses)} updates, statuses in order, ready last ({[pb.TrackStatus.Name(s) for s in dict.fromkeys(order)]})")
    progress = [p for s, p in statuses if s == pb.TRACK_STATUS_PROCESSING]
    check(progress == sorted(progress), f"WatchTrack: progress never goes back ({progress[:8]}…)")

    track = tracks.GetTrack(pb.GetTrackRequest(id=created.id), metadata=listen)
    check(track.status == pb.TRACK_STATUS_READY and track.version == 1 and len(track.renditions) >= 3 and track.duration_seconds > 5,
          f"GetTrack: ready, v1, {len(track.renditions)} renditions, {track.duration_seconds:.1f} s")
    check(track.HasField("integrated_loudness_lufs") and -40 < track.integrated_loudness_lufs < 0,
          f"GetTrack: loudness {track.integrated_loudness_lufs:.1f} LUFS")
    with urllib.request.urlopen(args.http + track.playback.hls, timeout=10) as response:
        body = response.read().decode()
        check(response.status == 200 and body.startswith("#EXTM3U"), "the playback URL GetTrack signed plays over HTTP")
    expect_status(grpc.StatusCode.PERMISSION_DENIED, lambda: tracks.GetTrack(pb.GetTrackRequest(id="other"), metadata=listen),
                  "GetTrack of another track with a token for this one")
    expect_status(grpc.StatusCode.NOT_FOUND, lambda: tracks.GetTrack(pb.GetTrackRequest(id="nosuchtrack"), metadata=admin),
                  "GetTrack of no track")
    expect_status(grpc.StatusCode.NOT_FOUND, lambda: next(tracks.WatchTrack(pb.WatchTrackRequest(id="nosuchtrack"), metadata=admin)),
                  "WatchTrack of no track")

    page = tracks.ListTracks(pb.ListTracksRequest(limit=10), metadata=admin)
    check(any(t.id == created.id for t in page.tracks), f"ListTracks: {len(page.tracks)} track(s), ours among them")
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: tracks.ListTracks(pb.ListTracksRequest(limit=600), metadata=admin),
                  "ListTracks with limit 600")

    # Revocation: the listener's token stops working at once, over gRPC and HTTP alike.
    tokens.RevokeToken(pb.RevokeTokenRequest(token_id=listener.token_id, expires_at=listener.expires_at), metadata=admin)
    expect_status(grpc.StatusCode.UNAUTHENTICATED, lambda: tracks.GetTrack(pb.GetTrackRequest(id=created.id), metadata=listen),
                  "GetTrack with the revoked token")
    request = urllib.request.Request(f"{args.http}/v1/tracks/{created.id}", headers={"Authorization": "Bearer " + listener.token})
    try:
        urllib.request.urlopen(request, timeout=10)
        fail("the revoked token still opens the HTTP API")
    except urllib.error.HTTPError as error:
        check(error.code == 401, "the revoked token gets 401 over HTTP too")

    expect_status(grpc.StatusCode.PERMISSION_DENIED, lambda: tracks.DeleteTrack(pb.DeleteTrackRequest(id=created.id), metadata=up),
                  "DeleteTrack with an upload token")
    tracks.DeleteTrack(pb.DeleteTrackRequest(id=created.id), metadata=admin)
    expect_status(grpc.StatusCode.NOT_FOUND, lambda: tracks.GetTrack(pb.GetTrackRequest(id=created.id), metadata=admin), "GetTrack after DeleteTrack")
    expect_status(grpc.StatusCode.NOT_FOUND, lambda: tracks.DeleteTrack(pb.DeleteTrackRequest(id=created.id), metadata=admin), "DeleteTrack again")

    # The stream from now on: created, ready, deleted, for our track, in that order.
    seen = []
    deadline = time.time() + 15
    while time.time() < deadline and not any(e.type == "track.deleted" for e in seen):
        try:
            item = received.get(timeout=1)
        except queue.Empty:
            continue
        if isinstance(item, grpc.RpcError):
            fail(f"the event stream ended: {item.code().name} {item.details()}")
        seen.append(item)
    ours = [e for e in seen if e.subject == "track/" + created.id]
    check([e.type for e in ours] == ["track.created", "track.ready", "track.deleted"],
          f"Subscribe: {[e.type for e in ours]} for our track")
    bodies = [json.loads(e.body_json) for e in ours]
    check(all(b["type"] == e.type and b["data"]["id"] == created.id for b, e in zip(bodies, ours)) and all(e.id.startswith("msg_") for e in ours),
          "Subscribe: each body is the webhook body, each id a webhook-id")
    live.cancel()

    # Resume after the first event: the other two, nothing twice. From the start: all three.
    resumed = events.Subscribe(pb.SubscribeRequest(after_cursor=ours[0].cursor, types=["track.ready", "track.deleted"]), metadata=admin)
    got = []
    for event in resumed:
        got.append(event)
        if event.type == "track.deleted" and event.subject == ours[-1].subject:
            break
    resumed.cancel()
    check([e.id for e in got if e.subject == ours[0].subject] == [e.id for e in ours[1:]],
          "Subscribe after the first event's cursor, ready and deleted only: the other two, same ids")
    everything = events.Subscribe(pb.SubscribeRequest(after_cursor="0"), metadata=admin)
    got = []
    for event in everything:
        got.append(event)
        if event.id == ours[-1].id:
            break
    everything.cancel()
    check([e.id for e in got if e.subject == ours[0].subject] == [e.id for e in ours], "Subscribe from the start: all three")
    expect_status(grpc.StatusCode.INVALID_ARGUMENT, lambda: next(events.Subscribe(pb.SubscribeRequest(after_cursor="x.y"), metadata=admin)),
                  "Subscribe after a malformed cursor")
    print("PASS", flush=True)


def rate_limit(pb, rpc, args):
    """The per-subject API limit applies to gRPC calls: `burst` calls pass, the next is refused."""
    tracks = rpc.TracksStub(grpc.insecure_channel(args.target))
    admin = [("authorization", "Bearer " + args.admin)]
    for index in range(args.burst):
        try:
            tracks.ListTracks(pb.ListTracksRequest(), metadata=admin)
        except grpc.RpcError as error:
            fail(f"call {index + 1} of the burst of {args.burst}: {error.code().name} {error.details()}")
    print(f"ok {args.burst} calls within the burst", flush=True)
    error = expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, lambda: tracks.ListTracks(pb.ListTracksRequest(), metadata=admin),
                          "the next call beyond the token subject's limit")
    trailers = dict(error.trailing_metadata() or [])
    check(trailers.get("veza-error-code") == "rate_limited" and int(trailers.get("retry-after", "0")) >= 1,
          f"its trailers: {trailers}")
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
