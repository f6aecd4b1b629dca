"""Benchmark: durable sleeps on one real worker (case 6 of ``bench/run.py``, and alone).

Starts one real ``celery worker`` subprocess (prefork, concurrency 2, prefetch 1) on the
bench's Redis (a private ``redis-server`` unless ``--redis-url``), with a key prefix and
queue unique to this invocation, then measures:

1. firing lateness: ``--timers`` runs of ``timed_sleep(d)``, ``d`` spread evenly
   over 1-5 s. Per run: lateness = ``at`` of ``timer_fired`` - ``due`` of
   ``timer_scheduled`` (from the history), and wall lateness = when
   ``run.result()`` returned - (start time + d). Early firings must be 0.
2. day-long sleeps: ``--sleepers`` runs of ``day_sleep()`` (``sleep("1 day")``),
   waited for until every one has its timer in ``<prefix>:{timers}:due``; then
   kombu's ``unacked`` hash / ``unacked_index`` and the queue length, the worker's
   RSS (main process + pool children) before, right after, and ``--settle`` s
   later, and the Redis memory those runs take.
3. the baseline (``--eta``, first, on a worker and queue of its own): as many Celery ETA tasks
   (``noop_task.apply_async(countdown=86400)``), waited for until the worker holds
   every one unacked; the same RSS and Redis memory figures.

Only this invocation's keys are deleted afterwards (its prefix, its queue, its
entries in kombu's shared ``unacked`` hash); a shared Redis is never flushed.
"""

from __future__ import annotations

import argparse
import json
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

from bench.harness import (  # noqa: E402
    Worker,
    cleanup,
    import_proj,
    new_tag,
    open_redis,
    round_trip_probe,
    start_worker,
    tree_rss_kb,
)

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport defaults


# -- measuring helpers (tests/soak uses queue_length, unacked_ours, worker_rss) ----------------
def worker_rss(pid: int) -> tuple[int, list[int]]:
    """(total RSS in KiB of the worker and its children, RSS of each process)."""
    return tree_rss_kb(pid)


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
        key = delivery_tag.decode() if isinstance(delivery_tag, bytes) else str(delivery_tag)
        ours[key] = [str(headers.get("task")), str(headers.get("argsrepr")),
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


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


# -- 1. firing lateness ---------------------------------------------------------------------
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


# -- 2. and 3. many sleepers --------------------------------------------------------------------
def snapshot(client: redis.Redis, worker: Worker, tag: str, store: Any = None
             ) -> dict[str, Any]:
    rss, each = worker_rss(worker.pid)
    keys, key_bytes = our_key_bytes(client, tag)
    due, armed = store.timer_counts() if store is not None else (0, 0)
    return {"rss_kb": rss, "each_kb": each, "due": due, "armed": armed, "keys": keys,
            "key_bytes": key_bytes, "used_memory": int(client.info("memory")["used_memory"]),
            "unacked_all": int(client.hlen(UNACKED)), "unacked_ours": len(unacked_ours(
                client, tag)), "queue": queue_length(client, tag)}


def show(name: str, s: dict[str, Any]) -> None:
    print(f"  {name:<16} worker RSS {mib(s['rss_kb']):>6} MiB "
          f"({' + '.join(mib(k) for k in s['each_kb'])}); timers due/armed "
          f"{s['due']}/{s['armed']}; queue {s['queue']}; unacked ours {s['unacked_ours']} "
          f"(hash {s['unacked_all']} in all)", flush=True)


def many_sleepers(kind: str, start: Any, ready: Any, client: redis.Redis, worker: Worker,
                  tag: str, count: int, deadline_s: float, settle_s: float,
                  store: Any = None) -> dict[str, Any]:
    """Start ``count`` sleepers with ``start()``; wait until ``ready()`` says how many are
    in place (all of them, or the deadline); the figures before, after and settled."""
    before = snapshot(client, worker, tag, store)
    t0 = time.monotonic()
    for _ in range(count):
        start()
    t_started = time.monotonic() - t0
    last_print, placed, error = time.monotonic(), 0, None
    while True:
        placed = ready()
        if placed >= count:
            break
        if time.monotonic() - t0 > deadline_s:
            error = f"only {placed} of {count} in place after {deadline_s:.0f}s"
            break
        if not worker.process.alive():
            error = f"worker died:\n{worker.process.tail()}"
            break
        if time.monotonic() - last_print > 15:
            print(f"  ... {placed} of {count} in place after {time.monotonic() - t0:.0f}s",
                  flush=True)
            last_print = time.monotonic()
        time.sleep(0.2)
    t_placed = time.monotonic() - t0
    after = snapshot(client, worker, tag, store)
    time.sleep(settle_s)
    later = snapshot(client, worker, tag, store)
    used = after["used_memory"] - before["used_memory"]
    key_bytes = after["key_bytes"] - before["key_bytes"]
    print(f"\n[{kind}] {count} sleepers: start loop {t_started:.1f}s, all in place after "
          f"{t_placed:.1f}s ({count / t_placed:.0f}/s)" + (f"  [{error}]" if error else ""))
    show("before", before)
    show("all in place", after)
    show(f"+{settle_s:.0f}s", later)
    print(f"  Redis: INFO used_memory {used / 1e6:+.2f} MB ({used / count:.0f} B/run); "
          f"this prefix by MEMORY USAGE {after['keys'] - before['keys']} keys, "
          f"{key_bytes / 1e6:.2f} MB ({key_bytes / count:.0f} B/run)", flush=True)
    return {"count": count, "start_s": t_started, "placed_s": t_placed, "error": error,
            "before": before, "after": after, "later": later, "settle_s": settle_s,
            "used_bytes_per_run": used / count, "key_bytes_per_run": key_bytes / count,
            "rss_growth_kb": after["rss_kb"] - before["rss_kb"],
            "rss_settled_growth_kb": later["rss_kb"] - before["rss_kb"]}


def day_sleeps(proj: Any, client: redis.Redis, worker: Worker, tag: str, count: int,
               deadline_s: float, settle_s: float) -> dict[str, Any]:
    """Part 2: ``count`` runs of ``day_sleep()``, until all have their timer scheduled."""
    store = proj.durable.runtime.store
    due0, armed0 = store.timer_counts()

    def ready() -> int:
        due, armed = store.timer_counts()
        return int(due + armed - due0 - armed0)

    return many_sleepers("durable day_sleep", proj.day_sleep.start, ready, client, worker, tag,
                         count, deadline_s, settle_s, store)


def eta_sleeps(proj: Any, client: redis.Redis, worker: Worker, tag: str, count: int,
               deadline_s: float, settle_s: float) -> dict[str, Any]:
    """Part 3: ``count`` Celery ETA tasks a day away, until the worker holds them all.
    ``tag`` is that worker's own (queue and prefix): its sweeper never sees the durable
    sleepers, so its memory is the ETA tasks' alone."""
    def start() -> None:
        proj.noop_task.apply_async((0,), countdown=86400, queue=tag)

    return many_sleepers("Celery countdown=1 day", start,
                         lambda: len(unacked_ours(client, tag)), client, worker, tag, count,
                         deadline_s, settle_s)


def drop_unacked(client: redis.Redis, tag: str) -> int:
    """A worker stopped warmly puts its unacked messages back; drop any it left."""
    leftovers = unacked_ours(client, tag)
    if leftovers:
        client.hdel(UNACKED, *leftovers)
        client.zrem(UNACKED_INDEX, *leftovers)
    return len(leftovers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=100, help="runs sleeping 1-5 s")
    parser.add_argument("--sleepers", type=int, default=10000, help="runs sleeping one day")
    parser.add_argument("--eta", action=argparse.BooleanOptionalAction, default=True,
                        help="also the baseline: as many Celery ETA tasks (fresh worker)")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="seconds between the two memory samples after scheduling")
    parser.add_argument("--deadline", type=float, default=1800.0,
                        help="seconds the sleepers may take to be scheduled")
    parser.add_argument("--redis-url", help="use this Redis (default: a private redis-server)")
    args = parser.parse_args(argv)

    handle, line = open_redis(args.redis_url)
    print(line)
    tag = new_tag("bench-sleeps")
    client = redis.Redis.from_url(handle.url)
    proj = import_proj(handle.url, tag)
    ok, deleted = True, 0
    try:
        for part in ("eta", "durable"):
            if part == "eta" and not (args.eta and args.sleepers):
                continue
            wtag = f"{tag}-eta" if part == "eta" else tag  # cleaned with tag (a prefix)
            worker = start_worker(handle.url, wtag, f"sleeps-{part}",
                                  extra_env={"BENCH_RESULT_TAG": tag},
                                  probe=round_trip_probe(proj, wtag))
            print(f"{part} worker ready (pid {worker.pid}, log {worker.log})", flush=True)
            try:
                if part == "durable":
                    ok = firing_lateness(proj, args.timers, timeout=60.0) if args.timers else ok
                    if args.sleepers:
                        r = day_sleeps(proj, client, worker, tag, args.sleepers, args.deadline,
                                       args.settle)
                        ok = ok and r["error"] is None
                else:
                    r = eta_sleeps(proj, client, worker, wtag, args.sleepers, args.deadline,
                                   args.settle)
                    ok = ok and r["error"] is None
            finally:
                worker.stop()
                problems = worker.process.problems()
                if problems:
                    print(f"\nworker log ({worker.log}) problem lines:\n" + "\n".join(problems))
    finally:
        drop_unacked(client, tag)
        drop_unacked(client, f"{tag}-eta")
        deleted = cleanup(client, tag)
        client.close()
        if handle.owned:
            handle.close()
    print(f"\ndeleted {deleted} keys under {tag}")
    return 0 if ok else 1


if __name__ == "__main__":
    threading.current_thread().name = "bench-sleeps"
    sys.exit(main())
