"""How the live test clients (whep_client.py, ws_live_client.py) print their result.

`--json`: one JSON object on stdout, and on failure one line naming it on stderr.
Otherwise: the error and each failed check on stderr, the object indented on stdout.
"""
import json
import sys


def emit(name, result, code, as_json):
    """Prints `result` (a dict with optional "error" and "failures") for client `name`; returns `code`."""
    if not as_json:
        if result.get("error"):
            print(f"{name}: {result['error']}", file=sys.stderr)
        for f in result.get("failures", []):
            print(f"{name}: FAIL: {f}", file=sys.stderr)
        print(json.dumps(result, indent=2))
    else:
        if code:
            msg = result.get("error") or "; ".join(result.get("failures", []))
            print(f"{name}: {msg}", file=sys.stderr)
        print(json.dumps(result))
    return code
