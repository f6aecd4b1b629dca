"""The Celery app the benchmark runs in one real ``celery worker`` subprocess.

Configuration comes from the environment (set by ``bench/harness.py``), so the driver
and its worker share one Redis, one key prefix and one queue nothing else uses. With
``$BENCH_RTT_DIR`` set, the worker counts its Redis round trips (``bench/rtt.py``).
"""

from __future__ import annotations

import asyncio
import os

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from celery_durable import Durable, now, sleep  # now, sleep: for bench/sleeps.py

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TAG = os.environ.get("BENCH_TAG", "durable-bench")
RESULT_TAG = os.environ.get("BENCH_RESULT_TAG", TAG)  # a second worker's results, seen by us

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=TAG,
    durable_redis_url=REDIS_URL,
    durable_key_prefix=TAG,
    result_backend=REDIS_URL,
    # Result keys ("celery-task-meta-...") go under the tag too, so cleanup finds them.
    result_backend_transport_options={"global_keyprefix": f"{RESULT_TAG}-"},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=1,  # the README's advice; canvas and durable alike
)
durable = Durable(app)

RTT_DIR = os.environ.get("BENCH_RTT_DIR")
if RTT_DIR:
    from bench import rtt

    rtt.install(RTT_DIR)

    def _count_store(**_: object) -> None:
        rtt.register(durable.runtime.store.client.connection_pool)  # type: ignore[attr-defined]

    worker_process_init.connect(_count_store, weak=False)  # each pool child
    worker_ready.connect(_count_store, weak=False)  # the main process (its sweeper)


@app.task
def noop_task(i: int) -> int:
    return i


@durable.step
def noop(i: int) -> int:
    return i


@durable.workflow
async def sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@durable.step(inline=False)
def noop_sent(i: int) -> int:
    """``noop`` that always goes through the broker (the default path, no inlining)."""
    return i


@durable.workflow
async def sequential_sent(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop_sent(i)
    return total


@durable.workflow
async def fan_out(n: int) -> int:
    results = await asyncio.gather(*(noop(i) for i in range(n)))
    return sum(results)


@durable.workflow
async def one_step(i: int) -> int:
    """A child run of one step (the child fan-out case)."""
    return await noop(i)


@durable.workflow
async def child_fan_out(n: int) -> int:
    """``asyncio.gather`` of ``n`` child runs of one step each."""
    results = await asyncio.gather(*(one_step(i) for i in range(n)))
    return sum(results)


@durable.workflow
async def three_steps(i: int) -> int:
    """Three steps one after the other (the throughput case); returns 9 * i + 3."""
    return await noop(3 * i) + await noop(3 * i + 1) + await noop(3 * i + 2)


# -- bench/sleeps.py ---------------------------------------------------------------


@durable.workflow
async def timed_sleep(seconds: float) -> float:
    """Sleep ``seconds`` durably; return the workflow clock (UNIX s) read just before."""
    before = now().timestamp()
    await sleep(seconds)
    return before


@durable.workflow
async def day_sleep() -> None:
    """Sleep one day: past the timer horizon, so no broker message is held meanwhile."""
    await sleep("1 day")
