"""Soak fixtures: workers of the end-to-end app that also import the soak steps, and
a way to print figures that shows in ``make soak`` output whatever ``-s`` says.

Soak tests run only when the marker expression selects them (``make soak``: ``-m
soak``); a plain ``pytest`` / ``make test`` skips them, since nothing else keeps them
out of the default run.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from celery_durable.devstack import WorkerProcess, wait_until
from tests.e2e import conftest as _e2e
from tests.support.shared_workers import stop_shared_workers

# The end-to-end session fixtures, visible to the soak tests too (a sibling directory).
e2e_env = _e2e.e2e_env
proj = _e2e.proj
ROOT = _e2e.ROOT

FIGURES: list[str] = []
DRAIN_S = 120.0  # at most this long for a test's workers to empty the queues after it


def _selects_soak(markexpr: str) -> bool:
    if not markexpr.strip():
        return False
    try:
        from _pytest.mark.expression import Expression

        return bool(Expression.compile(markexpr).evaluate(lambda name, **_: name == "soak"))
    except Exception:  # noqa: BLE001 - a pytest without that module: a plain reading
        return "soak" in markexpr and "not soak" not in markexpr


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _selects_soak(config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="soak test: run with `make soak` (pytest -m soak)")
    here = Path(__file__).parent  # this hook sees every item: keep to this directory's
    for item in items:
        if item.get_closest_marker("soak") is not None and here in Path(item.path).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("soak figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``report(line)``: printed, shown live on the terminal, and repeated in the
    "soak figures" section at the end of the session."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    name = request.node.name

    def write(line: str) -> None:
        print(line, flush=True)
        FIGURES.append(f"[{name}] {line}")
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(line)
        else:
            reporter.write_line(line)

    return write


def _stop_e2e_shared_worker() -> None:
    """If e2e tests ran earlier in this session, their shared worker consumes the same
    queue: stop it (as ``start_worker`` does), so every message reaches our workers."""
    stop_shared_workers()


@pytest.fixture
def soak(proj: Any) -> Any:
    """The soak module, imported in the test process (after ``e2e_env``)."""
    from tests.soak import proj_soak

    return proj_soak


@pytest.fixture
def soak_workers(e2e_env: dict[str, str], tmp_path: Path,
                 soak: Any) -> Iterator[Callable[..., WorkerProcess]]:
    """``start(label, extra_env=None, concurrency=2)``: a prefork worker on the session's
    queues, ready; its step bodies log ``label``; an ``extra_env`` value of None unsets
    that variable. All stopped at teardown."""
    _stop_e2e_shared_worker()
    workers: list[WorkerProcess] = []
    queue = e2e_env["DURABLE_TEST_QUEUE"]

    def start(label: str, extra_env: dict[str, str | None] | None = None,
              concurrency: int = 2) -> WorkerProcess:
        merged = dict(e2e_env, DURABLE_SOAK_WORKER=label, **(extra_env or {}))
        env = {k: v for k, v in merged.items() if v is not None}  # None: unset it
        worker = WorkerProcess("tests.e2e.proj", tmp_path / f"{label}.log",
                               queues=[queue, f"{queue}-other"], concurrency=concurrency,
                               pool="prefork", env=env, cwd=ROOT,
                               hostname=f"{label}-{queue}@%h",
                               extra_args=["--include", "tests.soak.proj_soak"])
        workers.append(worker)
        worker.label = label  # type: ignore[attr-defined]
        worker.wait_ready(timeout=90)
        return worker

    yield start
    # Let the workers drain what is left (the sweeper's re-checks of ended runs, stray
    # copies) so the next test starts on empty queues; drop the rest (our keys only).
    client = redis.Redis.from_url(e2e_env["DURABLE_TEST_REDIS_URL"])
    names = [name for q in (queue, f"{queue}-other") for name in queue_keys(q)]

    def drained() -> bool:
        return not any(w.alive() for w in workers) or not sum(client.llen(n) for n in names)

    wait_until(drained, DRAIN_S, interval_s=0.5)
    for worker in workers:
        worker.stop()
    client.delete(*names)
    problems = [line for w in workers for line in w.problems(10)
                if "Traceback" in line or "CRITICAL" in line]
    if problems:
        print("worker log problems:\n" + "\n".join(problems))


@pytest.fixture
def soak_log(soak: Any, proj: Any) -> Iterator[tuple[str, Callable[[], list[list[Any]]]]]:
    """``(tag, read)``: a tag for this test's step logs, and a reader of its log entries.
    Deletes the test's soak keys afterwards."""
    import uuid

    tag = uuid.uuid4().hex[:8]
    client = soak.client()

    def read() -> list[list[Any]]:
        return [json.loads(raw) for raw in client.lrange(soak.log_key(tag), 0, -1)]

    yield tag, read
    keys = list(client.scan_iter(match=f"{soak.PREFIX}:soak:{tag}:*", count=1000))
    if keys:
        client.delete(*keys)


def summary(values: list[float]) -> str:
    """``median m s, max x s (n)`` of a list of seconds."""
    if not values:
        return "none"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def run_statuses(store: Any, run_ids: list[str]) -> list[str]:
    """The ``status`` of each run (one pipelined read)."""
    pipe = store.client.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hget(store.keys.run(run_id).state, "status")
    return [str(s) for s in pipe.execute()]


def run_histories(store: Any, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each run's history, as the store holds it (``at`` in UNIX seconds)."""
    from celery_durable import codec

    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(0, len(run_ids), 200):
        chunk = run_ids[i:i + 200]
        pipe = store.client.pipeline(transaction=False)
        for run_id in chunk:
            pipe.lrange(store.keys.run(run_id).history, 0, -1)
        for run_id, raw in zip(chunk, pipe.execute(), strict=True):
            out[run_id] = [codec.loads(item) for item in raw]
    return out


# -- measuring (kombu's Redis transport; /proc) -----------------------------------------
def queue_keys(queue: str) -> list[str]:
    """The lists kombu keeps for one queue (priorities 3/6/9 in sibling lists)."""
    return [queue] + [f"{queue}\x06\x16{n}" for n in (3, 6, 9)]


def unacked_of(client: Any, queue: str) -> dict[str, str]:
    """Entries of kombu's shared ``unacked`` hash routed to ``queue``: tag -> task name."""
    ours = {}
    for tag, raw in client.hscan_iter("unacked", count=1000):
        try:
            message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if routing_key == queue:
            key = tag.decode() if isinstance(tag, bytes) else str(tag)
            ours[key] = str((message.get("headers") or {}).get("task"))
    return ours


def tree_rss_kib(pid: int) -> list[int]:
    """RSS (KiB) of ``pid`` and each of its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                out += [int(line.split()[1]) for line in fh if line.startswith("VmRSS:")]
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out
