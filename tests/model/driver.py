"""Run one program on the real engine and compare what happened with the reference.

:func:`drive` starts a run of ``model_program``, resumes its hooks as they appear
(``after`` seconds after each was created), lets a fault injector act once the history
holds ``trigger`` events, and returns an :class:`Observation` when the run has ended.
:func:`check` lists every difference from the reference (``language.reference``).

``python -m tests.model.driver`` runs :func:`drive` in a process of its own (for a
private Redis: the test process's app talks to the session's): a JSON request on
stdin, the observation as JSON on the last line of stdout. Faults it cannot inject
itself (a worker kill, a Redis restart) it asks of its parent by creating a file.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from tests.model.language import (
    Res,
    expected_run,
    hook_payload,
    hook_token,
    hooks_of,
    step_error,
    step_outcome,
    step_value,
    steps_of,
)

POLL_S = 0.01
#: Attempts one kill or restart may lose per step: the one it interrupts, and one whose
#: claim's reply the restart lost (it then looks running until its lease runs out).
LOST_ATTEMPTS = 2
END_EVENTS = ("run_completed", "run_failed", "run_cancelled")
#: What a run may still record after its end: nothing that settles anything.
SETTLING = ("step_started", "step_retrying", "step_completed", "step_failed", "timer_fired",
            "hook_received")


def _transient() -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import redis

    # Not OSError: a workflow's own TimeoutError (from wait_for) is one.
    return (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError,
            ConnectionRefusedError, ConnectionResetError, BrokenPipeError)


def timestamp(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@dataclasses.dataclass
class Observation:
    run_id: str
    status: str
    result: Any
    error: list[str] | None
    events: list[dict[str, Any]]
    faults: list[str]
    seconds: float


class Injector(Protocol):
    def poll(self, run: Any, events: list[dict[str, Any]], ended: bool) -> None: ...
    notes: list[str]


class Duplicates:
    """Re-send, once the history holds ``trigger`` events, every step message scheduled
    so far, every timer's ETA message and/or an orchestrate (plain and recovering)."""

    def __init__(self, dispatcher: Any, fault: dict[str, Any], trigger: int) -> None:
        self.dispatcher = dispatcher
        self.fault = fault
        self.trigger = trigger
        self.notes: list[str] = []

    def poll(self, run: Any, events: list[dict[str, Any]], ended: bool) -> None:
        if self.notes or (len(events) < self.trigger and not ended):
            return
        sent = 0
        for e in events:
            if e["type"] == "step_scheduled" and self.fault.get("steps"):
                self.dispatcher.send_step(run.id, e["seq"], e["name"], e["args"], e["kwargs"])
                sent += 1
            elif e["type"] == "timer_scheduled" and self.fault.get("timers"):
                self.dispatcher.send_timer(run.id, e["seq"], timestamp(e["due"]))
                sent += 1
        if self.fault.get("wake"):
            self.dispatcher.wake(run.id)
            self.dispatcher.wake(run.id, recover=True)
            sent += 2
        self.notes.append(f"duplicate{'@end' if ended else ''}:{sent}")


class Signal:
    """Asks the parent process for a fault: creates ``path`` once the history holds
    ``trigger`` events (or the run ended), with that fact in it; the parent creates
    ``path.done`` once it has injected it. Notes ``kind`` if the run was still in flight
    then, else ``kind@end``."""

    def __init__(self, path: Path, trigger: int, kind: str) -> None:
        self.path, self.trigger, self.kind = path, trigger, kind
        self.done = Path(f"{path}.done")
        self.notes: list[str] = []

    def poll(self, run: Any, events: list[dict[str, Any]], ended: bool) -> None:
        if not self.path.exists():
            if len(events) >= self.trigger or ended:
                self.path.write_text("ended" if ended else "in flight")
        if not self.notes and (ended or self.done.exists()):
            self.notes.append(f"{self.kind}@end" if ended else self.kind)


class Nothing:
    notes: list[str] = []

    def poll(self, run: Any, events: list[dict[str, Any]], ended: bool) -> None:
        return None


class Client:
    """What the driver does to runs, through a runtime of the app (the workers' one, or
    one whose settings match the workers': a fresh run whose first message is lost is
    picked up a ``durable_step_lease`` of the *starting* process later)."""

    def __init__(self, runtime: Any, workflow_name: str) -> None:
        self.runtime = runtime
        self.workflow_name = workflow_name
        self.dispatcher = runtime.dispatcher

    @classmethod
    def with_lease(cls, durable: Any, workflow: Any, lease: float) -> Client:
        from celery_durable.runtime import Runtime

        settings = dataclasses.replace(durable.runtime.settings, step_lease=lease)
        return cls(Runtime(durable.app, durable.registry, settings=settings), workflow.name)

    def start(self, program: dict[str, Any]) -> Any:
        from celery_durable import Run

        return Run(self.runtime, self.runtime.start_run(self.workflow_name, [program], {}))

    def resume_hook(self, token: str, payload: Any) -> str:
        return str(self.runtime.resume_hook(token, payload))


def drive(client: Client, program: dict[str, Any], injector: Injector, timeout: float
          ) -> Observation:
    """Start the program, resume its hooks, call the injector each poll; wait (at most
    ``timeout`` s) for the run to end."""
    transient = _transient()
    hooks = hooks_of(program)
    started = time.monotonic()
    run = client.start(program)
    resumed: set[str] = set()
    while True:
        try:
            events = run.events()
            ended = any(e["type"] in END_EVENTS for e in events)
            for e in events:
                if e["type"] != "hook_created" or e["token"] in resumed:
                    continue
                path = e["token"].split(":", 2)[2]
                after = hooks[path]["after"]
                if after is not None and time.time() >= timestamp(e["at"]) + after:
                    try:
                        client.resume_hook(e["token"], hook_payload(path))
                    except LookupError:  # HookNotFound: disposed, or the run ended
                        pass
                    resumed.add(e["token"])
            injector.poll(run, events, ended)
        except transient:  # a Redis restart: try again at the next poll
            ended = False
        if ended:
            break
        if time.monotonic() - started > timeout:
            raise AssertionError(f"run {run.id} did not end within {timeout:.0f}s; "
                                 f"{run.waiting_on()}\n{json.dumps(program)}")
        time.sleep(POLL_S)
    seconds = time.monotonic() - started

    def outcome() -> tuple[str, Any, list[str] | None]:
        status = run.status
        if status == "completed":
            return status, run.result(timeout=10), None
        try:
            run.result(timeout=10)
        except transient:
            raise
        except Exception as exc:  # noqa: BLE001 - the workflow's own error, rebuilt
            return status, None, [type(exc).__name__, str(exc.args[0]) if exc.args else ""]
        return status, None, None

    status, result, error = _patiently(outcome, transient, started + timeout)
    events = _patiently(run.events, transient, started + timeout)
    return Observation(run.id, status, result, error, events, list(injector.notes), seconds)


def _patiently(call: Any, transient: tuple[type[BaseException], ...], deadline: float) -> Any:
    """``call()``, again while Redis is unreachable (a restart), until ``deadline``."""
    while True:
        try:
            return call()
        except transient:
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_S)


# -- comparing ----------------------------------------------------------------------
def check(program: dict[str, Any], res: Res, obs: Observation, lost_attempts: bool
          ) -> list[str]:
    """Every difference between the run and the reference. ``lost_attempts``: a fault
    may have lost step attempts with their worker (more ``step_started`` than attempts
    that recorded something)."""
    problems: list[str] = []
    status, expected = expected_run(program, res)
    if obs.status != status:
        problems.append(f"run {obs.status}, expected {status}")
    elif status == "completed" and obs.result != expected:
        problems.append(f"result {obs.result!r}, expected {expected!r}")
    elif status == "failed" and tuple(obs.error or ()) != tuple(expected):
        problems.append(f"run error {obs.error!r}, expected {list(expected)!r}")
    by_seq: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    for e in obs.events:
        if e.get("seq") is not None:
            by_seq[int(e["seq"])].append(e)
    problems += _check_history(obs.events, by_seq)
    scheduled: dict[int, list[int]] = collections.defaultdict(list)
    for e in obs.events:
        if e["type"] == "step_scheduled":
            scheduled[int(e["args"][0]["id"])].append(int(e["seq"]))
    for node_id, node in steps_of(program).items():
        key, seqs = f"s:{node_id}", scheduled.get(node_id, [])
        if len(seqs) > 1:
            problems.append(f"step#{node_id} scheduled {len(seqs)} times: {seqs}")
        if key not in res.possible:
            if seqs:
                problems.append(f"step#{node_id} is never called, yet scheduled at {seqs}")
            continue
        if key in res.required and not seqs:
            problems.append(f"step#{node_id} was never scheduled")
        for seq in seqs:
            problems += _check_step(node, seq, by_seq[seq], key in res.required,
                                    lost_attempts)
    created: dict[str, list[int]] = collections.defaultdict(list)
    for e in obs.events:
        if e["type"] == "hook_created":
            created[e["token"]].append(int(e["seq"]))
    for path in hooks_of(program):
        key, seqs = f"h:{path}", created.get(hook_token(obs.run_id, path), [])
        if len(seqs) > 1 or (seqs and key not in res.possible):
            problems.append(f"hook {path} created at {seqs}; possible: {key in res.possible}")
        if key in res.required:
            received = [e for s in seqs for e in by_seq[s] if e["type"] == "hook_received"]
            if len(received) != 1:
                problems.append(f"hook {path}: {len(received)} payloads received, expected 1")
    return problems


def _check_history(events: list[dict[str, Any]], by_seq: dict[int, list[dict[str, Any]]]
                   ) -> list[str]:
    problems = []
    ends = [i for i, e in enumerate(events) if e["type"] in END_EVENTS]
    if len(ends) != 1:
        problems.append(f"{len(ends)} end events")
    else:
        late = [e["type"] for e in events[ends[0]:] if e["type"] in SETTLING]
        if late:
            problems.append(f"recorded after the run's end: {late}")
    for seq, evs in by_seq.items():
        kinds = collections.Counter(e["type"] for e in evs)
        if kinds["step_completed"] + kinds["step_failed"] > 1:
            problems.append(f"#{seq}: {kinds['step_completed']} completions and "
                            f"{kinds['step_failed']} failures recorded")
        for kind in ("step_scheduled", "timer_scheduled", "timer_fired", "hook_created"):
            if kinds[kind] > 1:
                problems.append(f"#{seq}: {kinds[kind]} {kind} events")
    return problems


def _check_step(node: dict[str, Any], seq: int, evs: list[dict[str, Any]], required: bool,
                lost_attempts: bool) -> list[str]:
    ok, failures = step_outcome(node)
    where = f"step#{node['id']} (#{seq})"
    attempts = [int(e["attempt"]) for e in evs if e["type"] == "step_started"]
    retrying = sum(e["type"] == "step_retrying" for e in evs)
    done = [e for e in evs if e["type"] == "step_completed"]
    failed = [e for e in evs if e["type"] == "step_failed"]
    problems = []
    if attempts != list(range(1, len(attempts) + 1)):
        problems.append(f"{where}: attempts {attempts}")
    if not done and not failed:
        if required:
            problems.append(f"{where}: no outcome recorded")
        if retrying > failures:
            problems.append(f"{where}: {retrying} failed attempts, expected at most {failures}")
        return problems
    if ok and (failed or done[0].get("result") != step_value(node)):
        problems.append(f"{where}: expected {step_value(node)!r}, got "
                        f"{done[0].get('result') if done else failed[0].get('error')!r}")
    if not ok:
        error = (failed[0].get("error") or {}) if failed else {}
        got = (error.get("exc_type"), error.get("message"))
        if not failed or got != step_error(node):
            problems.append(f"{where}: expected failure {step_error(node)}, got "
                            f"{got if failed else done[0].get('result')!r}")
    if retrying != failures:
        problems.append(f"{where}: {retrying} failed attempts recorded, expected {failures}")
    finished = failures + 1
    if not finished <= len(attempts) <= finished + (LOST_ATTEMPTS if lost_attempts else 0):
        problems.append(f"{where}: {len(attempts)} attempts began, expected {finished}")
    return problems


def main() -> None:
    """The child process: drive one program on the Redis the environment names."""
    request = json.loads(sys.stdin.read())
    from tests.model import proj_model

    fault, trigger = request["fault"], request["trigger"]
    # The environment gives this process the workers' settings (DURABLE_TEST_LEASE).
    client = Client(proj_model.durable.runtime, proj_model.model_program.name)
    injector: Injector
    if fault["kind"] == "duplicate":
        injector = Duplicates(client.dispatcher, fault, trigger)
    elif fault["kind"] == "none":
        injector = Nothing()
    else:
        injector = Signal(Path(request["signal"]), trigger, fault["kind"])
    obs = drive(client, request["program"], injector, request["timeout"])
    print(json.dumps(dataclasses.asdict(obs)))


if __name__ == "__main__":
    main()
