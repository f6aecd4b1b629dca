"""Benchmark: durable workflows against Celery canvas on the same single worker.

Starts one real ``celery worker`` subprocess (prefork, concurrency 2) on a Redis
found like the tests find it, then times, ``--repeat`` times each:

* a Celery ``chain`` of ``--steps`` ``noop_task`` vs durable ``sequential(--steps)``;
* a Celery ``group`` of ``--fanout`` ``noop_task`` vs durable ``fan_out(--fanout)``.

Prints a table and writes it as JSON to ``bench/results-latest.json``. Only the
keys this run wrote are deleted afterwards (never a flush of a shared Redis).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from celery_durable.devstack import (  # noqa: E402
    RedisHandle,
    WorkerProcess,
    clean_tag,
    find_or_start_redis,
)

RESULTS = ROOT / "bench" / "results-latest.json"
READY_DEADLINE_S = 60.0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


@dataclasses.dataclass
class Bench:
    """One benchmark's Redis, key tag, app module and worker."""

    handle: RedisHandle
    tag: str
    proj: Any
    client: redis.Redis
    worker: WorkerProcess
    log: Path

    def wait_ready(self) -> float:
        """Seconds until a task makes the round trip through the worker."""
        def probe() -> bool:
            try:
                return bool(self.proj.noop_task.delay(1).get(timeout=0.5) == 1)
            except Exception:
                return False

        return self.worker.wait_ready(READY_DEADLINE_S, probe)

    def close(self) -> int:
        """Delete this benchmark's keys (after the worker stopped); returns how many."""
        deleted = clean_tag(self.client, self.tag)
        self.client.close()
        if self.handle.owned:
            self.handle.close()
        return deleted


def start_bench(log_prefix: str) -> Bench:
    """Find or start Redis, choose a unique tag and start one worker under it."""
    handle: RedisHandle = find_or_start_redis()
    tag = f"bench-{os.getpid()}-{secrets.token_hex(4)}"
    env = dict(os.environ, BENCH_REDIS_URL=handle.url, BENCH_TAG=tag, PYTHONPATH=str(ROOT))
    os.environ.update(BENCH_REDIS_URL=handle.url, BENCH_TAG=tag)
    from bench import proj  # reads BENCH_* now

    log = Path(tempfile.mkdtemp(prefix=log_prefix)) / "worker.log"
    print(f"redis {handle.url} ({'private' if handle.owned else 'shared'}), tag {tag}, "
          f"worker log {log}")
    worker = WorkerProcess("bench.proj", log, queues=[tag], concurrency=2, env=env, cwd=ROOT,
                           loglevel="WARNING", hostname=f"{tag}@%h")
    return Bench(handle, tag, proj, redis.Redis.from_url(handle.url), worker, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per scenario")
    parser.add_argument("--steps", type=int, default=100, help="length of chain / sequential")
    parser.add_argument("--fanout", type=int, default=500, help="size of group / fan_out")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one measured run may take before it counts as failed")
    args = parser.parse_args(argv)

    from celery import chain, group

    bench = start_bench("durable-bench-")
    proj, worker = bench.proj, bench.worker
    rows: list[dict[str, Any]] = []
    failed = False
    try:
        print(f"worker ready after {bench.wait_ready():.1f}s")

        t = args.timeout
        n, m = args.steps, args.fanout
        scenarios: list[tuple[str, str, int, Callable[[int], Any], Any]] = [
            ("canvas chain", "sequential", n,
             lambda k: chain(proj.noop_task.si(i) for i in range(k))().get(timeout=t),
             lambda k: k - 1),
            ("durable sequential", "sequential", n,
             lambda k: proj.sequential.start(k).result(timeout=t),
             lambda k: sum(range(k))),
            ("canvas group", "fan-out", m,
             lambda k: group(proj.noop_task.si(i) for i in range(k))().get(timeout=t),
             lambda k: list(range(k))),
            ("durable fan_out", "fan-out", m,
             lambda k: proj.fan_out.start(k).result(timeout=t),
             lambda k: sum(range(k))),
        ]

        for name, _, _, fn, expect in scenarios:  # warm-up: one small run of each kind
            try:
                secs, value = timed(lambda: fn(10))
                note = "" if value == expect(10) else f"  [wrong result {value!r}]"
            except Exception as exc:
                secs, note = float("nan"), f"  [{type(exc).__name__}: {exc}]"
            failed = failed or bool(note)
            print(f"warm-up {name}(10): {secs:.3f}s{note}", flush=True)

        for name, kind, size, fn, expect in scenarios:
            times: list[float] = []
            error = None
            for _ in range(args.repeat):
                try:
                    secs, value = timed(lambda: fn(size))
                except Exception as exc:  # a timeout or a failed run: report, go on
                    error = f"{type(exc).__name__}: {exc}"
                    failed = True
                    break
                if value != expect(size):
                    error = f"wrong result {str(value)[:80]!r}"
                    failed = True
                    break
                times.append(secs)
            row: dict[str, Any] = {"scenario": name, "kind": kind, "size": size,
                                   "times_s": times, "error": error}
            if times:
                row["median_s"] = statistics.median(times)
                row["min_s"] = min(times)
                row["per_step_ms"] = row["median_s"] / size * 1000
            rows.append(row)
            print(f"  {name}({size}): " + (", ".join(f"{x:.3f}s" for x in times) or "-")
                  + (f"  [{error}]" if error else ""), flush=True)
    finally:
        worker.stop()
        deleted = bench.close()

    ratios: dict[str, float | None] = {}
    for kind in ("sequential", "fan-out"):
        pair = [r for r in rows if r["kind"] == kind]
        canvas = next((r for r in pair if r["scenario"].startswith("canvas")), None)
        dur = next((r for r in pair if r["scenario"].startswith("durable")), None)
        ok = canvas and dur and "median_s" in canvas and "median_s" in dur
        ratios[kind] = dur["median_s"] / canvas["median_s"] if ok else None  # type: ignore[index]

    print()
    print(f"{'scenario':<22}{'size':>6}{'median s':>11}{'min s':>10}{'per-step ms':>13}")
    for r in rows:
        if "median_s" in r:
            print(f"{r['scenario']:<22}{r['size']:>6}{r['median_s']:>11.3f}{r['min_s']:>10.3f}"
                  f"{r['per_step_ms']:>13.2f}")
        else:
            print(f"{r['scenario']:<22}{r['size']:>6}  FAILED: {r['error']}")
    for kind, ratio in ratios.items():
        text = f"{ratio:.2f}x" if ratio is not None else "n/a"
        print(f"ratio durable/canvas ({kind}): {text}")

    problems = worker.problems()
    if problems:
        print(f"\nworker log ({bench.log}) problem lines:")
        print("\n".join(problems))
    print(f"\ndeleted {deleted} keys under {bench.tag}")

    RESULTS.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "redis": "private" if bench.handle.owned else bench.handle.url,
        "worker": {"pool": "prefork", "concurrency": 2},
        "repeat": args.repeat, "steps": args.steps, "fanout": args.fanout,
        "rows": rows, "ratios_durable_over_canvas": ratios,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
