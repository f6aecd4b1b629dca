"""A pretend outbox: what example steps "send" (emails, API calls) lands here.

The steps do no network I/O. Instead of mailing a friend or calling an external
service they append a message to a Redis hash of the run (in the app's durable
store, under its key prefix), and whoever plays the
outside world (you, ``examples.demo``, the tests) reads it back with
:func:`wait_for`. The field is the step id from ``get_step_metadata()``, which is
stable across retries: a step delivered twice (steps are at-least-once) still
"sends" one message — the usual idempotency-key trick.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery_durable import get_step_metadata

from .app import durable

logger = logging.getLogger(__name__)


def _redis() -> Any:
    # The Redis of the app's durable store (under a test kit, its private one), with
    # strings decoded.
    return durable.runtime.store.client  # type: ignore[attr-defined]


def _key(run_id: str) -> str:
    return f"{durable.runtime.settings.key_prefix}:examples-outbox:{run_id}"


def send(to: str, subject: str, **fields: Any) -> None:
    """Inside a step: "send" a message (once per step, however often it runs)."""
    meta = get_step_metadata()
    message = {"to": to, "subject": subject, **fields}
    key = _key(meta.run_id)
    _redis().hsetnx(key, meta.step_id, json.dumps(message, default=str))
    _redis().expire(key, 86400)
    logger.info("outbox: to %s: %s %s", to, subject, fields)


def read(run_id: str) -> list[dict[str, Any]]:
    """The messages the steps of ``run_id`` sent so far (in no particular order)."""
    return [json.loads(v) for v in _redis().hvals(_key(run_id))]


def wait_for(run_id: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Block until the run has sent ``count`` messages; return them."""
    deadline = time.monotonic() + timeout
    while True:
        messages = read(run_id)
        if len(messages) >= count:
            return messages
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} sent {len(messages)} of {count} messages "
                               f"within {timeout}s (is a worker running?)")
        time.sleep(0.05)
