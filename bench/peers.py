"""Benchmark (``make bench-peers``): durable against DBOS Transact and pyworkflow-engine.

Each peer is installed in a venv of its own under ``bench/.peers/<name>/`` (git-ignored;
re-installed when its pinned requirement changes) and driven through a small driver in
that venv (``bench/peer_dbos.py``, ``bench/peer_pyworkflow.py``: one JSON line per run).
All engines stay up for the whole bench and take turns, the order rotated each pair:

* durable: one ``celery worker`` on ``bench/proj.py`` (prefork, ``-c 2``, prefetch 1);
* pyworkflow-engine 0.4.0: one ``celery -A pyworkflow.celery.app worker`` with the same
  settings, on the same private Redis (its queue names are fixed: never on a shared
  Redis), its event log in SQLite (its default) in a temp dir;
* DBOS Transact 3.4.0: its driver process is its worker (steps run in-process), its
  system database a PostgreSQL database created for this run and dropped afterwards.

Cases: sequential 100, gather 500, throughput 1,000 x 3 steps. A peer that cannot run
(no PostgreSQL, no PyPI, an install failure) is skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import cases  # noqa: E402
from bench.harness import (  # noqa: E402
    RESULTS_DIR,
    Engine,
    Worker,
    alternate,
    cleanup,
    import_proj,
    machine,
    machine_line,
    new_tag,
    open_redis,
    pid_of,
    ratio,
    render_cells,
    round_trip_probe,
    start_worker,
    summary,
    tree_cpu_ms,
)
from celery_durable.devstack import WorkerProcess  # noqa: E402

PEERS_DIR = ROOT / "bench" / ".peers"
SPECS = {"dbos": ["dbos==3.4.0"],
         "pyworkflow": ["pyworkflow-engine[redis,sqlite]==0.4.0", "packaging"]}
PW_QUEUES = "pyworkflow.default,pyworkflow.workflows,pyworkflow.steps,pyworkflow.schedules"


def ensure_venv(name: str, install: bool, where: Path = PEERS_DIR) -> tuple[Path | None, str]:
    """The peer's python, installing it when needed; or None and why not."""
    venv = where / name
    python, stamp, spec = venv / "bin" / "python", venv / ".bench-installed", " ".join(SPECS[name])
    if python.exists() and stamp.exists() and stamp.read_text() == spec:
        return python, f"{spec} (installed)"
    if not install:
        return None, "not installed and --no-install given"
    where.mkdir(parents=True, exist_ok=True)
    log = where / f"{name}-install.log"
    print(f"installing {spec} into {venv} (log {log})", flush=True)
    with log.open("w") as out:
        steps = [[sys.executable, "-m", "venv", str(venv)],
                 [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                  *SPECS[name]]]
        for step in steps:
            try:
                code = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT,
                                      timeout=900).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                code, _ = -1, out.write(f"{exc}\n")
            if code != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                return None, f"install failed ({' '.join(step[:3])}...): {tail[0][:160]}"
    stamp.write_text(spec)
    return python, f"{spec} (just installed)"


class Driver:
    """A peer's driver subprocess (``bench/peer_serve.py`` protocol)."""

    def __init__(self, name: str, python: Path, script: str, env: dict[str, str],
                 log: Path, ready_s: float = 180.0) -> None:
        self.name, self.log = name, log
        self._log = log.open("ab")
        self.proc = subprocess.Popen([str(python), str(ROOT / "bench" / script)], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, start_new_session=True)
        self._read(ready_s)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def _read(self, timeout: float) -> Any:
        out: IO[str] = self.proc.stdout  # type: ignore[assignment]
        ready, _, _ = select.select([out], [], [], timeout)
        line = out.readline() if ready else ""
        if not line:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            self.close()
            raise RuntimeError(f"{self.name} driver gave no answer within {timeout:.0f}s "
                               f"(log {self.log}): " + " | ".join(tail))
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("error")))
        return reply.get("value")

    def request(self, case: str, size: int, timeout: float) -> Any:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} driver is gone (log {self.log})")
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"case": case, "size": size}) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"case": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        self._log.close()


def postgres(python: Path, base: str, dbname: str, sql: str) -> str | None:
    """Run ``sql`` on the server's ``postgres`` database with the DBOS venv's psycopg
    (autocommit); None if it worked, else why not."""
    code = ("import sys, psycopg\n"
            "with psycopg.connect(sys.argv[1], autocommit=True, connect_timeout=5) as c:\n"
            "    c.execute(sys.argv[2])\n")
    try:
        out = subprocess.run([str(python), "-c", code, f"{base}/postgres", sql],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if out.returncode == 0:
        return None
    lines = [line for line in out.stderr.splitlines() if line and not line[0].isspace()]
    return (lines or ["?"])[-1][:200]


PEERS = ("DBOS", "pyworkflow")


def table(figures: dict[str, dict[str, dict[str, Any]]], skipped: dict[str, str],
          labels: list[tuple[str, str, float, bool]]) -> str:
    headers = ["case", "metric", "durable", *PEERS, *[f"durable/{p}" for p in PEERS]]
    lines = []
    for key, label, per, throughput in labels:
        unit = "run" if throughput else "step"
        metrics = [("wall", "runs/s" if throughput else
                    ("wall/step ms" if key == "1" else "wall s")),
                   ("cpu", f"engine CPU/{unit} ms"), ("store", f"store CPU/{unit} ms")]
        for n, (metric, metric_name) in enumerate(metrics):
            cells, values = [], {}
            for name in ("durable", *PEERS):
                s = figures.get(key, {}).get(name)
                v = None
                if name in skipped:
                    cells.append("skipped")
                elif s is None or not s["n"]:
                    cells.append("FAILED" if s else "-")
                else:
                    if metric == "wall":
                        v = per / s["wall_s"] if throughput else (
                            s["wall_ms_per"] if key == "1" else s["wall_s"])
                    else:
                        v = s["cpu_ms_per"] if metric == "cpu" else s["store_cpu_ms_per"]
                    cells.append(f"{v:.2f}")
                values[name] = v
            ratios = [ratio(values["durable"], values[p]) for p in PEERS]
            lines.append([label if n == 0 else "", metric_name, *cells,
                          *[f"{r:.2f}x" if r is not None else "" for r in ratios]])
    return render_cells(headers, lines, set(range(2, len(headers))))


class Peers:
    """The engines of one bench-peers run, their processes and what to clean."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.skipped: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.pythons: dict[str, Path] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="durable-bench-peers-"))
        self.dbname = f"celery_durable_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self.made_db = False
        self.workers: list[Worker] = []
        self.drivers: dict[str, Driver] = {}
        self.engines: dict[str, tuple[Any, Any]] = {}  # name -> (cpu probe, store probe)

    def install(self, wanted: set[str], private_redis: bool) -> None:
        for key, name in (("dbos", "DBOS"), ("pyworkflow", "pyworkflow")):
            if key not in wanted:
                self.skipped[name] = "not asked for (--peers)"
                continue
            python, why = ensure_venv(key, not self.args.no_install, self.args.venvs)
            self.versions[name] = why
            if python is None:
                self.skipped[name] = why
            else:
                self.pythons[name] = python
        if "pyworkflow" in self.pythons and not private_redis:
            self.skipped["pyworkflow"] = "no private redis-server (its queue names are fixed)"
        if "DBOS" in self.pythons:
            error = postgres(self.pythons["DBOS"], self.args.pg, self.dbname,
                             f'CREATE DATABASE "{self.dbname}"')
            if error:
                self.skipped["DBOS"] = f"no PostgreSQL at {self.args.pg}: {error}"
            self.made_db = error is None

    def start_pyworkflow(self, url: str, tag: str, redis_cpu: Any) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYWORKFLOW_CELERY_BROKER=url,
                   PYWORKFLOW_STORAGE_TYPE="sqlite", PYWORKFLOW_RUNTIME="celery",
                   PYWORKFLOW_STORAGE_PATH=str(self.tmp / "pyworkflow.db"),
                   PYWORKFLOW_LOG_LEVEL="WARNING")
        python = self.pythons["pyworkflow"]
        cmd = [str(python), "-m", "celery", "-A", "pyworkflow.celery.app", "worker",
               "--pool=prefork", "--concurrency=2", "--prefetch-multiplier=1",
               "--loglevel=WARNING", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-n", f"pw-{tag}@%h", "-Q", PW_QUEUES]
        log = self.tmp / "pyworkflow-worker.log"
        worker = Worker(WorkerProcess.from_command(
            cmd, log, env=dict(env, PYWORKFLOW_DISCOVER="bench.peer_pyworkflow_flows"),
            cwd=ROOT), log)
        self.workers.append(worker)
        self.drivers["pyworkflow"] = Driver("pyworkflow", python, "peer_pyworkflow.py", env,
                                            self.tmp / "pyworkflow-driver.log")
        self.engines["pyworkflow"] = (worker.cpu_ms, redis_cpu)
        print(f"pyworkflow worker pid {worker.pid}, log {log}", flush=True)

    def start_dbos(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_PG_URL=f"{self.args.pg}/{self.dbname}")
        drv = Driver("DBOS", self.pythons["DBOS"], "peer_dbos.py", env, self.tmp / "dbos.log")
        self.drivers["DBOS"] = drv

        def pg_cpu() -> float:
            return sum(tree_cpu_ms(pid) for pid in drv.request("pg_pids", 0, 30))

        self.engines["DBOS"] = (lambda: tree_cpu_ms(drv.pid), pg_cpu)
        print(f"DBOS driver pid {drv.pid}, database {self.dbname}", flush=True)

    def start(self, name: str, starter: Any) -> None:
        if name in self.skipped:
            return
        try:
            starter()
        except (RuntimeError, OSError) as exc:
            self.skipped[name] = f"did not start: {str(exc)[:200]}"

    def warm_up(self, case: str) -> None:
        for name, drv in list(self.drivers.items()):
            if name in self.skipped:
                continue
            try:
                drv.request(case, 5, 180)
            except RuntimeError as exc:
                self.skipped[name] = f"warm-up {case}(5) failed: {str(exc)[:160]}"

    def engine(self, name: str, case: str, size: int, timeout: float) -> Engine:
        cpu, store = self.engines[name]
        drv = self.drivers[name]
        return Engine(name, lambda: drv.request(case, size, timeout), cpu, store)

    def close(self) -> None:
        for drv in self.drivers.values():
            drv.close()
        for worker in self.workers:
            worker.stop()
        if self.made_db:
            error = postgres(self.pythons["DBOS"], self.args.pg, self.dbname,
                             f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
            print(f"dropped database {self.dbname}" + (f": FAILED {error}" if error else ""))
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3, help="rounds, sequential case")
    p.add_argument("--gather-pairs", type=int, default=2, help="rounds, gather case")
    p.add_argument("--throughput-pairs", type=int, default=2, help="rounds, throughput case")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--fanout", type=int, default=500)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--timeout", type=float, default=1200.0, help="s one measured run may take")
    p.add_argument("--peers", default="dbos,pyworkflow", help="which peers to run")
    p.add_argument("--no-install", action="store_true", help="never pip install a peer")
    p.add_argument("--venvs", type=Path, default=PEERS_DIR, help="where the peers' venvs live")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                   help="PostgreSQL server URL for DBOS (a database is created and dropped)")
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "peers.json")
    args = p.parse_args(argv)
    started = time.monotonic()
    handle, redis_line = open_redis(None)
    info = machine(handle.url)
    print(machine_line(info) + "\n" + redis_line, flush=True)
    peers = Peers(args)
    tag = new_tag("bench-peers")
    client = redis.Redis.from_url(handle.url)
    proj = import_proj(handle.url, tag)
    redis_pid = pid_of(handle)
    redis_cpu = (lambda: tree_cpu_ms(redis_pid)) if redis_pid else None
    t = args.timeout
    plan = [("1", f"1 sequential {args.steps}", args.steps, False, "sequential", args.pairs,
             cases.durable_sequential),
            ("2", f"2 gather {args.fanout}", args.fanout, False, "gather", args.gather_pairs,
             cases.durable_gather),
            ("3", f"3 throughput {args.runs}x3", args.runs, True, "throughput",
             args.throughput_pairs, cases.durable_throughput)]
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    deleted = 0
    try:
        peers.install({w.strip() for w in args.peers.split(",") if w.strip()}, handle.owned)
        durable = start_worker(handle.url, tag, "peers", probe=round_trip_probe(proj))
        peers.workers.append(durable)
        print(f"durable worker ready (pid {durable.pid}, log {durable.log})", flush=True)
        peers.start("pyworkflow", lambda: peers.start_pyworkflow(handle.url, tag, redis_cpu))
        peers.start("DBOS", peers.start_dbos)
        for _, _, _, _, case, _, fn in plan:  # warm-up, and the peers' readiness
            peers.warm_up(case)
            fn(proj, 5, t)()
        for key, label, size, _, case, pairs, fn in plan:
            line = [Engine("durable", fn(proj, size, t), durable.cpu_ms, redis_cpu)]
            line += [peers.engine(name, case, size, t) for name in PEERS
                     if name not in peers.skipped]
            samples = alternate(line, pairs, label)
            figures[key] = {name: summary(s, float(size)) for name, s in samples.items()}
    finally:
        peers.close()
        deleted = cleanup(client, tag)
        client.close()
        if handle.owned:
            handle.close()
    print(f"\n{machine_line(info)}\n{redis_line}")
    print("workers: prefork --concurrency=2 --prefetch-multiplier=1 (durable, pyworkflow); "
          "DBOS runs steps in its own process")
    for name in PEERS:
        print(f"{name}: " + (f"SKIPPED: {peers.skipped[name]}" if name in peers.skipped
                             else peers.versions.get(name, "")))
    labels = [(k, lab, float(size), thr) for k, lab, size, thr, _, _, _ in plan]
    print("\n" + table(figures, peers.skipped, labels))
    print("\nratio = durable / peer (wall, CPU: below 1 is durable cheaper; runs/s: above 1 is "
          "durable faster). engine CPU: the worker's processes (durable, pyworkflow; "
          "pyworkflow's SQLite log is written there) or the DBOS process (its steps run in "
          "it); store CPU: redis-server (durable; pyworkflow's broker) or DBOS's PostgreSQL "
          "backends. Medians over rounds; in each round the engines take turns.")
    elapsed = time.monotonic() - started
    print(f"deleted {deleted} keys under {tag}; {elapsed:.0f}s in all; load average "
          f"{os.getloadavg()[0]:.2f} at the end")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": info, "redis": redis_line,
        "versions": peers.versions, "skipped": peers.skipped, "cases": figures,
        "elapsed_s": elapsed, "args": {k: str(v) for k, v in vars(args).items()}},
        indent=1) + "\n")
    print(f"wrote {args.output}")
    failed = [f"{k}/{n}" for k, f in figures.items() for n, s in f.items() if s["error"]]
    if failed:
        print("FAILED: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
