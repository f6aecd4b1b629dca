"""What every benchmark script shares: the machine, a Redis, the worker, CPU from /proc,
alternated pairs and the table.

* Redis: a private ``redis-server`` (``start_private_redis``) unless ``--redis-url`` names
  one; a private server makes ``INFO commandstats`` and ``used_memory`` deltas ours alone.
* Worker CPU: user+sys of the worker's main process and every descendant (found through
  ``/proc/<pid>/task/*/children``), read from ``/proc/<pid>/stat`` before and after; the
  main process's ``cutime``/``cstime`` add pool children that exited and were reaped.
* Pairs: the engines of one comparison run in turn, the order rotated each pair, so a
  noisy minute hits all of them; figures are medians over the pairs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    start_private_redis,
)

RESULTS_DIR = ROOT / "bench" / "results"
READY_DEADLINE_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the machine ------------------------------------------------------------------------
def machine(redis_url: str | None = None) -> dict[str, Any]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh
                        if line.startswith("model name")), "?")
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(),
                            "python": platform.python_version(),
                            "platform": platform.platform(terse=True),
                            "load_avg_1m": round(os.getloadavg()[0], 2)}
    try:
        import celery
        import kombu
        info["celery"], info["kombu"] = celery.__version__, kombu.__version__
    except ImportError:
        pass
    info["redis_py"] = redis.__version__
    # redis-py's reply parser (C with hiredis, else Python): both sides use the same one.
    info["parser"] = "hiredis" if importlib.util.find_spec("hiredis") else "python"
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                        capture_output=True, text=True, timeout=5
                                        ).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        info["commit"] = "?"
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        info["redis"] = str(client.info("server").get("redis_version"))
        client.close()
    return info


def machine_line(m: dict[str, Any]) -> str:
    return (f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"Redis {m.get('redis', '?')}, Celery {m.get('celery', '?')}, "
            f"redis-py {m.get('redis_py', '?')} ({m.get('parser', '?')} parser), "
            f"load average {m['load_avg_1m']} at start, commit {m.get('commit', '?')}")


# -- Redis ------------------------------------------------------------------------------
def open_redis(url: str | None) -> tuple[RedisHandle, str]:
    """The bench's Redis and a line saying which: private unless ``url`` is given."""
    if url:
        return RedisHandle(url=url, owned=False), f"redis: {url} (given; may be shared: " \
            "commandstats and memory deltas include other clients)"
    try:
        handle = start_private_redis()
        return handle, f"redis: private redis-server {handle.url} (started for this bench; " \
            "commandstats and memory deltas are the bench's own)"
    except RuntimeError as exc:
        handle = find_or_start_redis()
        return handle, f"redis: {handle.url} ({'private' if handle.owned else 'SHARED'}: " \
            f"no private redis-server could start: {str(exc).splitlines()[0]})"


def pid_of(handle: RedisHandle) -> int | None:
    """The redis-server's pid when this bench started it (its CPU is then readable)."""
    proc = handle.process
    return proc.pid if handle.owned and proc is not None else None


def new_tag(kind: str = "bench") -> str:
    return f"{kind}-{os.getpid()}-{secrets.token_hex(4)}"


# -- CPU and memory from /proc --------------------------------------------------------------
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


def _stat_ticks(pid: int, reaped: bool) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return 0
    fields = data[data.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if reaped:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
    return ticks


def tree_cpu_ms(pid: int | None) -> float:
    """User+sys CPU in ms of ``pid`` and its descendants (and its reaped children)."""
    if pid is None:
        return 0.0
    ticks = sum(_stat_ticks(p, reaped=(p == pid)) for p in process_tree(pid))
    return ticks * 1000.0 / CLK_TCK


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(pid: int) -> tuple[int, list[int]]:
    """(total RSS in KiB of ``pid`` and its descendants, RSS of each)."""
    each = [rss_kb(p) for p in process_tree(pid)]
    return sum(each), each


# -- the worker -----------------------------------------------------------------------------
@dataclasses.dataclass
class Worker:
    """One real ``celery worker`` (prefork, -c 2, prefetch 1) on ``bench/proj.py``."""

    process: WorkerProcess
    log: Path

    @property
    def pid(self) -> int:
        return int(self.process.process.pid)

    def cpu_ms(self) -> float:
        return tree_cpu_ms(self.pid)

    def stop(self) -> None:
        """Warm shutdown: SIGTERM to the main process only (the pool children finish their
        task and exit), SIGKILL to the group after a deadline."""
        if self.process.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.process.stop()


def start_worker(redis_url: str, tag: str, name: str = "w",
                 extra_env: dict[str, str] | None = None,
                 probe: Callable[[], bool] | None = None) -> Worker:
    """Start a worker on ``bench.proj`` under ``tag`` (its queue and key prefix), ready."""
    env = dict(os.environ, BENCH_REDIS_URL=redis_url, BENCH_TAG=tag, PYTHONPATH=str(ROOT),
               **(extra_env or {}))
    log = Path(tempfile.mkdtemp(prefix=f"durable-bench-{name}-")) / "worker.log"
    proc = WorkerProcess("bench.proj", log, queues=[tag], concurrency=2, env=env, cwd=ROOT,
                         loglevel="WARNING", hostname=f"{name}-{tag}@%h")
    worker = Worker(proc, log)
    try:
        proc.wait_ready(READY_DEADLINE_S, probe)
    except BaseException:
        worker.stop()
        raise
    return worker


def import_proj(redis_url: str, tag: str) -> Any:
    """``bench.proj`` in this process, pointed at ``redis_url`` and ``tag`` (first call wins)."""
    os.environ.update(BENCH_REDIS_URL=redis_url, BENCH_TAG=tag)
    from bench import proj
    return proj


def round_trip_probe(proj: Any, queue: str | None = None) -> Callable[[], bool]:
    """A task's round trip through the worker consuming ``queue`` (default: proj's)."""
    def probe() -> bool:
        try:
            return bool(proj.noop_task.apply_async((1,), queue=queue).get(timeout=0.5) == 1)
        except Exception:  # noqa: BLE001 - not ready yet
            return False
    return probe


def cleanup(client: redis.Redis, tag: str) -> int:
    return int(clean_tag(client, tag))


# -- alternated pairs -----------------------------------------------------------------------
@dataclasses.dataclass
class Sample:
    wall_s: float
    cpu_ms: float = 0.0  # the engine's processes (worker tree, or the DBOS process)
    store_cpu_ms: float = 0.0  # the store's server (redis-server, or PostgreSQL backends)
    error: str | None = None


Probe = Callable[[], float]


def measure(fn: Callable[[], None], cpu: Probe, store_cpu: Probe | None = None) -> Sample:
    """Run ``fn`` once; wall time and the CPU deltas. An exception becomes ``error``."""
    c0, s0 = cpu(), store_cpu() if store_cpu else 0.0
    t0 = time.perf_counter()
    error = None
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - reported in the table, the bench goes on
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    wall = time.perf_counter() - t0
    return Sample(wall, cpu() - c0, (store_cpu() - s0) if store_cpu else 0.0, error)


@dataclasses.dataclass
class Engine:
    """One side of a comparison: ``run(size)`` does one measured run, raising on failure."""

    name: str
    run: Callable[[], None]
    cpu: Probe
    store_cpu: Probe | None = None


def alternate(engines: Sequence[Engine], pairs: int, label: str = "",
              log: Callable[[str], None] = print) -> dict[str, list[Sample]]:
    """``pairs`` rounds; in each every engine runs once, the order rotated by one each
    round. An engine that failed is not run again."""
    out: dict[str, list[Sample]] = {e.name: [] for e in engines}
    failed: set[str] = set()
    for i in range(pairs):
        order = list(engines[i % len(engines):]) + list(engines[:i % len(engines)])
        cells = []
        for engine in order:
            if engine.name in failed:
                continue
            sample = measure(engine.run, engine.cpu, engine.store_cpu)
            out[engine.name].append(sample)
            if sample.error:
                failed.add(engine.name)
            cells.append(f"{engine.name} {sample.wall_s:.3f}s"
                         + (f" [{sample.error}]" if sample.error else ""))
        log(f"  {label} pair {i + 1}/{pairs}: " + ", ".join(cells))
    return out


def ok_samples(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.error is None]


def med(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summary(samples: list[Sample], per: float = 1.0) -> dict[str, Any]:
    """Medians (wall s, CPU ms, store CPU ms), each also divided by ``per``; the error."""
    good = ok_samples(samples)
    wall = med([s.wall_s for s in good])
    cpu = med([s.cpu_ms for s in good])
    store = med([s.store_cpu_ms for s in good])
    return {"n": len(good), "wall_s": wall, "cpu_ms": cpu, "store_cpu_ms": store,
            "wall_ms_per": wall * 1000 / per if wall is not None else None,
            "cpu_ms_per": cpu / per if cpu is not None else None,
            "store_cpu_ms_per": store / per if store is not None else None,
            "walls_s": [round(s.wall_s, 4) for s in samples],
            "cpus_ms": [round(s.cpu_ms, 1) for s in samples],
            "error": next((s.error for s in samples if s.error), None)}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


# -- the table ------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    case: str
    metric: str
    durable: float | str | None
    baseline: float | str | None = None
    ratio: float | None = None
    versus: str = ""  # what the baseline is
    fmt: str = ".2f"

    def cells(self) -> list[str]:
        def cell(v: float | str | None) -> str:
            if v is None:
                return "-"
            return v if isinstance(v, str) else format(v, self.fmt)
        r = f"{self.ratio:.2f}x" if self.ratio is not None else ""
        return [self.case, self.metric, cell(self.durable), cell(self.baseline), r, self.versus]


HEADERS = ["case", "metric", "durable", "baseline", "ratio", "baseline is (same run)"]


def render_cells(headers: Sequence[str], lines: Sequence[Sequence[str]],
                 right: set[int]) -> str:
    table = [list(headers)] + [list(line) for line in lines]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    out = []
    for n, line in enumerate(table):
        parts = [c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                 for i, c in enumerate(line)]
        out.append("  ".join(parts).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def render(rows: Sequence[Row], headers: Sequence[str] = HEADERS) -> str:
    return render_cells(headers, [r.cells() for r in rows], {2, 3, 4})
