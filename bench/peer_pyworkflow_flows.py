"""The pyworkflow-engine workflows of ``bench/peers.py``: imported by its worker
(``PYWORKFLOW_DISCOVER=bench.peer_pyworkflow_flows``) and by its driver.

Its steps are keyed by a hash of name and arguments (a step called twice with the same
arguments runs once), so every step here gets arguments of its own.
"""

from __future__ import annotations

import asyncio

from pyworkflow import step, workflow


@step(name="bench_noop")
async def noop(i: int) -> int:
    return i


@workflow(name="bench_sequential", durable=True)
async def sequential(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@workflow(name="bench_fan_out", durable=True)
async def fan_out(n: int) -> int:
    return sum(await asyncio.gather(*(noop(i) for i in range(n))))


@workflow(name="bench_three_steps", durable=True)
async def three_steps(i: int) -> int:
    return await noop(3 * i) + await noop(3 * i + 1) + await noop(3 * i + 2)
