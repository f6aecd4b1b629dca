"""The Celery app the end-to-end tests run in real ``celery worker`` subprocesses.

Configuration comes from the environment, so the test process and its workers
share one Redis, one key prefix and one queue that nothing else uses.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from celery import Celery

from celery_durable import (
    Durable,
    FatalError,
    HookConflictError,
    RetryableError,
    all_settled,
    as_completed,
    create_hook,
    create_webhook,
    get_step_metadata,
    get_workflow_metadata,
    now,
    patched,
    race,
    random,
    sleep,
    uuid4,
    wait,
)

REDIS_URL = os.environ.get("DURABLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("DURABLE_TEST_QUEUE", "durable-tests")
PREFIX = os.environ.get("DURABLE_TEST_PREFIX", "durable-test")
SCRATCH = Path(os.environ.get("DURABLE_TEST_SCRATCH", "/tmp/durable-test-scratch"))

# The broker may be another one than the store's Redis (a test of a broker outage).
app = Celery("proj", broker=os.environ.get("DURABLE_TEST_BROKER_URL") or REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    durable_key_prefix=PREFIX,
    durable_step_lease=float(os.environ.get("DURABLE_TEST_LEASE", "30")),
    durable_sweep_interval=0.2,
    durable_timer_horizon=float(os.environ.get("DURABLE_TEST_TIMER_HORIZON", "300")),
    durable_webhook_base_url=os.environ.get("DURABLE_TEST_WEBHOOK_BASE",
                                            "http://127.0.0.1:5000/durable"),
    durable_webhook_max_bytes=int(os.environ.get("DURABLE_TEST_WEBHOOK_MAX_BYTES", "4096")),
    durable_webhook_response_timeout=5,
    # The history store may live on a Redis Cluster of its own (the broker cannot).
    durable_redis_url=os.environ.get("DURABLE_TEST_STORE_URL") or REDIS_URL,
    durable_redis_cluster=os.environ.get("DURABLE_TEST_STORE_CLUSTER") == "1",
    durable_redis_options=json.loads(os.environ.get("DURABLE_TEST_STORE_OPTIONS") or "{}"),
    durable_replay_block_deadline=float(os.environ.get("DURABLE_TEST_BLOCK_DEADLINE", "2")),
    durable_max_lost_attempts=int(os.environ.get("DURABLE_TEST_MAX_LOST", "3")),
    durable_cache_size=int(os.environ.get("DURABLE_TEST_CACHE", "1000")),
    durable_inline_steps=int(os.environ.get("DURABLE_TEST_INLINE", "10")),
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=int(os.environ.get("DURABLE_TEST_PREFETCH", "1")),
    worker_hijack_root_logger=False,
)
durable = Durable(app)


class CardDeclined(Exception):
    """A user exception type the workflow sees again, rebuilt."""


# -- steps ---------------------------------------------------------------------
@durable.step
def validate_data(data: dict) -> str:
    return f"valid:{data['name']}"


@durable.step
def process_data(text: str) -> str:
    return text.upper()


@durable.step
async def store_data(text: str) -> str:
    await asyncio.sleep(0)
    return f"stored:{text}"


@durable.step
def add(a: int, b: int) -> int:
    return a + b


@durable.step
def noop(i: int) -> int:
    return i


@durable.step(inline=False)
def noop_sent(i: int) -> int:
    return i


@durable.step(rate_limit="1000/s")
def noop_limited(i: int) -> int:
    return i


@durable.step
def slow_echo(value: str, seconds: float) -> str:
    time.sleep(seconds)
    return value


@durable.step(max_retries=0)
def boom(message: str) -> None:
    raise CardDeclined(message)


@durable.step(max_retries=2, retry_backoff=0.05)
def flaky(key: str, fail_times: int) -> dict:
    """Fails ``fail_times`` times (counted in a scratch file), then succeeds."""
    meta = get_step_metadata()
    counter = SCRATCH / f"flaky-{key}"
    counter.parent.mkdir(parents=True, exist_ok=True)
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    if seen < fail_times:
        raise ConnectionError(f"attempt {meta.attempt} failed")
    return {"attempt": meta.attempt, "step_id": meta.step_id, "run_id": meta.run_id}


@durable.step(max_retries=5)
def fatal_step() -> None:
    raise FatalError("no point retrying")


@durable.step(max_retries=1)
def retry_after_step(key: str) -> float:
    counter = SCRATCH / f"retry-after-{key}"
    counter.parent.mkdir(parents=True, exist_ok=True)
    if not counter.exists():
        counter.write_text(str(time.time()))
        raise RetryableError("later", retry_after=0.5)
    return time.time() - float(counter.read_text())


@durable.step
def wait_for_file(name: str) -> str:
    """Blocks until a scratch file exists (the test controls when a step ends)."""
    path = SCRATCH / name
    marker = SCRATCH / f"{name}.started"
    marker.parent.mkdir(parents=True, exist_ok=True)
    with marker.open("a") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.time() + 120
    while not path.exists() and time.time() < deadline:
        time.sleep(0.02)
    return path.read_text()


# The same body with no retries: a kill must not count as its failure.
wait_once = durable.step(max_retries=0, name="tests.e2e.proj.wait_once")(wait_for_file.fn)


@durable.step(queue=f"{QUEUE}-other")
def routed() -> str:
    return "routed"


# -- workflows -----------------------------------------------------------------
@durable.workflow
async def data_pipeline(data: dict) -> str:
    validated = await validate_data(data)
    processed = await process_data(validated)
    return await store_data(processed)


@durable.workflow
async def fan_out(n: int) -> int:
    results = await asyncio.gather(*(noop(i) for i in range(n)))
    return sum(results)


@durable.workflow
async def sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@durable.workflow
async def sequential_never_inline(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop_sent(i) + await noop_limited(i)
    return total


@durable.workflow
async def gather_fail_fast() -> str:
    try:
        await asyncio.gather(add(1, 2), boom("declined"))
    except CardDeclined as exc:
        return f"caught {type(exc).__name__}: {exc}"
    return "no error"


@durable.workflow
async def settled() -> list:
    by_gather = await asyncio.gather(add(1, 1), boom("x"), return_exceptions=True)
    by_all = await all_settled(add(2, 2), boom("y"))
    return [
        [r if not isinstance(r, Exception) else type(r).__name__ for r in by_gather],
        [[s.ok, s.value, type(s.error).__name__ if s.error else None] for s in by_all],
    ]


@durable.workflow
async def racing(slow_file: str) -> dict:
    winner = await race(wait_for_file(slow_file), add(20, 22))
    return {"winner": winner}


@durable.workflow
async def tasks_and_waits() -> dict:
    background = asyncio.create_task(add(1, 1))
    future = asyncio.ensure_future(add(2, 2))
    done, pending = await wait([add(3, 3), add(4, 4)])
    ordered = [await nxt for nxt in as_completed([add(5, 5), add(6, 6)])]
    asyncio_done, _ = await asyncio.wait([asyncio.ensure_future(add(7, 7))])
    async with asyncio.TaskGroup() as group:
        t1 = group.create_task(add(8, 8))
        t2 = group.create_task(add(9, 9))
    return {
        "background": await background, "future": await future,
        "wait": sorted(f.result() for f in done), "pending": len(pending),
        "as_completed": sorted(ordered), "asyncio_wait": [f.result() for f in asyncio_done],
        "taskgroup": [t1.result(), t2.result()],
    }


@durable.workflow
async def retries(key: str) -> dict:
    return await flaky(key, 2)


@durable.workflow
async def retries_exhausted(key: str) -> dict:
    return await flaky(key, 10)


@durable.workflow
async def raiser(message: str) -> None:
    await boom(message)


@durable.workflow
async def fatal() -> str:
    await fatal_step()
    return "unreachable"


@durable.workflow
async def retry_after(key: str) -> float:
    return await retry_after_step(key)


@durable.workflow
async def deterministic() -> dict:
    meta = get_workflow_metadata()
    first = (now().isoformat(), random(), str(uuid4()))
    await add(0, 0)
    second = (now().isoformat(), random(), str(uuid4()))
    return {"run_id": meta.run_id, "name": meta.workflow_name,
            "started_at": meta.started_at.isoformat(), "first": first, "second": second}


@durable.workflow
async def cancellable(name: str) -> str:
    try:
        await wait_for_file(name)
    except asyncio.CancelledError:
        await add(1, 1)  # cleanup still runs durably
        raise
    return "finished"


@durable.workflow
async def changing(name: str) -> int:
    """Its code is made to change between replays by a scratch file (non-determinism)."""
    first = await wait_for_file(name)
    variant = (SCRATCH / f"{name}.variant").read_text() if (
        SCRATCH / f"{name}.variant").exists() else "a"
    if variant == "a":
        return await add(1, len(first))
    return await noop(99)


@durable.workflow
async def uses_routed() -> str:
    return await routed()


@durable.workflow
async def bad_argument() -> str:
    await add(object(), 1)  # refused at the call site
    return "unreachable"


@durable.workflow
async def kill_me(name: str) -> str:
    first = await add(1, 2)
    second = await wait_for_file(name)
    return f"{first}:{second}"


@durable.workflow
async def kill_me_once(name: str) -> str:
    first = await add(1, 2)
    second = await wait_once(name)
    return f"{first}:{second}"


@durable.workflow
async def sleeper(seconds: float) -> dict:
    from celery_durable import sleep

    before = now()
    await sleep(seconds)
    await asyncio.sleep(0.2)
    try:
        await asyncio.wait_for(slow_echo("late", 1.5), timeout=0.3)
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    return {"slept": (now() - before).total_seconds(), "timed_out": timed_out}


@durable.workflow
async def long_sleeper() -> str:
    from celery_durable import sleep

    await sleep("1 day")
    return "awake"


@durable.workflow
async def blocks_forever() -> int:
    """Workflow code that blocks (as a socket read without a timeout would): the
    replay watchdog must interrupt it at durable_replay_block_deadline."""
    first = await add(1, 1)
    try:
        time.sleep(3600)
    except Exception:  # noqa: BLE001 - must not swallow the interrupt
        time.sleep(3600)
    return first


@durable.workflow
async def slow_replay(name: str) -> int:
    """The first replay after its step completes hangs (so a test can kill it there)."""
    first = await add(1, 1)
    marker = SCRATCH / f"{name}.replaying"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)  # killed here
    return first + await add(2, 2)


@durable.step(max_retries=1)
def crash(key: str) -> str:
    """Kills its worker process the first times it runs (counted in a scratch file)."""
    counter = SCRATCH / f"crash-{key}"
    counter.parent.mkdir(parents=True, exist_ok=True)
    seen = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(seen + 1))
    os._exit(1)


@durable.workflow
async def crashing(key: str) -> str:
    return await crash(key)


@durable.workflow
async def one_arg(x: int) -> int:
    return await add(x, 1)


# -- webhooks and hooks ------------------------------------------------------------
@durable.step
def publish(kind: str, value: str) -> str:
    """Stands for "send the URL to someone": the test reads it from a scratch file."""
    path = SCRATCH / f"{kind}-{get_step_metadata().run_id}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)
    return value


def _describe(request) -> dict:
    try:
        body = request.json()
    except ValueError:
        body = {"bad json": request.text}
    return {"method": request.method, "body": body, "x": request.headers.get("x-test"),
            "args": dict(request.args)}


@durable.workflow
async def webhook_once(method: str | None = None) -> dict:
    webhook = create_webhook(method=method)
    await publish("url", webhook.url)
    return _describe(await webhook)


@durable.workflow
async def webhook_static() -> dict:
    webhook = create_webhook(respond_with=(200, {"thanks": True}, {"X-Reply": "static"}))
    await publish("url", webhook.url)
    return _describe(await webhook)


@durable.workflow
async def webhook_manual() -> str:
    webhook = create_webhook(respond_with="manual")
    await publish("url", webhook.url)
    request = await webhook
    answer = await add(40, 2)
    await request.respond(201, {"answer": answer, "got": request.json()}, {"X-Flow": "manual"})
    return "responded"


@durable.workflow
async def webhook_many(count: int) -> list:
    seen = []
    with create_webhook() as webhook:
        await publish("url", webhook.url)
        async for request in webhook:
            seen.append(request.json()["n"])
            if len(seen) == count:
                break
    await publish("disposed", "yes")
    await sleep(0.5)  # the run stays alive: requests to the disposed URL get 404
    return seen


@durable.workflow
async def webhook_deadline(deadline: float) -> str:
    webhook = create_webhook()
    await publish("url", webhook.url)
    winner = await race(webhook, sleep(deadline))
    return "webhook" if winner is not None else "deadline"


@durable.workflow
async def hook_wait(token: str) -> dict:
    try:
        hook = create_hook(token)
        await publish("hook", hook.token)
        first = await hook
    except HookConflictError as exc:
        return {"conflict": str(exc)}
    return {"payload": first}


@durable.workflow
async def two_payloads(token: str) -> list:
    seen = []
    async for payload in create_hook(token):
        seen.append(payload)
        if len(seen) == 2:
            return seen
    return seen


@durable.workflow
async def hook_random() -> dict:
    hook = create_hook()
    await publish("hook", hook.token)
    return {"payload": await hook}


@durable.workflow
async def hook_twice(token: str) -> list:
    seen = []
    for round_ in range(2):
        with create_hook(token) as hook:
            await publish(f"hook{round_}", hook.token)
            seen.append(await hook)
    return seen


@durable.workflow
async def three_waits(name: str) -> list:
    return list(await asyncio.gather(*(wait_for_file(f"{name}-{i}") for i in range(3))))


# -- redrive ---------------------------------------------------------------------
@durable.step
def counted(key: str) -> str:
    """Appends a line to a scratch file each time it runs (the side channel)."""
    path = SCRATCH / f"{key}.runs"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write("ran\n")
    return f"counted:{key}"


@durable.step(max_retries=0)
def broken_until_fixed(key: str) -> str:
    if (SCRATCH / f"{key}.broken").exists():
        raise ConnectionError(f"{key}: the service is down")
    return "fixed"


@durable.workflow
async def redrivable(key: str, mode: str) -> str:
    first = await counted(key)
    if mode == "step":
        second = await broken_until_fixed(key)
    elif mode == "code":
        if (SCRATCH / f"{key}.bug").exists():
            raise ValueError(f"{key}: a bug in workflow code")
        second = "no bug"
    else:  # "nondeterminism": the code's variant decides the second command
        variant_file = SCRATCH / f"{key}.variant"
        variant = variant_file.read_text() if variant_file.exists() else "a"
        second = await (wait_for_file(key) if variant == "a" else add(1, 1))
    return f"{first}+{second}"


# -- a deploy of patched code ----------------------------------------------------
#: Which version of the code this process runs (workers are restarted on another).
CODE = os.environ.get("DURABLE_TEST_CODE", "patched")


@durable.step
def charge_v2(key: str) -> str:
    return f"v2:{key}"


@durable.workflow
async def checkout(key: str) -> str:
    await add(1, 1)
    if CODE == "old":
        fee = await wait_for_file(key)
    elif patched("fee-v2"):
        fee = await charge_v2(key)
    else:
        fee = await wait_for_file(key)
    return f"fee={fee}"


# -- child runs ------------------------------------------------------------------
@durable.workflow
async def child_double(x: int) -> dict:
    return {"value": await add(x, x), "parent": get_workflow_metadata().parent_run_id}


@durable.workflow
async def parent_of_children(n: int) -> list:
    return list(await asyncio.gather(*(child_double(i) for i in range(n))))


@durable.workflow
async def parent_catches(message: str) -> str:
    try:
        await raiser(message)
    except CardDeclined as exc:
        return f"caught {type(exc).__name__}: {exc}"
    return "not caught"


@durable.workflow
async def parent_of_waiting_child(token: str) -> dict:
    return await hook_wait(token)


@durable.workflow
async def parent_detaches(x: int) -> str:
    return child_double.start(x)


@durable.workflow
async def parent_of_killed_child(name: str) -> str:
    return await kill_me(name)


@durable.workflow
async def two_slow(i: int) -> str:
    first = await slow_echo(str(i), 0.05)
    return first + await slow_echo("+", 0.05)
