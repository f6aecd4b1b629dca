"""The line protocol between ``bench/peers.py`` and a peer's driver in the peer's own venv.

Standard library only (it runs in the DBOS and pyworkflow venvs, without celery_durable).
The driver reads one JSON request a line from stdin (``{"case": "sequential", "size":
100}``), runs it, and answers one JSON line on the original stdout (``{"ok": true}`` or
``{"ok": false, "error": ...}``; ``"value"``: what the handler returned); whatever
the peer's library prints goes to stderr.
``{"case": "quit"}`` or the end of stdin stops it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable


def check(value: object, expected: object, what: str) -> None:
    if value != expected:
        raise AssertionError(f"{what}: wrong result {str(value)[:80]!r}, expected {expected!r}")


def serve(handlers: dict[str, Callable[[int], object]]) -> None:
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library prints: to stderr
    sys.stdout = sys.stderr
    channel.write(json.dumps({"ok": True, "ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("case") == "quit":
            break
        try:
            answer = handlers[request["case"]](int(request.get("size", 0)))
            reply: dict[str, object] = {"ok": True, "value": answer}
        except Exception as exc:  # noqa: BLE001 - reported to the bench, the driver goes on
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        channel.write(json.dumps(reply) + "\n")
    channel.close()
