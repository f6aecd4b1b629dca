"""Recovery bound: from a worker's SIGKILL to its cut-off step running again.

Two prefork workers. A run's only step records its start (time, pid, worker) in Redis
and blocks on a scratch file; a random moment into the step (up to half a lease), the
worker running it is SIGKILLed. The other worker's sweeper finds the step's running
deadline passed (its heartbeat stopped) and sends it again. Recovery = when the step
began again (its own write) - the kill. Docs: "about one durable_step_lease after the
worker stopped, plus a sweep interval". The bound asserted is lease + sweep interval
(the e2e app sets durable_sweep_interval = 0.2 s; the library default is 1.0 s) +
SLACK_S for the recovery message, the replay, the resend and the process start.
"""

from __future__ import annotations

import collections
import json
import random
import time
import uuid
from pathlib import Path

import pytest

from celery_durable.devstack import wait_for

from .conftest import summary

pytestmark = pytest.mark.soak

REPS = 5
SLACK_S = 1.5          # message + replay + resend + begin, on a loaded 2-core machine
SEED = 7


@pytest.mark.timeout(900)
@pytest.mark.parametrize("lease", [None, 5.0], ids=["default-lease", "lease-5s"])
def test_recovery_bound(lease, soak, proj, e2e_env, soak_workers, soak_log, report):
    from celery_durable.settings import DEFAULTS

    tag, _read = soak_log
    # tests/e2e/proj.py sets 30 s when DURABLE_TEST_LEASE is unset: the library default.
    effective = lease if lease is not None else 30.0
    assert float(DEFAULTS["durable_step_lease"]) == 30.0
    sweep_interval = float(proj.app.conf.durable_sweep_interval)
    env = {"DURABLE_TEST_LEASE": None if lease is None else str(lease)}
    scratch = Path(e2e_env["DURABLE_TEST_SCRATCH"])
    client = soak.client()
    rng = random.Random(SEED)
    workers = {}
    serial = 0

    def ensure_two() -> None:
        nonlocal serial
        while len(workers) < 2:
            label = f"rb{serial}"
            serial += 1
            workers[label] = soak_workers(label, env)

    bound = effective + sweep_interval
    recoveries, into_step, restarts = [], [], []
    for rep in range(REPS):
        ensure_two()
        name = f"rb-{uuid.uuid4().hex[:10]}"
        key = soak.starts_key(tag, name)

        def starts(n: int, key: str = key) -> list[list] | None:
            got = [json.loads(raw) for raw in client.lrange(key, 0, -1)]
            return got if len(got) >= n else None

        run = soak.soak_blocked.start(tag, name)
        (began, pid, label), = wait_for(lambda: starts(1), timeout=60,
                                        what="the step to begin")
        time.sleep(rng.uniform(0, effective / 2))  # kill at a random heartbeat phase
        victim = workers.pop(label)
        killed_at = time.time()
        victim.kill()
        second = wait_for(lambda: starts(2), timeout=bound + 60,
                          what="the cut-off step to begin again")[1]
        recoveries.append(second[0] - killed_at)
        into_step.append(killed_at - began)
        restarts.append((second[2], second[1]))
        (scratch / name).write_text(f"rep{rep}")
        assert run.result(timeout=60) == f"rep{rep}"
        events = run.events()
        completed = collections.Counter(e["seq"] for e in events
                                        if e["type"] == "step_completed")
        assert completed == {1: 1}
        attempts = [e["attempt"] for e in events if e["type"] == "step_started"]
        assert attempts == [1, 2]
        assert second[2] != label, "the step began again on the killed worker"

    over = [r - bound for r in recoveries]
    report(f"recovery bound, durable_step_lease {effective:.0f} s "
           f"({'library default' if lease is None else 'DURABLE_TEST_LEASE'}), "
           f"durable_sweep_interval {sweep_interval} s (set by the e2e app; library default "
           f"{DEFAULTS['durable_sweep_interval']} s), {REPS} kills")
    report("  killed this long into the step: " + ", ".join(f"{s:.1f}" for s in into_step))
    report("  kill -> step began again: " + ", ".join(f"{r:.2f}" for r in recoveries)
           + f" s; {summary(recoveries)}; min {min(recoveries):.2f} s")
    report(f"  bound lease + sweep interval = {bound:.1f} s; max - bound = "
           f"{max(over):+.2f} s (slack allowed {SLACK_S} s)")
    assert max(recoveries) <= bound + SLACK_S
    # Never before the step's lease can have run out (2/3 of a lease after its last beat).
    assert min(recoveries) >= effective * 2 / 3 - sweep_interval
