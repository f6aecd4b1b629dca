"""The Redis key schema, in one place.

Every key of one run carries the hash tag ``{<run id>}`` so that all of them
live in one Redis Cluster slot and each Lua script touches one slot only:

==========================================  ======  ============================================
key                                         type    holds
==========================================  ======  ============================================
``<prefix>:{<run>}:history``                list    the events, JSON, append-only
``<prefix>:{<run>}:state``                  hash    status, workflow, created/ended times,
                                                    ``dirty`` (events the lease holder has not
                                                    seen), ``replaying`` (a replay took the
                                                    lease and has not committed), ``cancel``,
                                                    ``outcome`` (final event)
``<prefix>:{<run>}:lease``                  string  token of the worker replaying the run (PX)
``<prefix>:{<run>}:steps``                  hash    ``done:<seq>`` (outcome recorded once),
                                                    ``attempt:<seq>`` (attempts begun),
                                                    ``failed:<seq>`` (attempts that recorded
                                                    a failure), ``inflight:<seq>``
                                                    (``q:<ms>`` queued, or the running step's
                                                    lease deadline in ms; ``c:``, ``r:``,
                                                    ``p:`` see docs), ``timer:<seq>``
                                                    (committed due time, ms), ``inbox:<seq>``
                                                    (``<kind>:<token>`` of a live webhook/hook)
``<prefix>:{<run>}:done``                   list    one item once the run has ended (waiters
                                                    block on it)
``<prefix>:{<run>}:response:<request>``     list    the workflow's answer to a webhook request
                                                    held open (``respond_with="manual"``)
``<prefix>:token:<sha256 of token>``        hash    webhook/hook token → run, seq, kind, method,
                                                    respond_with (the token itself, to compare)
``<prefix>:worker:<worker id>``             string  present while that worker's sweeper beats
                                                    (PX a lease): steps it prefetched are
                                                    marked ``c:<ms>:<worker id>``
``<prefix>:watch``                          zset    run id → when to check it for lost work (ms)
``<prefix>:runs``                           zset    run id → creation time (ms): every run
``<prefix>:runs:status:<status>``           zset    the same, for runs in that status
``<prefix>:runs:workflow:<name>``           zset    the same, for runs of that workflow
``<prefix>:runs:workflow:<name>:status:<s>`` zset   both filters at once
``<prefix>:runs:ended``                     zset    ``<status>/<workflow>/<run>`` → end time
                                                    (ms): what the retention sweep unlists
                                                    (see :mod:`.run_index`)
``<prefix>:checks``                         zset    run id → when a recovery check was sent
                                                    to a worker (ms), until it runs: at most
                                                    one on its way per run
``<prefix>:consumed``                       zset    queue name → the latest send time (ms) of
                                                    a step message from it that began: an
                                                    older message of that queue still marked
                                                    queued was lost (taken by a worker that
                                                    died before it could say so)
``<prefix>:{timers}:due``                   zset    ``<run>/<seq>/<due ms>`` → due time (ms):
                                                    sleeps not yet handed to a broker message
``<prefix>:{timers}:armed``                 zset    ``<run>/<seq>/<due ms>`` → fire-by time (ms):
                                                    sleeps with an ETA message in flight
==========================================  ======  ============================================

The global sorted sets and token keys are updated by separate, idempotent commands,
written *before* the run's commit script: a timer fires, and a request or payload is
delivered, only if the run's own ``timer:``/``inbox:`` mark (written by that script)
agrees, so an entry left by a refused commit is harmless. The two
timer sets share the hash tag ``{timers}`` so one script can move entries
between them on Redis Cluster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is usable in keys and URLs, else raise ``ValueError``."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise ValueError(
            f"run id {run_id!r} is not usable: use 1-200 characters from A-Z a-z 0-9 . _ : @ -, "
            "starting with a letter or digit (for example 'order-42')")
    return run_id


@dataclasses.dataclass(frozen=True)
class RunKeys:
    """The keys of one run, in the order the Lua scripts take them."""

    history: str
    state: str
    lease: str
    steps: str
    done: str

    def all(self) -> list[str]:
        return [self.history, self.state, self.lease, self.steps, self.done]


class KeySchema:
    """Builds key names from ``durable_key_prefix``."""

    def __init__(self, prefix: str = "durable") -> None:
        self.prefix = prefix
        self.watch = f"{prefix}:watch"
        self.runs = f"{prefix}:runs"
        self.consumed = f"{prefix}:consumed"
        self.checks = f"{prefix}:checks"
        self.timers_due = f"{prefix}:{{timers}}:due"
        self.timers_armed = f"{prefix}:{{timers}}:armed"

    def token(self, token: str) -> str:
        # Hashed: the key length is fixed and the lookup does not walk the token's text.
        return f"{self.prefix}:token:{hashlib.sha256(token.encode()).hexdigest()}"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def response(self, run_id: str, request_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:response:{request_id}"

    def run(self, run_id: str) -> RunKeys:
        base = f"{self.prefix}:{{{run_id}}}"
        return RunKeys(history=f"{base}:history", state=f"{base}:state", lease=f"{base}:lease",
                       steps=f"{base}:steps", done=f"{base}:done")
