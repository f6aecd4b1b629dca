"""Benchmark: the run listing's first page at 100,000 runs against 10 and 1,000.

Writes runs straight through the store (no workers: the listing reads only the store)
under three prefixes of their own: 10, 1,000 and ``--runs`` runs (two workflows, a
fifth of them completed); then times the first page (``--limit``) of each filter,
median of ``--repeat`` reads. A page costs per row it returns, not per run stored: the
ratio ``--runs``/1,000 (both pages full) is the one to read; 10 runs give shorter
pages. Deletes only its keys.

    .venv/bin/python bench/listing.py [--runs 100000] [--limit 50] [--repeat 21] [--redis-url U]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from celery_durable.devstack import (  # noqa: E402
    RedisHandle,
    delete_matching,
    find_or_start_redis,
)
from celery_durable.orchestrator import started_event  # noqa: E402
from celery_durable.store.base import Commit  # noqa: E402
from celery_durable.store.connect import connect  # noqa: E402
from celery_durable.store.redis import RedisStore  # noqa: E402

WORKFLOWS = ("bench.orders", "bench.emails")


def populate(store: RedisStore, count: int, threads: int = 8) -> float:
    """``count`` runs, alternating workflows; every fifth completed. Returns seconds."""
    began = time.perf_counter()

    def one(i: int) -> None:
        run_id = f"r{i:07d}"
        workflow = WORKFLOWS[i % 2]
        store.create_run(run_id, workflow, started_event(workflow, [i], {}), time.time() + 3600)
        if i % 5 == 0:
            assert store.load(run_id, "t", 0) is not None
            store.commit(run_id, "t", Commit(final={"type": "run_completed", "at": time.time(),
                                                    "result": i}))

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count), chunksize=500))
    return time.perf_counter() - began


def first_page_ms(store: RedisStore, status: str | None, workflow: str | None, limit: int,
                  repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        rows = len(store.list_runs(status, workflow, limit))
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), rows


FILTERS = [(None, None), ("running", None), ("completed", None), (None, WORKFLOWS[0]),
           ("completed", WORKFLOWS[1])]


def measure(url: str, runs: int, limit: int = 50, repeat: int = 21) -> dict[str, Any]:
    """Fill three prefixes (10, 1,000, ``runs`` runs) on ``url``, time the first pages,
    delete the prefixes; prints the table and returns its figures."""
    tag = f"bench-listing-{uuid.uuid4().hex[:8]}"
    sizes = (10, 1000, runs)
    stores = {size: RedisStore(connect(url), prefix=f"{tag}-{size}", lease=30,
                               retention=3600, timer_horizon=300, queue_timeout=3600,
                               timer_grace=2) for size in sizes}
    rows: list[dict[str, Any]] = []
    populate_s: dict[int, float] = {}
    try:
        for size, store in stores.items():
            populate_s[size] = populate(store, size)
            print(f"writing {size} runs: {populate_s[size]:.1f}s", flush=True)
        print(f"\n{'first page of':<44}{'10 runs':>10}{'1000 runs':>11}"
              f"{f'{runs} runs':>13}{'ratio':>8}")
        for status, workflow in FILTERS:
            times = [first_page_ms(stores[size], status, workflow, limit, repeat)
                     for size in sizes]
            label = f"status={status or '*'} workflow={workflow or '*'}"
            cells = "".join(f"{ms:>7.2f}ms{f'/{rows}':<4}" for ms, rows in times)
            print(f"{label:<44}{cells}{times[2][0] / times[1][0]:>6.2f}x")
            rows.append({"filter": label, "ms": [t[0] for t in times],
                         "rows": [t[1] for t in times], "ratio": times[2][0] / times[1][0]})
        print("(ms/rows returned; ratio: the big store against 1000 runs, both pages full)")
    finally:
        client = redis.Redis.from_url(url)
        deleted = delete_matching(client, f"{tag}*")
        client.close()
        print(f"deleted {deleted} keys under {tag}")
    big = statistics.median(r["ms"][2] for r in rows)
    mid = statistics.median(r["ms"][1] for r in rows)
    summary = (f"first page ({limit} rows), median over {len(rows)} filters: {big:.2f} ms at "
               f"{runs} runs vs {mid:.2f} ms at 1000 runs ({big / mid:.2f}x; worst filter "
               f"{max(r['ratio'] for r in rows):.2f}x)")
    return {"runs": runs, "limit": limit, "repeat": repeat, "populate_s": populate_s,
            "rows": rows, "median_ms_big": big, "median_ms_1000": mid, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--redis-url", help="use this Redis (default: as the tests find one)")
    args = parser.parse_args(argv)
    handle = RedisHandle(url=args.redis_url, owned=False) if args.redis_url \
        else find_or_start_redis()
    print(f"redis {handle.url} ({'private' if handle.owned else 'shared'})")
    try:
        print(measure(handle.url, args.runs, args.limit, args.repeat)["summary"])
    finally:
        if handle.owned:
            handle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
