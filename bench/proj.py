"""The Celery app the benchmark runs in one real ``celery worker`` subprocess.

Configuration comes from the environment (set by ``bench/run.py``), so the driver
and its worker share one Redis, one key prefix and one queue nothing else uses.
"""

from __future__ import annotations

import asyncio
import os

from celery import Celery

from celery_durable import Durable, now, sleep  # now, sleep: for bench/sleeps.py

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TAG = os.environ.get("BENCH_TAG", "durable-bench")

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=TAG,
    durable_redis_url=REDIS_URL,
    durable_key_prefix=TAG,
    result_backend=REDIS_URL,
    # Result keys ("celery-task-meta-...") go under the tag too, so cleanup finds them.
    result_backend_transport_options={"global_keyprefix": f"{TAG}-"},
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
durable = Durable(app)


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


@durable.workflow
async def fan_out(n: int) -> int:
    results = await asyncio.gather(*(noop(i) for i in range(n)))
    return sum(results)


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
