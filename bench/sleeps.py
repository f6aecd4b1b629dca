"""Benchmark: durable sleeps on one real worker.

Starts one real ``celery worker`` subprocess (prefork, concurrency 2) on a Redis
found like ``bench/run.py`` finds it, with a key prefix and queue unique to this
invocation, then measures:

1. firing lateness: ``--timers`` runs of ``timed_sleep(d)``, ``d`` spread evenly
   over 1-5 s. Per run: lateness = ``at`` of ``timer_fired`` - ``due`` of
   ``timer_scheduled`` (from the history), and wall lateness = when
   ``run.result()`` returned - (start time + d). Early firings must be 0.
2. day-long sleeps: ``--sleepers`` runs of ``day_sleep()`` (``sleep("1 day")``),
   waited for until every one has its timer in ``<prefix>:{timers}:due``; then
   kombu's ``unacked`` hash / ``unacked_index`` and the queue length, the worker's
   RSS (main process + pool children) before, right after, and ``--settle`` s
   later, and the Redis memory those runs take.

Only this invocation's keys are deleted afterwards (its prefix, its queue, its
entries in kombu's shared ``unacked`` hash); a shared Redis is never flushed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench.run import start_bench  # noqa: E402
from celery_durable.devstack import WorkerProcess  # noqa: E402

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport defaults


# -- measuring helpers ------------------------------------------------------------------
def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return out


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_rss(pid: int) -> tuple[int, list[int]]:
    """(total RSS in KiB of the worker and its children, RSS of each process)."""
    each = [rss_kb(p) for p in process_tree(pid)]
    return sum(each), each


def queue_names(tag: str) -> list[str]:
    # kombu's Redis transport keeps priorities 3/6/9 in sibling lists "<queue>\x06\x16<n>".
    return [tag] + [f"{tag}\x06\x16{n}" for n in (3, 6, 9)]


def queue_length(client: redis.Redis, tag: str) -> int:
    return sum(int(client.llen(q)) for q in queue_names(tag))


def unacked_ours(client: redis.Redis, tag: str) -> dict[str, list[str]]:
    """Our entries in kombu's shared ``unacked`` hash: delivery tag → [task, args, eta]."""
    ours: dict[str, list[str]] = {}
    for delivery_tag, raw in client.hscan_iter(UNACKED, count=1000):
        try:
            message, _exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if routing_key != tag:
            continue
        headers = message.get("headers") or {}
        ours[delivery_tag.decode()] = [str(headers.get("task")), str(headers.get("argsrepr")),
                                       str(headers.get("eta"))]
    return ours


def our_key_bytes(client: redis.Redis, tag: str) -> tuple[int, int]:
    """(number of keys under the prefix, sum of their MEMORY USAGE in bytes)."""
    keys = list(client.scan_iter(match=f"{tag}*", count=2000))
    total = 0
    for i in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[i:i + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(int(n or 0) for n in pipe.execute())
    return len(keys), total


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered))) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


# -- the two measurements ------------------------------------------------------------------
def firing_lateness(proj: Any, count: int, timeout: float) -> bool:
    """Part 1; returns True if all went well (no early firing, no error)."""
    store = proj.durable.runtime.store
    spans = [1.0 + 4.0 * i / (count - 1) if count > 1 else 3.0 for i in range(count)]
    started: list[tuple[Any, float, float]] = []
    finished: dict[str, float] = {}
    errors: list[str] = []

    def wait(run: Any) -> None:
        try:
            run.result(timeout=timeout)
            finished[run.id] = time.time()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(f"{run.id}: {type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(max_workers=count) as pool:
        for d in spans:
            t_start = time.time()
            run = proj.timed_sleep.start(d)
            started.append((run, t_start, d))
            pool.submit(wait, run)
    lateness, wall, early, clock_err = [], [], 0, 0.0
    for run, t_start, d in started:
        if run.id not in finished:
            continue
        events = store.events(run.id)
        sched = [e for e in events if e["type"] == "timer_scheduled"]
        fired = [e for e in events if e["type"] == "timer_fired"]
        if len(sched) != 1 or len(fired) != 1:
            errors.append(f"{run.id}: {len(sched)} timer_scheduled, {len(fired)} timer_fired")
            continue
        late = float(fired[0]["at"]) - float(sched[0]["due"])
        early += late < 0
        lateness.append(late)
        wall.append(finished[run.id] - (t_start + d))
        before = float(run.result(timeout=1))
        clock_err = max(clock_err, abs(float(sched[0]["due"]) - before - d))
    print(f"\n[1] firing lateness, {count} runs of timed_sleep(d), d evenly 1-5 s")
    if lateness:
        print(f"  fired - due      : median {ms(statistics.median(lateness))} ms, "
              f"p95 {ms(pct(lateness, 95))} ms, max {ms(max(lateness))} ms, "
              f"min {ms(min(lateness))} ms")
        print(f"  early firings    : {early}")
        print(f"  wall (result returned - (start + d)): median {ms(statistics.median(wall))} ms, "
              f"p95 {ms(pct(wall, 95))} ms, max {ms(max(wall))} ms")
        print(f"  check: max |due - now() before sleep - d| = {clock_err * 1e6:.1f} us")
    for line in errors[:10]:
        print(f"  ERROR {line}")
    return not errors and early == 0 and len(lateness) == count


def day_sleeps(proj: Any, client: redis.Redis, worker: WorkerProcess, tag: str, count: int,
               deadline_s: float, settle_s: float) -> bool:
    """Part 2; returns True if every run got its timer scheduled in time."""
    store = proj.durable.runtime.store
    pid = worker.process.pid

    def snapshot() -> dict[str, Any]:
        rss, each = worker_rss(pid)
        due, armed = store.timer_counts()
        keys, key_bytes = our_key_bytes(client, tag)
        ours = unacked_ours(client, tag)
        return {"rss": rss, "each": each, "due": due, "armed": armed, "keys": keys,
                "key_bytes": key_bytes, "used": int(client.info("memory")["used_memory"]),
                "unacked_all": int(client.hlen(UNACKED)),
                "index_all": int(client.zcard(UNACKED_INDEX)), "unacked_ours": ours,
                "queue": queue_length(client, tag),
                "watch": int(client.zcard(store.keys.watch))}

    def show(name: str, s: dict[str, Any]) -> None:
        print(f"  {name:<22} worker RSS {s['rss'] / 1024:7.1f} MiB "
              f"({' + '.join(f'{k / 1024:.1f}' for k in s['each'])}); "
              f"timers due/armed {s['due']}/{s['armed']}; queue {s['queue']}; "
              f"unacked ours {len(s['unacked_ours'])} (hash {s['unacked_all']}, "
              f"index {s['index_all']} in all); watch {s['watch']}")

    before = snapshot()
    t0 = time.monotonic()
    for _ in range(count):
        proj.day_sleep.start()
    t_started = time.monotonic() - t0
    last_print = time.monotonic()
    ok = True
    while True:
        due, armed = store.timer_counts()
        if due + armed >= count:
            break
        if time.monotonic() - t0 > deadline_s:
            print(f"  not all scheduled after {deadline_s:.0f}s: {due}+{armed} of {count}")
            ok = False
            break
        if not worker.alive():
            print(f"  worker died:\n{worker.tail()}")
            return False
        if time.monotonic() - last_print > 15:
            print(f"  ... {due} of {count} scheduled after {time.monotonic() - t0:.0f}s",
                  flush=True)
            last_print = time.monotonic()
        time.sleep(0.1)
    t_scheduled = time.monotonic() - t0
    after = snapshot()
    time.sleep(settle_s)
    later = snapshot()

    print(f"\n[2] day-long sleeps, {count} runs of day_sleep() (sleep('1 day'))")
    print(f"  start() loop {t_started:.1f}s ({count / t_started:.0f}/s); all {count} "
          f"timer_scheduled after {t_scheduled:.1f}s ({count / t_scheduled:.0f} runs/s)")
    show("before sleepers", before)
    show("all scheduled", after)
    show(f"+{settle_s:.0f}s", later)
    grown = (later["rss"] - after["rss"]) / 1024
    print(f"  worker RSS: +{(after['rss'] - before['rss']) / 1024:.1f} MiB for the {count} "
          f"runs, then {grown:+.1f} MiB over {settle_s:.0f}s")
    per_run = (after["key_bytes"] - before["key_bytes"]) / count
    print(f"  Redis, this prefix: {after['keys'] - before['keys']} keys, "
          f"{(after['key_bytes'] - before['key_bytes']) / 1e6:.2f} MB by MEMORY USAGE "
          f"({per_run:.0f} B/run); INFO used_memory "
          f"{(after['used'] - before['used']) / 1e6:+.2f} MB "
          f"({(after['used'] - before['used']) / count:.0f} B/run; shared server, noisy)")
    for name, s in (("all scheduled", after), (f"+{settle_s:.0f}s", later)):
        for delivery_tag, what in list(s["unacked_ours"].items())[:5]:
            print(f"  unacked at {name}: {delivery_tag} {what}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=100, help="runs sleeping 1-5 s")
    parser.add_argument("--sleepers", type=int, default=10000, help="runs sleeping one day")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds between the two memory samples after scheduling")
    parser.add_argument("--deadline", type=float, default=1800.0,
                        help="seconds the sleepers may take to be scheduled")
    args = parser.parse_args(argv)

    bench = start_bench("durable-sleeps-")
    proj, client, worker, tag, log = bench.proj, bench.client, bench.worker, bench.tag, bench.log
    ok = False
    leftovers: dict[str, list[str]] = {}
    try:
        print(f"worker ready after {bench.wait_ready():.1f}s (pid {worker.process.pid})",
              flush=True)
        ok = firing_lateness(proj, args.timers, timeout=60.0)
        ours = unacked_ours(client, tag)
        print(f"  after part 1: unacked ours {len(ours)}, queue {queue_length(client, tag)}")
        if args.sleepers:
            ok = day_sleeps(proj, client, worker, tag, args.sleepers, args.deadline,
                            args.settle) and ok
    finally:
        worker.stop()
        # A worker stopped warmly puts its unacked messages back; drop any it left.
        leftovers = unacked_ours(client, tag)
        if leftovers:
            client.hdel(UNACKED, *leftovers)
            client.zrem(UNACKED_INDEX, *leftovers)
        deleted = bench.close()
    problems = worker.problems()
    if problems:
        print(f"\nworker log ({log}) problem lines:")
        print("\n".join(problems))
    print(f"\ndeleted {deleted} keys under {tag}"
          + (f", {len(leftovers)} of its unacked entries" if leftovers else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    threading.current_thread().name = "bench-sleeps"
    sys.exit(main())
