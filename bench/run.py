"""Benchmark (``make bench``): durable workflows against their Celery baselines, one table.

On the bench's Redis (a private ``redis-server`` unless ``--redis-url``) and real
``celery worker`` subprocesses on ``bench/proj.py`` (prefork, ``-c 2``, prefetch 1):

1. ``sequential(100)`` vs a ``chain`` of 100: wall and worker CPU per step, with inline
   continuation (the default) and without (``inline=False`` steps: every step a message);
2. ``fan_out(500)`` (``asyncio.gather``) vs a ``group`` of 500: wall, CPU per step;
3. 1,000 concurrent ``three_steps`` runs vs 1,000 ``chain``\\ s of 3: runs/s, CPU per run;
4. Redis commands (``INFO commandstats``) and round trips (``bench/rtt.py``) per step;
5. a full replay of a 10,000-event history in-process (``bench/replay.py``);
6. sleeping runs vs Celery ETA tasks: Redis bytes per run, worker RSS (``bench/sleeps.py``);
7. the run listing's first page at many runs vs 1,000 (``bench/listing.py``);
8. a gather of 100 child runs (one step each) vs a gather of 100 steps: wall, CPU.

Durable and baseline runs alternate (``--pairs``); figures are medians. Writes
``bench/results/latest.json``. Deletes only its own keys (never a flush of a shared Redis).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import cases, listing, replay, rtt, sleeps  # noqa: E402
from bench.harness import (  # noqa: E402
    RESULTS_DIR,
    Row,
    cleanup,
    import_proj,
    machine,
    machine_line,
    new_tag,
    open_redis,
    pid_of,
    ratio,
    render,
    round_trip_probe,
    start_worker,
    tree_cpu_ms,
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=7, help="alternated pairs, cases 1-2")
    p.add_argument("--throughput-pairs", type=int, default=3, help="alternated pairs, case 3")
    p.add_argument("--steps", type=int, default=100, help="case 1: steps / chain length")
    p.add_argument("--fanout", type=int, default=500, help="case 2: gather / group size")
    p.add_argument("--children", type=int, default=100, help="case 8: child runs gathered")
    p.add_argument("--runs", type=int, default=1000, help="case 3: concurrent 3-step runs")
    p.add_argument("--count-repeat", type=int, default=3, help="case 4: runs counted")
    p.add_argument("--events", type=int, default=10_000, help="case 5: history length")
    p.add_argument("--replay-repeat", type=int, default=5, help="case 5: warm replays")
    p.add_argument("--sleepers", type=int, default=2000,
                   help="case 6: sleeping runs and ETA tasks (the issue's figure: 10000)")
    p.add_argument("--settle", type=float, default=10.0, help="case 6: s before RSS again")
    p.add_argument("--listing-runs", type=int, default=20_000,
                   help="case 7: runs in the big store (the issue's figure: 100000)")
    p.add_argument("--listing-repeat", type=int, default=11, help="case 7: reads per page")
    p.add_argument("--full", action="store_true",
                   help="the issue's sizes: --sleepers 10000 --listing-runs 100000")
    p.add_argument("--only", default="12345678", help="cases to run, e.g. --only 15")
    p.add_argument("--timeout", type=float, default=300.0, help="s one measured run may take")
    p.add_argument("--redis-url", help="use this Redis (default: a private redis-server)")
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    args = p.parse_args(argv)
    if args.full:
        args.sleepers, args.listing_runs = max(args.sleepers, 10_000), \
            max(args.listing_runs, 100_000)
    return args


@dataclasses.dataclass
class Ctx:
    args: argparse.Namespace
    url: str
    tag: str
    proj: Any
    client: redis.Redis
    redis_pid: int | None
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    failed: list[str] = dataclasses.field(default_factory=list)

    def store_cpu(self) -> float:
        return tree_cpu_ms(self.redis_pid)


def canvas_cases(ctx: Ctx) -> None:
    """Cases 1-3 and 8 on one worker."""
    a, proj, t = ctx.args, ctx.proj, ctx.args.timeout
    store_cpu = ctx.store_cpu if ctx.redis_pid else None
    worker = start_worker(ctx.url, ctx.tag, "a", probe=round_trip_probe(proj))
    try:
        print(f"\nworker A ready (pid {worker.pid}, log {worker.log})", flush=True)
        for name, fn in (("sequential(10)", cases.durable_sequential(proj, 10, t)),
                         ("chain(10)", cases.canvas_chain(proj, 10, t)),
                         ("sequential_sent(10)", cases.durable_sequential_sent(proj, 10, t)),
                         ("fan_out(10)", cases.durable_gather(proj, 10, t)),
                         ("group(10)", cases.canvas_group(proj, 10, t)),
                         ("3-step runs x10", cases.durable_throughput(proj, 10, t)),
                         ("chains of 3 x10", cases.canvas_throughput(proj, 10, t)),
                         ("child_fan_out(10)", cases.durable_child_gather(proj, 10, t))):
            t0 = time.perf_counter()
            fn()
            print(f"  warm-up {name}: {time.perf_counter() - t0:.3f}s", flush=True)
        plan = [
            ("1", f"1 sequential {a.steps}", a.pairs, a.steps,
             cases.durable_sequential(proj, a.steps, t), cases.canvas_chain(proj, a.steps, t),
             f"chain of {a.steps} noop_task", "wall/step ms", "worker CPU/step ms", False),
            ("1", f"1b sequential {a.steps}, no inline", a.pairs, a.steps,
             cases.durable_sequential_sent(proj, a.steps, t),
             cases.canvas_chain(proj, a.steps, t),
             f"chain of {a.steps} noop_task", "wall/step ms", "worker CPU/step ms", False),
            ("2", f"2 gather {a.fanout}", a.pairs, a.fanout,
             cases.durable_gather(proj, a.fanout, t), cases.canvas_group(proj, a.fanout, t),
             f"group of {a.fanout} noop_task", "wall s", "worker CPU/step ms", False),
            ("3", f"3 throughput {a.runs}x3", a.throughput_pairs, a.runs,
             cases.durable_throughput(proj, a.runs, t),
             cases.canvas_throughput(proj, a.runs, t),
             f"{a.runs} chains of 3", "runs/s", "worker CPU/run ms", True),
            # The baseline here is durable too: what a child run costs over a step.
            ("8", f"8 gather {a.children} child runs", a.pairs, a.children,
             cases.durable_child_gather(proj, a.children, t),
             cases.durable_gather(proj, a.children, t),
             f"durable gather of {a.children} steps", "wall s", "worker CPU/child ms", False),
        ]
        for key, label, pairs, per, dfn, cfn, versus, wm, cm, thr in plan:
            if key not in a.only:
                continue
            samples = cases.compare(label, dfn, cfn, worker, store_cpu, pairs)
            rows, figures = cases.rows_for(label, samples, per, versus, wm, cm, thr)
            ctx.rows += rows
            ctx.data[f"case{label.split()[0]}"] = figures
            if any(f["error"] for f in figures.values()):
                ctx.failed.append(label)
    finally:
        worker.stop()
        problems(worker)


def problems(worker: Any) -> None:
    lines = [line for line in worker.process.problems() if "SecurityWarning" not in line]
    if lines:
        print(f"  worker log ({worker.log}) problem lines:\n    " + "\n    ".join(lines[-10:]))


def shape_check(proj: Any, timeout: float) -> str:
    """The event types of a recorded ``sequential(3)``, against the built history's shape."""
    run = proj.sequential.start(3)
    run.result(timeout=timeout)
    types = [e["type"] for e in run.events()]
    step = ["step_scheduled", "step_started", "step_completed"]
    expected = ["run_started"] + step * 3 + ["run_completed"]
    same = "the same shape as" if types == expected else "NOT the shape of"
    return f"recorded sequential(3): {', '.join(types[:4])}, ... ({len(types)} events): " \
        f"{same} the built history"


def counted_cases(ctx: Ctx) -> None:
    """Case 4 (and case 6's sleepers) on a worker counting its round trips."""
    a, proj, t = ctx.args, ctx.proj, ctx.args.timeout
    rdir = Path(tempfile.mkdtemp(prefix="durable-bench-rtt-"))
    wdir, ddir = rdir / "worker", rdir / "driver"
    rtt.install(ddir)
    rtt.register(proj.durable.runtime.store.client.connection_pool)
    if "6" in a.only and a.sleepers:
        eta_case(ctx)
    worker = start_worker(ctx.url, ctx.tag, "b", extra_env={"BENCH_RTT_DIR": str(wdir)},
                          probe=round_trip_probe(proj))
    try:
        print(f"\nworker B ready (pid {worker.pid}, counting round trips in {rdir})", flush=True)
        if "4" in a.only:
            cases.durable_sequential(proj, 10, t)()
            cases.canvas_chain(proj, 10, t)()
            idle = cases.idle_rate(ctx.client, 3.0)
            n, small_n, rep = a.steps, 10, a.count_repeat
            small = cases.count_commands(ctx.client, cases.durable_sequential(proj, small_n, t),
                                         rep, str(wdir), str(ddir))
            dur = cases.count_commands(ctx.client, cases.durable_sequential(proj, n, t), rep,
                                       str(wdir), str(ddir))
            can = cases.count_commands(ctx.client, cases.canvas_chain(proj, n, t), rep,
                                       str(wdir), str(ddir))
            rows, notes = cases.commands_rows(dur, small, can, n, small_n, rep, idle)
            ctx.rows += rows
            ctx.notes += notes
            ctx.data["case4"] = {"durable": dur, "durable_small": small, "canvas": can,
                                 "idle_commands_per_s": idle}
            print("  case 4 counted", flush=True)
        if "5" in a.only:
            ctx.notes.append(shape_check(proj, t))
        if "6" in a.only and a.sleepers:
            ctx.data.setdefault("case6", {})["durable"] = sleeps.day_sleeps(
                proj, ctx.client, worker, ctx.tag, a.sleepers, a.timeout * 6, a.settle)
    finally:
        worker.stop()
        problems(worker)
    if "6" in a.only and a.sleepers:
        sleep_rows(ctx)


def eta_case(ctx: Ctx) -> None:
    """Case 6's baseline first, on a worker, queue and prefix of its own."""
    a, proj = ctx.args, ctx.proj
    etag = f"{ctx.tag}-eta"
    worker = start_worker(ctx.url, etag, "eta", extra_env={"BENCH_RESULT_TAG": ctx.tag},
                          probe=round_trip_probe(proj, etag))
    try:
        ctx.data.setdefault("case6", {})["eta"] = sleeps.eta_sleeps(
            proj, ctx.client, worker, etag, a.sleepers, a.timeout * 6, a.settle)
    finally:
        worker.stop()
        sleeps.drop_unacked(ctx.client, etag)
        problems(worker)


def sleep_rows(ctx: Ctx) -> None:
    d, e = ctx.data["case6"].get("durable"), ctx.data["case6"].get("eta")
    if not d or not e:
        return
    n = d["count"]

    def rss(r: dict[str, Any]) -> str:
        return (f"{r['before']['rss_kb'] / 1024:.0f}->{r['after']['rss_kb'] / 1024:.0f}"
                f" ({r['later']['rss_kb'] / 1024:.0f})")

    dg, eg = d["rss_settled_growth_kb"] / n, e["rss_settled_growth_kb"] / n
    ctx.rows += [
        Row(f"6 sleeping {n}", "Redis bytes/run (INFO used_memory)", d["used_bytes_per_run"],
            e["used_bytes_per_run"], ratio(d["used_bytes_per_run"], e["used_bytes_per_run"]),
            f"{n} Celery countdown=1 day tasks", ".0f"),
        Row("", f"worker RSS MiB before->after (+{d['settle_s']:.0f}s)", rss(d), rss(e)),
        Row("", "worker RSS growth KiB/run (settled)", dg, eg, ratio(dg, eg)),
        Row("", "s until all in place", d["placed_s"], e["placed_s"],
            ratio(d["placed_s"], e["placed_s"]), "(timer scheduled / held unacked)", ".1f"),
    ]
    ctx.notes.append(f"sleepers: durable MEMORY USAGE of its keys {d['key_bytes_per_run']:.0f} "
                     f"B/run; the ETA tasks sit in kombu's unacked hash and the worker's memory "
                     f"(redelivered after the 1 h visibility_timeout)")
    for name, r in (("durable", d), ("ETA", e)):
        if r["error"]:
            ctx.rows.append(Row("", f"{name} FAILED", r["error"][:60]))
            ctx.failed.append(f"6 {name}")


def replay_case(ctx: Ctx) -> None:
    a = ctx.args
    r = replay.in_subprocess(a.events, a.replay_repeat, ctx.url, f"{ctx.tag}:replay")
    ctx.data["case5"] = r
    c = r["cold"]
    cold_ms = (c["decode_s"] + c["replay_s"]) * 1000 if "decode_s" in c else None
    warm_ms = r["warm_total_s"] * 1000
    ctx.rows += [
        Row(f"5 replay {r['events']} events", "us/event warm (decode + replay)",
            r["us_per_event"], r["json_loads_us_per_event"],
            ratio(r["us_per_event"], r["json_loads_us_per_event"]),
            "json.loads of the same events", ".1f"),
        Row("", "  decode / replay us/event",
            f"{r['decode_us_per_event']:.1f} / {r['replay_us_per_event']:.1f}"),
        Row("", "cold full replay ms (fresh process)", cold_ms, warm_ms,
            ratio(cold_ms, warm_ms), "warm replay, same history", ".0f"),
        Row("", "LRANGE of the history ms", r.get("lrange_ms"), None, None, "", ".1f"),
    ]
    ctx.notes.append(replay.summary_line(r))
    if r["error"]:
        ctx.failed.append(f"5: {r['error']}")


def listing_case(ctx: Ctx) -> None:
    a = ctx.args
    print(f"\n[7] listing at {a.listing_runs} runs", flush=True)
    r = listing.measure(ctx.url, a.listing_runs, 50, a.listing_repeat)
    ctx.data["case7"] = r
    ctx.rows.append(Row("7 run listing", f"first page ms at {a.listing_runs} runs",
                        r["median_ms_big"], r["median_ms_1000"],
                        ratio(r["median_ms_big"], r["median_ms_1000"]),
                        "same page at 1,000 runs (median of 5 filters)"))
    ctx.notes.append("listing: " + r["summary"])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    handle, redis_line = open_redis(args.redis_url)
    info = machine(handle.url)
    print(machine_line(info))
    print(redis_line)
    print("worker: celery worker --pool=prefork --concurrency=2, prefetch multiplier 1; "
          f"pairs {args.pairs} (throughput {args.throughput_pairs}), medians", flush=True)
    tag = new_tag()
    client = redis.Redis.from_url(handle.url)
    ctx = Ctx(args, handle.url, tag, import_proj(handle.url, tag), client, pid_of(handle))
    deleted = 0
    try:
        if set("1238") & set(args.only):
            canvas_cases(ctx)
        if set("456") & set(args.only):
            counted_cases(ctx)
        if "5" in args.only:
            replay_case(ctx)
        if "7" in args.only:
            listing_case(ctx)
    finally:
        sleeps.drop_unacked(client, tag)
        deleted = cleanup(client, tag)
        client.close()
        if handle.owned:
            handle.close()
    rows = sorted_groups(ctx.rows)
    print(f"\n{machine_line(info)}\n{redis_line}\n")
    print(render(rows))
    print("\nratio = durable / baseline (for runs/s: above 1 is faster). CPU = user+sys from "
          "/proc (10 ms ticks per process), worker = main + pool children.")
    for note in ctx.notes:
        print(f"- {note}")
    elapsed = time.monotonic() - started
    print(f"\ndeleted {deleted} keys under {tag}; {elapsed:.0f}s in all; load average "
          f"{os.getloadavg()[0]:.2f} at the end (other work on the machine shows there)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": info, "redis": redis_line,
        "worker": {"pool": "prefork", "concurrency": 2, "prefetch_multiplier": 1},
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "table": [dataclasses.asdict(r) for r in rows], "notes": ctx.notes,
        "cases": ctx.data, "failed": ctx.failed, "elapsed_s": elapsed,
    }, indent=1, default=str) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"wrote {shown}")
    if ctx.failed:
        print("FAILED: " + "; ".join(ctx.failed))
    return 1 if ctx.failed else 0


def sorted_groups(rows: list[Row]) -> list[Row]:
    """Rows grouped by case number (a group: its first row and the blank-case rows after)."""
    groups: list[list[Row]] = []
    for row in rows:
        if row.case or not groups:
            groups.append([row])
        else:
            groups[-1].append(row)
    return [r for g in sorted(groups, key=lambda g: g[0].case[:1]) for r in g]


if __name__ == "__main__":
    sys.exit(main())
