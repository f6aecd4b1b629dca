"""Benchmark: the run listing's first page at 100,000 runs against 10 and 1,000.

Writes runs straight through the store (no workers: the listing reads only the store)
under three prefixes of their own: 10, 1,000 and ``--runs`` runs (two workflows, a
fifth of them completed); then times the first page (``--limit``) of each filter,
median of ``--repeat`` reads. A page costs per row it returns, not per run stored: the
ratio ``--runs``/1,000 (both pages full) is the one to read; 10 runs give shorter
pages. Deletes only its keys.

    .venv/bin/python bench/listing.py [--runs 100000] [--limit 50] [--repeat 21]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from celery_durable.devstack import delete_matching, find_or_start_redis  # noqa: E402
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args(argv)
    handle = find_or_start_redis()
    tag = f"bench-listing-{uuid.uuid4().hex[:8]}"
    stores = {size: RedisStore(connect(handle.url), prefix=f"{tag}-{size}", lease=30,
                               retention=3600, timer_horizon=300, queue_timeout=3600,
                               timer_grace=2) for size in (10, 1000, args.runs)}
    print(f"redis {handle.url} ({'private' if handle.owned else 'shared'}), prefix {tag}")
    try:
        for size, store in stores.items():
            print(f"writing {size} runs: {populate(store, size):.1f}s", flush=True)
        filters = [(None, None), ("running", None), ("completed", None),
                   (None, WORKFLOWS[0]), ("completed", WORKFLOWS[1])]
        print(f"\n{'first page of':<44}{'10 runs':>10}{'1000 runs':>11}"
              f"{f'{args.runs} runs':>13}{'ratio':>8}")
        for status, workflow in filters:
            times = [first_page_ms(stores[size], status, workflow, args.limit, args.repeat)
                     for size in (10, 1000, args.runs)]
            label = f"status={status or '*'} workflow={workflow or '*'}"
            cells = "".join(f"{ms:>7.2f}ms{f'/{rows}':<4}" for ms, rows in times)
            print(f"{label:<44}{cells}{times[2][0] / times[1][0]:>6.2f}x")
        print("(ms/rows returned; ratio: the big store against 1000 runs, both pages full)")
    finally:
        client = redis.Redis.from_url(handle.url)
        deleted = delete_matching(client, f"{tag}*")
        print(f"\ndeleted {deleted} keys under {tag}")
        if handle.owned:
            handle.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
