"""10,000 sleepers: runs of ``sleep("1 day")`` cost no broker message and no worker memory.

A day is past the 5 min ``durable_timer_horizon``, so every timer waits in
``<prefix>:{timers}:due`` with no ETA message: kombu's ``unacked`` hash holds none
of this session's messages, and the worker's RSS stays bounded (it caches at most
``durable_cache_size`` replayers per process). Then every run is woken
(``run.wake_up()``): all wake, none before it was woken, none twice.
"""

from __future__ import annotations

import collections
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import queue_keys, run_histories, run_statuses, tree_rss_kib, unacked_of

pytestmark = pytest.mark.soak

SLEEPERS = 10_000
SETTLE_S = 30.0            # after all are scheduled, and the sweeper's re-check pass
SCHEDULE_DEADLINE_S = 900.0
RSS_SETTLE_LIMIT_MIB = 24  # growth allowed while settling (nothing new runs then)
RSS_LIMIT_MIB = 400        # growth allowed for all 10,000 (bounded by the replay cache)


@pytest.mark.timeout(2400)
def test_ten_thousand_sleepers(soak, proj, e2e_env, soak_workers, report):
    store = proj.durable.runtime.store
    client = store.client
    queues = [e2e_env["DURABLE_TEST_QUEUE"], e2e_env["DURABLE_TEST_QUEUE"] + "-other"]
    worker = soak_workers("sleepers")
    pid = worker.process.pid

    leftover: set[str] = set()  # left in kombu's ``unacked`` by workers earlier tests killed

    def unacked() -> list[str]:
        """The task names of this test's messages in kombu's ``unacked`` hash."""
        return [task for q in queues for tag, task in unacked_of(client, q).items()
                if tag not in leftover]

    def snapshot() -> dict:
        due, armed = store.timer_counts()
        each = tree_rss_kib(pid)
        rss = sum(each)
        return {"due": due, "armed": armed, "rss": rss / 1024, "each": each,
                "unacked": unacked(),
                "queue": sum(int(client.llen(k)) for q in queues for k in queue_keys(q)),
                "watch": int(client.zcard(store.keys.watch))}

    def show(name: str, s: dict) -> None:
        report(f"  {name:<15} RSS {s['rss']:6.1f} MiB "
               f"({' + '.join(f'{k / 1024:.1f}' for k in s['each'])}); timers due/armed "
               f"{s['due']}/{s['armed']}; unacked ours {len(s['unacked'])} "
               f"({sum('fire_timer' in t for t in s['unacked'])} timers); queue {s['queue']}; "
               f"watch {s['watch']}")

    leftover.update(tag for q in queues for tag in unacked_of(client, q))
    before = snapshot()
    t0 = time.monotonic()
    runs = [soak.soak_sleeper.start(i) for i in range(SLEEPERS)]
    start_s = time.monotonic() - t0
    ids = [run.id for run in runs]

    deadline = t0 + SCHEDULE_DEADLINE_S
    while sum(store.timer_counts()) - before["due"] - before["armed"] < SLEEPERS:
        assert time.monotonic() < deadline, f"not all scheduled: {store.timer_counts()}"
        assert worker.alive(), worker.tail()
        time.sleep(0.2)
    schedule_s = time.monotonic() - t0
    scheduled = snapshot()
    # Settle: the sweeper re-checks each run a lease after it started; wait for that
    # pass to drain (the queue empty) and SETTLE_S more.
    settle_end = time.monotonic() + SETTLE_S
    while time.monotonic() < settle_end or snapshot()["queue"]:
        assert time.monotonic() < deadline + SETTLE_S, "the queue never drained"
        time.sleep(0.5)
    settled = snapshot()
    early = [s for s in run_statuses(store, ids) if s != "running"]

    woken_at: dict[str, float] = {}

    def wake(run) -> int:
        woken_at[run.id] = time.time()
        return run.wake_up()

    t1 = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        fired_now = list(pool.map(wake, runs))
    wake_s = time.monotonic() - t1
    end_deadline = time.monotonic() + 900
    while (ended := sum(s != "running" for s in run_statuses(store, ids))) < SLEEPERS:
        assert time.monotonic() < end_deadline, f"only {ended} of {SLEEPERS} runs ended"
        time.sleep(0.5)
    all_done_s = time.monotonic() - t1
    finished = snapshot()

    histories = run_histories(store, ids)
    fired_counts = collections.Counter()
    fired_early, wrong = 0, 0
    for i, run in enumerate(runs):
        events = histories[run.id]
        fired = [e for e in events if e["type"] == "timer_fired"]
        fired_counts[len(fired)] += 1
        fired_early += sum(float(e["at"]) < woken_at[run.id] or not e.get("woken")
                           for e in fired)
        end = events[-1]
        wrong += not (end["type"] == "run_completed" and end.get("result") == i)

    report(f"10,000 sleepers: {SLEEPERS} runs of sleep('1 day'); 1 worker prefork -c 2; "
           f"timer horizon {proj.app.conf.durable_timer_horizon:.0f} s")
    report(f"  start() loop {start_s:.1f} s ({SLEEPERS / start_s:.0f} runs/s); all timers "
           f"scheduled {schedule_s:.1f} s after the first start "
           f"({SLEEPERS / schedule_s:.0f} runs/s)")
    show("before", before)
    show("all scheduled", scheduled)
    show("settled", settled)
    show("all woke", finished)
    settle_growth = settled["rss"] - scheduled["rss"]
    report(f"  worker RSS: {scheduled['rss'] - before['rss']:+.1f} MiB for the {SLEEPERS} "
           f"runs, then {settle_growth:+.1f} MiB while settling")
    report(f"  woken: wake_up() x {SLEEPERS} in {wake_s:.1f} s ({sum(fired_now)} timers fired "
           f"by it); all runs ended {all_done_s:.1f} s after the first wake_up()")
    checks = worker.log.read_text(errors="replace").count("sending it to a worker")
    report(f"  recovery checks sent by the sweeper: {checks} ({checks / SLEEPERS:.2f} per run); "
           f"queue when all had ended: {finished['queue']}")
    report(f"  runs ended before their wake_up(): {len(early)}; timer_fired per run: "
           f"{dict(fired_counts)}; fired before wake_up(): {fired_early}; wrong results "
           f"{wrong}")

    assert scheduled["armed"] == before["armed"] and settled["armed"] == before["armed"]
    # Messages being worked on are unacked (acks_late); never a timer's ETA message.
    assert not any("fire_timer" in t for t in scheduled["unacked"] + settled["unacked"])
    assert settled["unacked"] == []
    assert settle_growth < RSS_SETTLE_LIMIT_MIB
    assert scheduled["rss"] - before["rss"] < RSS_LIMIT_MIB
    assert early == []
    assert fired_now == [1] * SLEEPERS
    assert fired_counts == {1: SLEEPERS}
    assert fired_early == 0 and wrong == 0
    assert (finished["due"], finished["armed"]) == (before["due"], before["armed"])
