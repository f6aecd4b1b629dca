"""Steps and workflows of the soak runs, registered on the end-to-end app.

Workers import this module with ``celery -A tests.e2e.proj worker --include
tests.soak.proj_soak``; the test process imports it after ``e2e_env`` has set the
environment. Every step body writes what it did to Redis, under the session's key
prefix (deleted with the session's keys), so the tests count executions themselves:

* ``<prefix>:soak:<tag>:log``: one JSON entry ``[run, seq, attempt, worker, "b"|"e",
  time]`` when a body begins (``b``) and when it ends (``e``);
* ``<prefix>:soak:<tag>:starts:<name>``: ``[time, pid, worker]`` each time the
  blocking step begins.

``worker`` is the ``DURABLE_SOAK_WORKER`` label the test gave the worker process.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import redis

from celery_durable import get_step_metadata, sleep
from tests.e2e.proj import PREFIX, REDIS_URL, SCRATCH, durable

WORKER = os.environ.get("DURABLE_SOAK_WORKER", "test-process")
_clients: dict[int, redis.Redis] = {}


def client() -> redis.Redis:
    """One client per process (pool children are forked: never share a socket)."""
    pid = os.getpid()
    if pid not in _clients:
        _clients[pid] = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    return _clients[pid]


def log_key(tag: str) -> str:
    return f"{PREFIX}:soak:{tag}:log"


def starts_key(tag: str, name: str) -> str:
    return f"{PREFIX}:soak:{tag}:starts:{name}"


def _log(tag: str, kind: str) -> None:
    meta = get_step_metadata()
    entry = [meta.run_id, meta.seq, meta.attempt, WORKER, kind, time.time()]
    client().rpush(log_key(tag), json.dumps(entry))


def chain_value(x: int, seq: int) -> int:
    """What step ``seq`` of a chain returns for ``x`` (the tests compute it too)."""
    return (x * 31 + seq * 7) % 1_000_003


def expected_chain(x: int, steps: int) -> int:
    for seq in range(1, steps + 1):
        x = chain_value(x, seq)
    return x


# -- steps ---------------------------------------------------------------------------
@durable.step
def soak_step(tag: str, x: int, seq: int, seconds: float) -> int:
    """A step with a body that takes ``seconds``, logged at its beginning and end."""
    _log(tag, "b")
    time.sleep(seconds)
    _log(tag, "e")
    return chain_value(x, seq)


@durable.step
def counted(tag: str, i: int) -> int:
    _log(tag, "b")
    return i


@durable.step
def blocking(tag: str, name: str) -> str:
    """Records its start (time, pid, worker), then blocks until ``SCRATCH/name`` exists."""
    client().rpush(starts_key(tag, name), json.dumps([time.time(), os.getpid(), WORKER]))
    path = SCRATCH / name
    deadline = time.time() + 300
    while not path.exists() and time.time() < deadline:
        time.sleep(0.02)
    return path.read_text()


# -- workflows -----------------------------------------------------------------------
@durable.workflow
async def soak_chain(tag: str, x: int, steps: int, seconds: float) -> int:
    """``steps`` sequential steps, each on the previous result."""
    for seq in range(1, steps + 1):
        x = await soak_step(tag, x, seq, seconds)
    return x


@durable.workflow
async def soak_gather(tag: str, n: int) -> int:
    results = await asyncio.gather(*(counted(tag, i) for i in range(n)))
    return sum(results)


@durable.workflow
async def soak_sleeper(i: int) -> int:
    await sleep("1 day")
    return i


@durable.workflow
async def soak_blocked(tag: str, name: str) -> str:
    return await blocking(tag, name)
