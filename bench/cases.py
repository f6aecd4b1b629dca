"""Cases 1-4 of ``bench/run.py``: durable runs and their Celery canvas baselines on one
worker, and the Redis commands and round trips of a sequential step.

Each ``*_fn`` returns a callable doing one measured run that raises on a wrong result or
a timeout, so :func:`bench.harness.alternate` can take turns between the two sides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from bench import rtt
from bench.harness import Engine, Row, Sample, Worker, alternate, ratio, summary

Run = Callable[[], None]


def check(value: Any, expected: Any, what: str) -> None:
    if value != expected:
        raise AssertionError(f"{what}: wrong result {str(value)[:80]!r}, expected {expected!r}")


def deadline_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the run's deadline passed")
    return left


# -- the runs ----------------------------------------------------------------------------------
def durable_sequential(proj: Any, n: int, timeout: float) -> Run:
    return lambda: check(proj.sequential.start(n).result(timeout=timeout), sum(range(n)),
                         f"sequential({n})")


def durable_sequential_sent(proj: Any, n: int, timeout: float) -> Run:
    return lambda: check(proj.sequential_sent.start(n).result(timeout=timeout), sum(range(n)),
                         f"sequential_sent({n})")


def canvas_chain(proj: Any, n: int, timeout: float) -> Run:
    from celery import chain

    return lambda: check(chain(proj.noop_task.si(i) for i in range(n))().get(timeout=timeout),
                         n - 1, f"chain of {n}")


def durable_gather(proj: Any, n: int, timeout: float) -> Run:
    return lambda: check(proj.fan_out.start(n).result(timeout=timeout), sum(range(n)),
                         f"fan_out({n})")


def canvas_group(proj: Any, n: int, timeout: float) -> Run:
    from celery import group

    return lambda: check(group(proj.noop_task.si(i) for i in range(n))().get(timeout=timeout),
                         list(range(n)), f"group of {n}")


def durable_child_gather(proj: Any, n: int, timeout: float) -> Run:
    return lambda: check(proj.child_fan_out.start(n).result(timeout=timeout), sum(range(n)),
                         f"child_fan_out({n})")


def durable_throughput(proj: Any, runs: int, timeout: float) -> Run:
    def go() -> None:
        deadline = time.monotonic() + timeout
        started = [proj.three_steps.start(i) for i in range(runs)]
        for i, run in enumerate(started):
            check(run.result(timeout=deadline_left(deadline)), 9 * i + 3, "three_steps")
    return go


def canvas_throughput(proj: Any, runs: int, timeout: float) -> Run:
    from celery import chain

    def go() -> None:
        deadline = time.monotonic() + timeout
        t = proj.noop_task
        started = [chain(t.si(3 * i), t.si(3 * i + 1), t.si(3 * i + 2)).apply_async()
                   for i in range(runs)]
        for i, result in enumerate(started):
            check(result.get(timeout=deadline_left(deadline)), 3 * i + 2, "chain of 3")
    return go


# -- cases 1-3 ---------------------------------------------------------------------------------
def compare(label: str, durable: Run, baseline: Run, worker: Worker, store_cpu: Any,
            pairs: int, log: Callable[[str], None] = print) -> dict[str, list[Sample]]:
    engines = [Engine("durable", durable, worker.cpu_ms, store_cpu),
               Engine("canvas", baseline, worker.cpu_ms, store_cpu)]
    return alternate(engines, pairs, label, log)


def rows_for(case: str, samples: dict[str, list[Sample]], per: float, versus: str,
             wall_metric: str, cpu_metric: str, throughput: bool = False
             ) -> tuple[list[Row], dict[str, Any]]:
    """Table rows (wall, worker CPU, Redis CPU per unit) of one durable/canvas comparison."""
    d, c = summary(samples["durable"], per), summary(samples["canvas"], per)
    rows = []
    if throughput:
        dw = per / d["wall_s"] if d["wall_s"] else None
        cw = per / c["wall_s"] if c["wall_s"] else None
        rows.append(Row(case, wall_metric, dw, cw, ratio(dw, cw), versus, ".1f"))
    elif wall_metric.startswith("wall s"):
        rows.append(Row(case, wall_metric, d["wall_s"], c["wall_s"],
                        ratio(d["wall_s"], c["wall_s"]), versus, ".3f"))
    else:
        rows.append(Row(case, wall_metric, d["wall_ms_per"], c["wall_ms_per"],
                        ratio(d["wall_ms_per"], c["wall_ms_per"]), versus))
    rows.append(Row("", cpu_metric, d["cpu_ms_per"], c["cpu_ms_per"],
                    ratio(d["cpu_ms_per"], c["cpu_ms_per"])))
    if d["store_cpu_ms_per"]:
        rows.append(Row("", cpu_metric.replace("worker", "redis-server"), d["store_cpu_ms_per"],
                        c["store_cpu_ms_per"], ratio(d["store_cpu_ms_per"],
                                                     c["store_cpu_ms_per"])))
    for name, s in (("durable", d), ("canvas", c)):
        if s["error"]:
            rows.append(Row("", f"{name} FAILED", s["error"][:60]))
    return rows, {"durable": d, "canvas": c}


# -- case 4: commands and round trips ------------------------------------------------------------
def commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def stats_delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    out = {k: v - before.get(k, 0) for k, v in after.items()}
    out.pop("info", None)  # the bench's own INFO calls
    return {k: v for k, v in out.items() if v}


def count_commands(client: redis.Redis, run: Run, repeat: int, worker_dir: str,
                   driver_dir: str) -> dict[str, Any]:
    """Run ``run`` ``repeat`` times; commandstats and round-trip counter deltas."""
    s0, w0, d0 = commandstats(client), rtt.read(worker_dir), rtt.read(driver_dir)
    t0 = time.perf_counter()
    for _ in range(repeat):
        run()
    wall = time.perf_counter() - t0
    return {"commands": stats_delta(commandstats(client), s0), "wall_s": wall,
            "worker": rtt.delta(rtt.read(worker_dir), w0),
            "driver": rtt.delta(rtt.read(driver_dir), d0)}


def idle_rate(client: redis.Redis, seconds: float) -> float:
    """Commands per second the idle worker sends (sweeper, broker polls)."""
    s0 = commandstats(client)
    time.sleep(seconds)
    return sum(stats_delta(commandstats(client), s0).values()) / seconds


def commands_rows(durable: dict[str, Any], small: dict[str, Any], canvas: dict[str, Any],
                  steps: int, small_steps: int, repeat: int, idle: float
                  ) -> tuple[list[Row], list[str]]:
    """Case 4 rows, and note lines (the busiest commands, what was counted)."""
    per = steps * repeat
    total = sum(durable["commands"].values()) / per
    marginal = (sum(durable["commands"].values()) - sum(small["commands"].values())) / (
        (steps - small_steps) * repeat)
    chain_total = sum(canvas["commands"].values()) / per
    w, cw = durable["worker"], canvas["worker"]
    store_rtt = (w["store_single"] + w["store_pipelines"]) / per
    all_rtt, chain_rtt = w["all_writes"] / per, cw["all_writes"] / per
    rows = [
        Row("4 Redis per sequential step", "commands/step", total, chain_total,
            ratio(total, chain_total), f"chain of {steps} (commandstats)", ".1f"),
        Row("", f"commands/step, marginal ({small_steps}->{steps})", marginal, None, None,
            "", ".1f"),
        Row("", "round trips/step, worker, all clients", all_rtt, chain_rtt,
            ratio(all_rtt, chain_rtt), "chain (same hook)", ".1f"),
        Row("", "store round trips/step (worker)", store_rtt, None, None,
            "(EVALSHA alone + pipelines)", ".1f"),
    ]
    top = sorted(durable["commands"].items(), key=lambda kv: -kv[1])[:10]
    top_chain = sorted(canvas["commands"].items(), key=lambda kv: -kv[1])[:6]
    d = durable["driver"]
    notes = [
        "durable commands/step (commandstats counts the commands Lua scripts run inside "
        "Redis too): " + ", ".join(f"{k} {v / per:.2f}" for k, v in top),
        "chain commands/step:   " + ", ".join(f"{k} {v / per:.2f}" for k, v in top_chain),
        f"store round trips/step (worker): EVALSHA alone {w['store_evalsha'] / per:.2f}, other "
        f"single commands {(w['store_single'] - w['store_evalsha']) / per:.2f}, pipelines "
        f"{w['store_pipelines'] / per:.2f} carrying "
        f"{w['store_pipeline_cmds'] / max(1, w['store_pipelines']):.1f} commands each; "
        f"driver: {(d['store_single'] + d['store_pipelines']) / repeat:.1f} store round "
        f"trips per run (start + wait)",
        f"idle worker background: {idle:.1f} commands/s (included above; a sequential run "
        f"of {steps} took {durable['wall_s'] / repeat:.2f}s)",
    ]
    return rows, notes
