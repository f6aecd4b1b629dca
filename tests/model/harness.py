"""The test side of the model check: two workers that load the model module, one
example run in this process or in a client process of its own, and the figures.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery_durable.devstack import WorkerProcess, wait_for
from tests.model.driver import (
    Client,
    Duplicates,
    Nothing,
    Observation,
    check,
    drive,
    timestamp,
)
from tests.model.language import NORMAL, Res, bounds_for, describe, hooks_of, reference, steps_of

ROOT = Path(__file__).resolve().parents[2]
#: Lost work comes back within a few seconds (a lease, then a sweep).
LEASE = 2.0
WORKER_ENV = {"DURABLE_TEST_LEASE": str(LEASE)}


class Workers:
    """Two prefork workers (concurrency 2) on the session's queues that also import
    ``tests.model.proj_model``; a killed one is started again by :meth:`ensure`."""

    def __init__(self, env: dict[str, str], logs: Path, count: int = 2) -> None:
        self.env = dict(env, **WORKER_ENV)
        self.logs = logs
        self.queue = env["DURABLE_TEST_QUEUE"]
        self.workers: list[WorkerProcess | None] = [None] * count
        self.started = 0
        self.killed: set[int] = set()
        #: Workers found dead that no fault killed (see test_found_bugs.py).
        self.exits = 0

    def _start(self, index: int) -> WorkerProcess:
        self.started += 1
        worker = WorkerProcess(
            "tests.e2e.proj", self.logs / f"worker{index}-{self.started}.log",
            queues=[self.queue, f"{self.queue}-other"], concurrency=2, pool="prefork",
            env=self.env, cwd=ROOT, hostname=f"model{index}-{self.started}-{self.queue}@%h",
            extra_args=["--include", "tests.model.proj_model"])
        return worker

    def ensure(self, keep_killed: bool = False) -> int:
        """Every worker alive and ready (the dead ones started again, in parallel), but
        with ``keep_killed`` those a fault killed. Returns how many had exited by
        themselves."""
        fresh, exits = [], 0
        for i, worker in enumerate(self.workers):
            if worker is None or not worker.alive():
                if keep_killed and i in self.killed:
                    continue
                if worker is not None:
                    exits += i not in self.killed
                    worker.stop()  # closes its log
                self.workers[i] = self._start(i)
                fresh.append(self.workers[i])
        if not keep_killed:
            self.killed.clear()
        for worker in fresh:
            worker.wait_ready(timeout=90)
        self.exits += exits
        return exits

    def kill(self, index: int) -> None:
        worker = self.workers[index]
        if worker is not None:
            self.killed.add(index)
            worker.kill()

    def stop(self) -> None:
        for worker in self.workers:
            if worker is not None:
                worker.stop()

    def tails(self, n: int = 15) -> str:
        return "\n".join(f"--- {w.log.name}\n{w.tail(n)}" for w in self.workers if w)


class KillAt:
    """SIGKILLs worker ``fault["worker"]`` once the history holds ``trigger`` events,
    if the run is still in flight then."""

    def __init__(self, workers: Workers, fault: dict[str, Any], trigger: int) -> None:
        self.workers, self.fault, self.trigger = workers, fault, trigger
        self.notes: list[str] = []

    def poll(self, run: Any, events: list[dict[str, Any]], ended: bool) -> None:
        if self.notes or (len(events) < self.trigger and not ended):
            return
        if ended:
            self.notes.append("kill@end")
            return
        self.workers.kill(self.fault["worker"])
        self.notes.append("kill")


@dataclasses.dataclass
class Outcome:
    example: dict[str, Any]
    res: Res
    obs: Observation
    problems: list[str]

    def report(self, workers: Workers | None = None) -> str:
        """Everything needed to understand a mismatch."""
        program = self.example["program"]
        lines = [f"program: {describe(program['root'])} (escape={program['escape']})",
                 f"example: {json.dumps(self.example)}",
                 f"fault: {self.example['fault']} trigger={self.example['trigger']} "
                 f"injected={self.obs.faults}",
                 f"reference: ok={self.res.ok} value={self.res.value!r} "
                 f"error={self.res.error} required={sorted(self.res.required)}",
                 f"run {self.obs.run_id}: {self.obs.status} result={self.obs.result!r} "
                 f"error={self.obs.error} in {self.obs.seconds:.2f}s", "problems:"]
        lines += [f"  - {p}" for p in self.problems]
        lines.append("history:")
        for e in self.obs.events:
            extra = {k: e[k] for k in ("attempt", "token", "result", "due") if k in e}
            if e["type"] == "step_scheduled":
                extra["id"] = e["args"][0]["id"]
            if "error" in e:
                extra["error"] = (e["error"] or {}).get("exc_type")
            lines.append(f"  {e['at'][11:23]} {e['type']:<16} #{e.get('seq', '-')} {extra}")
        if workers is not None:
            lines.append(workers.tails())
        return "\n".join(lines)


def run_here(example: dict[str, Any], workers: Workers, client: Client) -> Outcome:
    """One example on the session's Redis, driven from this process."""
    program, fault, trigger = example["program"], example["fault"], example["trigger"]
    res = reference(program, bounds_for(fault["kind"]))
    workers.ensure()
    injector: Any = Nothing()
    if fault["kind"] == "kill":
        injector = KillAt(workers, fault, trigger)
    elif fault["kind"] == "duplicate":
        injector = Duplicates(client.dispatcher, fault, trigger)
    obs = drive(client, program, injector, _timeout(res))
    return Outcome(example, res, obs, check(program, res, obs, fault["kind"] == "kill"))


def run_in_client(example: dict[str, Any], workers: Workers, server: Any,
                  env: dict[str, str], scratch: Path) -> Outcome:
    """One example on a private Redis (``server``, restartable), driven by a client
    process of its own; worker kills and Redis restarts are done here when it asks."""
    program, fault, trigger = example["program"], example["fault"], example["trigger"]
    res = reference(program, bounds_for(fault["kind"]))
    workers.ensure()
    signal = scratch / f"signal-{time.monotonic_ns()}"
    request = {"program": program, "fault": fault, "trigger": trigger,
               "timeout": _timeout(res), "signal": str(signal)}
    with (scratch / "client.log").open("a") as log:
        child = subprocess.Popen([sys.executable, "-m", "tests.model.driver"], cwd=ROOT,
                                 env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=log, text=True)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(request))
        child.stdin.close()
        child.stdin = None  # communicate() must not flush it
        if fault["kind"] in ("kill", "redis_restart"):
            wait_for(lambda: signal.exists() or child.poll() is not None, interval=0.005,
                     timeout=_timeout(res) + 30, what="the client to reach the fault")
            if signal.exists() and signal.read_text() == "in flight":
                if fault["kind"] == "kill":
                    workers.kill(fault["worker"])
                else:
                    server.restart()
            Path(f"{signal}.done").touch()
        # A supervisor's part (systemd's Restart=always): a worker that exited by itself
        # (a Redis restart can end one: test_found_bugs.py) is started again at once.
        deadline = time.monotonic() + _timeout(res) + 60
        while child.poll() is None and time.monotonic() < deadline:
            workers.ensure(keep_killed=True)
            time.sleep(0.1)
        out, _ = child.communicate(timeout=10)
    assert child.returncode == 0, (f"the client failed ({child.returncode}); see "
                                   f"{scratch / 'client.log'}\n{json.dumps(request)}")
    obs = Observation(**json.loads(out.strip().splitlines()[-1]))
    lost = fault["kind"] in ("kill", "redis_restart")
    return Outcome(example, res, obs, check(program, res, obs, lost))


def _timeout(res: Res) -> float:
    return min(res.hi, 150.0) + 30.0


class Figures:
    """What the runs did, summed: printed at the end of a soak."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.workers: Workers | None = None  # whose exits to report
        self.started = time.monotonic()
        self.counts: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.run_seconds: list[float] = []
        self.slowest: tuple[float, str] = (0.0, "")
        self.latency: dict[str, float] = collections.defaultdict(float)

    def add(self, outcome: Outcome) -> None:
        obs = outcome.obs
        self.counts["programs"] += 1
        self.counts["step nodes"] += len(steps_of(outcome.example["program"]))
        self.counts["steps scheduled"] += sum(e["type"] == "step_scheduled" for e in obs.events)
        self.counts["step attempts"] += sum(e["type"] == "step_started" for e in obs.events)
        self.counts["hooks resumed"] += sum(e["type"] == "hook_received" for e in obs.events)
        self.counts["timers fired"] += sum(e["type"] == "timer_fired" for e in obs.events)
        self.counts["failed runs"] += obs.status == "failed"
        self.counts["mismatches"] += bool(outcome.problems)
        terminal = collections.Counter(e["seq"] for e in obs.events
                                       if e["type"] in ("step_completed", "step_failed"))
        self.counts["duplicate completions"] += sum(n - 1 for n in terminal.values() if n > 1)
        for note in obs.faults or ["none"]:
            self.faults[note.split(":")[0]] += 1
        self.run_seconds.append(obs.seconds)
        if not any(note in ("kill", "redis_restart") for note in obs.faults):
            for kind, seconds in latencies(outcome.example["program"], obs.events):
                self.latency[kind] = max(self.latency[kind], seconds)
        if obs.seconds > self.slowest[0]:
            self.slowest = (obs.seconds, f"{describe(outcome.example['program']['root'])} "
                                         f"{obs.faults} run {obs.run_id}")
        if os.environ.get("MODEL_VERBOSE") == "1":
            print(f"{obs.seconds:6.2f}s {obs.faults} {outcome.problems or 'ok'} "
                  f"example: {json.dumps(outcome.example)}", flush=True)

    def lines(self) -> list[str]:
        c = self.counts
        runs = sorted(self.run_seconds) or [0.0]
        return [
            f"{self.name}: {c['programs']} programs, {c['step nodes']} step nodes, "
            f"{c['steps scheduled']} steps scheduled, {c['step attempts']} step attempts, "
            f"{c['hooks resumed']} hooks resumed, {c['timers fired']} timers fired, "
            f"{c['failed runs']} runs failed (as expected)",
            "faults injected: " + ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())),
            f"mismatches: {c['mismatches']}, duplicate completions: "
            f"{c['duplicate completions']}, workers that exited by themselves: "
            f"{self.workers.exits if self.workers else 'n/a'}",
            f"run time: median {runs[len(runs) // 2]:.2f}s, max {runs[-1]:.2f}s; "
            f"wall time {time.monotonic() - self.started:.0f}s",
            f"slowest run: {self.slowest[0]:.2f}s {self.slowest[1]}",
            "largest latencies seen without kill or restart (the reference's bounds): "
            f"step attempt {self.latency['step']:.3f}s ({NORMAL.step}s), timer "
            f"{self.latency['timer']:.3f}s ({NORMAL.timer}s), hook "
            f"{self.latency['hook']:.3f}s ({NORMAL.hook}s)",
        ]


def latencies(program: dict[str, Any], events: list[dict[str, Any]]
              ) -> list[tuple[str, float]]:
    """What the reference's bounds stand for, measured in a history: a step's attempt
    from the event before it was scheduled (or its last failed attempt) to its outcome,
    a timer from its due time to its firing, a hook from when the driver was to resume
    it to its payload's arrival."""
    out: list[tuple[str, float]] = []
    hooks = hooks_of(program)
    begun: dict[int, float] = {}
    due: dict[int, float] = {}
    hook_at: dict[int, float] = {}
    previous = 0.0
    for e in events:
        at, seq = timestamp(e["at"]), e.get("seq")
        if e["type"] == "step_scheduled":
            begun[seq] = previous
        elif e["type"] == "timer_scheduled":
            due[seq] = timestamp(e["due"])
        elif e["type"] == "hook_created":
            after = hooks[e["token"].split(":", 2)[2]]["after"]
            if after is not None:
                hook_at[seq] = at + after
        elif e["type"] in ("step_retrying", "step_completed", "step_failed") and seq in begun:
            out.append(("step", at - begun[seq]))
            begun[seq] = timestamp(e["retry_at"]) if "retry_at" in e else at
        elif e["type"] == "timer_fired" and seq in due:
            out.append(("timer", at - due[seq]))
        elif e["type"] == "hook_received" and seq in hook_at:
            out.append(("hook", at - hook_at[seq]))
        if e["type"] in ("run_started", "step_completed", "step_failed", "timer_fired",
                         "hook_received"):
            previous = at
    return out
