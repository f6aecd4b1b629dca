"""The pyworkflow-engine driver of ``bench/peers.py``; runs in ``bench/.peers/pyworkflow/``.

Its worker is a real ``celery -A pyworkflow.celery.app worker`` (started by
``bench/peers.py``, prefork ``-c 2``, prefetch 1) on the bench's Redis; its event log is
the SQLite file ``$PYWORKFLOW_STORAGE_PATH`` (its default store), shared with this
driver. A run is started with ``pyworkflow.start`` (celery runtime) and waited for by
polling ``get_workflow_run`` (pyworkflow has no blocking wait): every 20 ms while one run
is pending, one sweep over the pending runs every 50 ms for many.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyworkflow  # noqa: E402
from pyworkflow import get_workflow_run, start  # noqa: E402
from pyworkflow.serialization.decoder import deserialize  # noqa: E402

from bench import peer_pyworkflow_flows as flows  # noqa: E402
from bench.peer_serve import check, serve  # noqa: E402

DONE = {"completed", "failed", "cancelled", "interrupted"}
TIMEOUT_S = 1800.0


def value(raw: Any) -> Any:
    result = deserialize(raw) if isinstance(raw, str) else raw
    return result[0] if isinstance(result, list) and len(result) == 1 else result


async def wait(run_ids: list[str]) -> dict[str, Any]:
    """Poll until every run ended; run id -> result. Raises on a failed run or timeout."""
    pending, results = list(run_ids), {}
    deadline = time.monotonic() + TIMEOUT_S
    interval = 0.02 if len(run_ids) == 1 else 0.05
    while pending:
        still = []
        for run_id in pending:
            run = await get_workflow_run(run_id)
            status = run.status.value if run is not None else "pending"
            if status not in DONE:
                still.append(run_id)
            elif status != "completed":
                raise RuntimeError(f"run {run_id} ended {status}: {getattr(run, 'error', '')}")
            else:
                results[run_id] = value(run.result)
        pending = still
        if pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} runs still pending after {TIMEOUT_S:.0f}s")
            await asyncio.sleep(interval)
    return results


async def one(fn: Any, n: int) -> Any:
    run_id = await start(fn, n)
    return (await wait([run_id]))[run_id]


async def many(n: int) -> None:
    run_ids = [await start(flows.three_steps, i) for i in range(n)]
    results = await wait(run_ids)
    for i, run_id in enumerate(run_ids):
        check(results[run_id], 9 * i + 3, "three_steps")


def main() -> None:
    loop = asyncio.new_event_loop()
    loop.run_until_complete(pyworkflow.get_storage().connect())

    def run_sequential(n: int) -> None:
        check(loop.run_until_complete(one(flows.sequential, n)), sum(range(n)),
              f"sequential({n})")

    def run_gather(n: int) -> None:
        check(loop.run_until_complete(one(flows.fan_out, n)), sum(range(n)), f"fan_out({n})")

    def run_throughput(n: int) -> None:
        loop.run_until_complete(many(n))

    serve({"sequential": run_sequential, "gather": run_gather, "throughput": run_throughput})


if __name__ == "__main__":
    main()
