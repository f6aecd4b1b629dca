"""Gather of 2,000: one run awaiting ``asyncio.gather`` of 2,000 steps, on two workers.

Every step's outcome is recorded once (one ``step_completed`` per seq) and the run
returns the sum; bodies that ran more than once are counted (at-least-once).
"""

from __future__ import annotations

import collections
import time

import pytest

pytestmark = pytest.mark.soak

N = 2000


@pytest.mark.timeout(900)
def test_gather_of_two_thousand(soak, proj, soak_workers, soak_log, report):
    tag, read_log = soak_log
    store = proj.durable.runtime.store
    for label in ("gather0", "gather1"):
        soak_workers(label)

    t0 = time.monotonic()
    run = soak.soak_gather.start(tag, N)
    result = run.result(timeout=600)
    elapsed = time.monotonic() - t0

    events = store.events(run.id)
    kinds = collections.Counter(e["type"] for e in events)
    completed = collections.Counter(e["seq"] for e in events if e["type"] == "step_completed")
    scheduled = {e["seq"] for e in events if e["type"] == "step_scheduled"}
    log = read_log()
    bodies = collections.Counter(int(seq) for _r, seq, _a, _w, _k, _t in log)
    by_worker = collections.Counter(worker for _r, _s, _a, worker, _k, _t in log)
    first_begin = min(float(t) for *_, t in log)
    last_done = max(float(e["at"]) for e in events if e["type"] == "step_completed")
    started_at = float(events[0]["at"])

    report(f"gather of {N}: one run, asyncio.gather of {N} steps; 2 workers prefork -c 2")
    report(f"  start -> result {elapsed:.1f} s ({N / elapsed:.0f} steps/s); in the history: "
           f"first body {first_begin - started_at:.1f} s after run_started, last "
           f"step_completed {last_done - started_at:.1f} s after")
    report(f"  history: {len(events)} events ({dict(kinds)})")
    report(f"  step_completed once per seq: {sum(n == 1 for n in completed.values())}/{N}; "
           f"more than once: {sum(n > 1 for n in completed.values())}; bodies run "
           f"{sum(bodies.values())} times ({sum(n > 1 for n in bodies.values())} more than "
           f"once); by worker {dict(by_worker)}")

    assert result == sum(range(N))
    assert len(scheduled) == N
    assert completed == {seq: 1 for seq in scheduled}
    assert set(bodies) == scheduled
