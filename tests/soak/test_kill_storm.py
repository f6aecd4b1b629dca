"""Kill storm: 1,000 runs of a 5-step chain while workers are SIGKILLed one after another.

Two prefork workers (``-c 2``, prefetch 1, a 5 s lease). While the runs are in flight a
random worker is SIGKILLed every few seconds and a replacement started (two stay
alive), ``KILLS`` times. Every run must end with the right result, none lost, each
step's outcome recorded once; step bodies may run more than once (at-least-once).
"""

from __future__ import annotations

import collections
import itertools
import math
import random
import time
from typing import Any

import pytest

from .conftest import run_histories, run_statuses, summary

pytestmark = pytest.mark.soak

RUNS, STEPS, KILLS = 1000, 5, 8
STEP_SECONDS = 0.05       # each body sleeps this long: kills land mid-body
LEASE = 5.0
PAUSE_S = (1.0, 3.0)      # between a replacement being ready and the next kill
DEADLINE_S = 480.0        # runs not ended this long after the first start count as stuck
STALL_S = 120.0           # or when no run ends for this long: the rest are lost
# Each run holds one step message at a time, and at most one recovery check should be
# queued for it: a queue longer than this is the sweeper multiplying its checks.
QUEUE_LIMIT = 2 * RUNS + 100
SEED = 20240601


def _recoveries(kills: list[tuple[float, str, int]], log: list[list[Any]],
                completed_at: dict[tuple[str, int], float]
                ) -> list[tuple[int, list[float], int]]:
    """For each kill: (cut-off steps, their recovery times, cut-off steps not seen again).

    A step is cut off by a kill if its body began on the killed worker before the kill
    and its outcome was recorded after it (or never). It recovers when it begins again
    after the kill, or when the next step of its run begins."""
    begins: dict[tuple[str, int], list[tuple[float, str]]] = collections.defaultdict(list)
    for run_id, seq, _attempt, worker, kind, at in log:
        if kind == "b":
            begins[(run_id, int(seq))].append((float(at), worker))
    out = []
    for killed_at, label, _ended in kills:
        times, unseen, cut = [], 0, 0
        for (run_id, seq), seen in begins.items():
            if not any(w == label and t < killed_at for t, w in seen):
                continue
            if completed_at.get((run_id, seq), math.inf) <= killed_at:
                continue
            cut += 1
            later = [t for t, _ in seen + begins.get((run_id, seq + 1), []) if t > killed_at]
            if later:
                times.append(min(later) - killed_at)
            else:
                unseen += 1
        out.append((cut, times, unseen))
    return out


@pytest.mark.timeout(1500)
def test_kill_storm(soak, proj, soak_workers, soak_log, report):
    tag, read_log = soak_log
    store = proj.durable.runtime.store
    env = {"DURABLE_TEST_LEASE": str(LEASE), "DURABLE_TEST_PREFETCH": "1"}
    rng = random.Random(SEED)
    labels = (f"storm{i}" for i in itertools.count())
    alive = [soak_workers(next(labels), env) for _ in range(2)]
    every = list(alive)

    t0 = time.monotonic()
    runs = [soak.soak_chain.start(tag, x, STEPS, STEP_SECONDS) for x in range(RUNS)]
    started_s = time.monotonic() - t0
    ids = [run.id for run in runs]

    peak = [0]

    def ended() -> int:
        peak[0] = max(peak[0], int(store.client.llen(queue)))
        return sum(s != "running" for s in run_statuses(store, ids))

    kills: list[tuple[float, str, int]] = []  # (when, worker label, runs ended by then)
    restart_s: list[float] = []
    backlog: list[int] = []  # messages waiting in the queue at each kill
    queue = proj.app.conf.task_default_queue
    while len(kills) < KILLS:
        time.sleep(rng.uniform(*PAUSE_S))  # pacing between kills, not a wait on a condition
        done = ended()
        if done == RUNS:
            break
        victim = rng.choice(alive)
        backlog.append(int(store.client.llen(queue)))
        killed_at = time.time()
        victim.kill()
        kills.append((killed_at, victim.label, done))
        alive.remove(victim)
        began = time.monotonic()
        alive.append(soak_workers(next(labels), env))
        every.append(alive[-1])
        restart_s.append(time.monotonic() - began)

    # Drain: wait until every run has ended, failing when none ends for STALL_S.
    last_count, last_change = ended(), time.monotonic()
    while last_count < RUNS and time.monotonic() - last_change < STALL_S \
            and time.monotonic() - t0 < DEADLINE_S:
        time.sleep(0.5)
        count = ended()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
    total_s = time.monotonic() - t0
    checks = sum(w.log.read_text(errors="replace").count("sending it to a worker")
                 for w in every)  # the sweeper's INFO line for each check it sends

    events = run_histories(store, ids)
    right, wrong, lost = 0, [], []
    duplicates = 0
    completed_at: dict[tuple[str, int], float] = {}
    for x, run in enumerate(runs):
        history = events[run.id]
        per_seq = collections.Counter(e["seq"] for e in history
                                      if e["type"] == "step_completed")
        duplicates += sum(n - 1 for n in per_seq.values() if n > 1)
        for e in history:
            if e["type"] == "step_completed":
                completed_at.setdefault((run.id, int(e["seq"])), float(e["at"]))
        end = [e for e in history if e["type"].startswith("run_") and e["type"] != "run_started"]
        if not end:
            lost.append(run)
        elif end[0]["type"] == "run_completed" and \
                end[0].get("result") == soak.expected_chain(x, STEPS):
            right += 1
        else:
            wrong.append((run.id, end[0]))

    log = read_log()
    bodies = collections.Counter((r, int(s)) for r, s, _a, _w, kind, _t in log if kind == "b")
    again = sum(1 for n in bodies.values() if n > 1)
    extra = sum(n - 1 for n in bodies.values() if n > 1)
    per_kill = _recoveries(kills, log, completed_at)
    worst_per_kill = [max(times) for _cut, times, _u in per_kill if times]
    every_cut = [t for _cut, times, _u in per_kill for t in times]

    report(f"kill storm: {RUNS} runs x {STEPS} steps ({RUNS * STEPS} steps, body "
           f"{STEP_SECONDS * 1000:.0f} ms), 2 workers prefork -c 2, prefetch 1, lease "
           f"{LEASE:.0f} s, seed {SEED}")
    report(f"  start() of {RUNS} runs: {started_s:.1f} s; kills: {len(kills)} "
           f"(replacement ready in {summary(restart_s)})")
    for i, ((_at, label, done), (cut, times, unseen), waiting) in enumerate(
            zip(kills, per_kill, backlog, strict=True), 1):
        worst = f"{max(times):.2f} s" if times else "-"
        report(f"  kill {i}: {label}, {RUNS - done} runs in flight, {waiting} messages queued; "
               f"{cut} steps cut off, recovered in max {worst}"
               + (f", {unseen} not seen again" if unseen else ""))
    report(f"  runs completed with the right result: {right}/{RUNS}; lost (not ended after "
           f"{total_s:.0f} s) {len(lost)}; wrong {len(wrong)}; queue at the end "
           f"{store.client.llen(queue)}")
    report(f"  duplicate step_completed: {duplicates}; step bodies begun more than once: "
           f"{again} ({extra} extra executions, {sum(bodies.values())} in all)")
    report(f"  queue: peak {peak[0]} messages (limit {QUEUE_LIMIT}); recovery checks sent by "
           f"the sweepers: {checks} ({checks / RUNS:.1f} per run)")
    report(f"  total {total_s:.1f} s, throughput {RUNS / total_s:.1f} runs/s "
           f"({RUNS * STEPS / total_s:.0f} steps/s)")
    report(f"  recovery per kill (worst cut-off step of each kill): {summary(worst_per_kill)}")
    report(f"  recovery over all cut-off steps: {summary(every_cut)} (a lease, then the "
           f"resent step waits behind the queued messages: FIFO)")
    for run in lost[:3]:
        report(f"  not ended: {run.id}: {run.waiting_on()}; marks "
               f"{ {k: v for k, v in store.step_fields(run.id).items() if 'inflight' in k} }")

    assert len(kills) == KILLS, "the runs ended before all the kills: make the storm longer"
    assert all(done < RUNS for _at, _label, done in kills)
    assert lost == [], f"{len(lost)} runs never ended (no run ended for {STALL_S:.0f}s, " \
        f"or {DEADLINE_S:.0f}s passed)"
    assert wrong == []
    assert right == RUNS
    assert duplicates == 0
    assert sum(cut for cut, _t, _u in per_kill) > 0, "no kill cut a step off"
    assert peak[0] <= QUEUE_LIMIT, "recovery checks piled up in the queue"
