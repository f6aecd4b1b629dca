"""An in-memory orchestrator + workers for replay-engine tests.

A :class:`Sim` holds one run's history (a list of event dicts, JSON round-tripped
like Redis would) and a controllable clock. :meth:`Sim.drive` replays the whole
history with a fresh :class:`Replayer`; in ``"cached"`` mode it also feeds only
the tail to a live instance kept between drives (like the per-process cache) and
asserts that both give identical commands and outcomes. New commands are appended
as events; the test then decides which pending command settles next::

    sim = Sim(my_workflow, args=[1], mode=mode)
    sim.start()                      # run_started, first replay
    sim.complete("fetch", {"x": 1})  # step_completed for the pending "fetch", replay
    sim.fire()                       # the earliest pending timer fires (clock moves to it)
    sim.verify_replay()              # a from-scratch replay agrees with everything so far

Webhooks and hooks are fed the same way: ``sim.receive(seq, body=...)`` records a
``webhook_received`` for the webhook created at ``seq``, ``sim.resume(seq, payload)``
a ``hook_received``, ``sim.conflict(seq, holder)`` a ``hook_conflict``.
"""

from __future__ import annotations

import base64
import builtins
import json
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import pytest

from celery_durable.engine.history import Command
from celery_durable.engine.primitives import call_step
from celery_durable.engine.replay import Outcome, Replayer
from celery_durable.errors import StepFailed

MODES = ("fresh", "cached")
START = 1_700_000_000.0

#: ``asyncio.TaskGroup`` and ``asyncio.timeout`` exist from Python 3.11 on.
needs_py311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="needs Python 3.11+")

WorkflowFn = Callable[..., Coroutine[Any, Any, Any]]


def encode_error(exc: BaseException | str, message: str = "") -> dict[str, Any]:
    """What a worker would record for a failed step."""
    if isinstance(exc, str):
        return {"type": exc, "message": message}
    cls = type(exc)
    return {"type": f"{cls.__module__}.{cls.__qualname__}", "message": str(exc)}


def decode_error(error: dict[str, Any], step: str) -> BaseException:
    """Rebuild builtin exception types; anything else becomes :class:`StepFailed`."""
    module, _, name = str(error.get("type")).rpartition(".")
    cls = getattr(builtins, name, None) if module == "builtins" else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls(error.get("message", ""))
    return StepFailed(str(error.get("type")), str(error.get("message")), step)


def roundtrip(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A deep copy through JSON, as the events would come back from Redis."""
    return json.loads(json.dumps(list(events)))


def same_outcome(a: Outcome | None, b: Outcome | None) -> bool:
    """Equal status and value; errors equal by type and repr (instances differ per replay)."""
    if a is None or b is None:
        return a is b
    return (a.status == b.status and a.value == b.value
            and type(a.error) is type(b.error) and repr(a.error) == repr(b.error))


def command_events(commands: Iterable[Command]) -> list[dict[str, Any]]:
    """Commands as comparable event dicts (``at`` left out)."""
    return [command.to_event(0.0) for command in commands]


class Sim:
    """One run: history, clock, and the replays that advance it."""

    def __init__(self, workflow: WorkflowFn, *, args: list[Any] | None = None,
                 kwargs: dict[str, Any] | None = None, mode: str = "fresh",
                 run_id: str = "run-1", name: str = "tests.workflow", seed: int = 42,
                 start: float = START, block_deadline: float = 2.0,
                 error_decoder: Callable[[dict[str, Any], str], BaseException] = decode_error,
                 secret: str | None = None, webhook_base_url: str | None = None,
                 ) -> None:
        assert mode in MODES, mode
        self.workflow = workflow
        self.mode = mode
        self.run_id = run_id
        self.clock = start
        self.block_deadline = block_deadline
        self.error_decoder = error_decoder
        self.history: list[dict[str, Any]] = [{
            "type": "run_started", "at": start, "workflow": name,
            "args": list(args or []), "kwargs": dict(kwargs or {}), "seed": seed,
        }]
        if secret is not None:
            self.history[0]["secret"] = secret
        self.webhook_base_url = webhook_base_url
        self._requests = 0
        self.outcome: Outcome | None = None
        self.replays = 0
        self._live: Replayer | None = None

    # -- replaying ---------------------------------------------------------------
    def replayer(self) -> Replayer:
        options: dict[str, Any] = {}
        if self.webhook_base_url is not None:
            options["webhook_base_url"] = self.webhook_base_url
        return Replayer(self.workflow, run_id=self.run_id, error_decoder=self.error_decoder,
                        block_deadline=self.block_deadline, **options)

    def inspect(self, read: Callable[[Replayer], Any]) -> Any:
        """``read`` applied to a from-scratch replay of the history (before it is discarded);
        in ``"cached"`` mode the live instance, if any, must give the same answer."""
        replayer = self.replayer()
        try:
            replayer.feed(roundtrip(self.history))
            replayer.take_new_commands()
            found = read(replayer)
        finally:
            replayer.discard()
        if self._live is not None:
            assert read(self._live) == found, "cached and fresh replays disagree"
        return found

    def live_tokens(self) -> list[tuple[str, str]]:
        """``Replayer.live_tokens()`` after replaying the history so far."""
        return self.inspect(lambda replayer: replayer.live_tokens())

    def replay_fresh(self) -> tuple[list[Command], Outcome | None]:
        """Replay the whole history from scratch; new commands and outcome."""
        replayer = self.replayer()
        try:
            replayer.feed(roundtrip(self.history))
            return replayer.take_new_commands(), replayer.outcome
        finally:
            replayer.discard()

    def _replay_live(self) -> tuple[list[Command], Outcome | None]:
        if self._live is None:
            self._live = self.replayer()
        live = self._live
        try:
            live.feed(roundtrip(self.history[live.position:]))
        except BaseException:
            live.discard()
            self._live = None
            raise
        commands, outcome = live.take_new_commands(), live.outcome
        if outcome is not None:
            live.discard()
            self._live = None
        return commands, outcome

    def drive(self) -> list[dict[str, Any]]:
        """Replay, append the new command events (and the end event); return the new ones."""
        assert self.outcome is None, "the run has ended"
        self.replays += 1
        commands, outcome = self.replay_fresh()
        if self.mode == "cached":
            live_commands, live_outcome = self._replay_live()
            assert command_events(live_commands) == command_events(commands), (
                "cached and fresh replays emitted different commands")
            assert same_outcome(live_outcome, outcome), (
                f"cached outcome {live_outcome} != fresh outcome {outcome}")
        new = [command.to_event(self.clock) for command in commands]
        self.history.extend(new)
        if outcome is not None:
            self.outcome = outcome
            end = {"type": f"run_{outcome.status}", "at": self.clock}
            if outcome.status == "completed":
                end["result"] = outcome.value
            self.history.append(end)
        return new

    def start(self) -> list[dict[str, Any]]:
        assert len(self.history) == 1, "already started"
        return self.drive()

    def verify_replay(self) -> Outcome | None:
        """A from-scratch replay of the history emits nothing new and ends the same way."""
        commands, outcome = self.replay_fresh()
        assert commands == [], f"replay emitted commands the history lacks: {commands}"
        assert same_outcome(outcome, self.outcome), f"{outcome} != {self.outcome}"
        return outcome

    # -- what the history holds --------------------------------------------------
    @property
    def done(self) -> bool:
        return self.outcome is not None

    @property
    def commands(self) -> list[dict[str, Any]]:
        return [e for e in self.history if e["type"] in ("step_scheduled", "timer_scheduled")]

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [e for e in self.history if e["type"] == "step_scheduled"]

    @property
    def step_names(self) -> list[str]:
        return [e["name"] for e in self.steps]

    @property
    def timers(self) -> list[dict[str, Any]]:
        return [e for e in self.history if e["type"] == "timer_scheduled"]

    def events_of(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.history if e["type"] in types]

    @property
    def created(self) -> list[dict[str, Any]]:
        """``webhook_created`` and ``hook_created`` events, in order."""
        return self.events_of("webhook_created", "hook_created")

    @property
    def webhooks(self) -> list[dict[str, Any]]:
        return self.events_of("webhook_created")

    @property
    def hooks(self) -> list[dict[str, Any]]:
        return self.events_of("hook_created")

    @property
    def pending(self) -> dict[int, dict[str, Any]]:
        """Scheduled commands with no outcome delivered yet, by seq."""
        delivered = {e["seq"] for e in self.history
                     if e["type"] in ("step_completed", "step_failed", "timer_fired")}
        return {e["seq"]: e for e in self.commands if e["seq"] not in delivered}

    @property
    def pending_steps(self) -> list[str]:
        return [e["name"] for e in self.pending.values() if e["type"] == "step_scheduled"]

    def seq_of(self, target: int | str) -> int:
        """A pending step by seq, or by name when exactly one pending step has it."""
        if isinstance(target, int):
            assert target in self.pending, f"#{target} is not pending: {self.pending}"
            return target
        found = [seq for seq, e in self.pending.items()
                 if e["type"] == "step_scheduled" and e["name"] == target]
        assert len(found) == 1, f"{len(found)} pending steps named {target!r}: {self.pending}"
        return found[0]

    # -- what workers, timers and users do -------------------------------------
    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def record(self, event: dict[str, Any], *, drive: bool = False) -> list[dict[str, Any]]:
        """Append any event (informational ones, say) as it is, at the current clock."""
        self.history.append({"at": self.clock, **event})
        return self.drive() if drive else []

    def complete(self, target: int | str, value: Any = None, *,
                 drive: bool = True) -> list[dict[str, Any]]:
        seq = self.seq_of(target)
        return self.record({"type": "step_completed", "seq": seq, "result": value}, drive=drive)

    def fail(self, target: int | str, exc: BaseException | str, message: str = "", *,
             drive: bool = True) -> list[dict[str, Any]]:
        seq = self.seq_of(target)
        return self.record({"type": "step_failed", "seq": seq,
                            "error": encode_error(exc, message)}, drive=drive)

    def fire(self, seq: int | None = None, *, drive: bool = True) -> list[dict[str, Any]]:
        """Fire a pending timer (the earliest due by default), never before it is due."""
        timers = {s: e for s, e in self.pending.items() if e["type"] == "timer_scheduled"}
        assert timers, "no pending timer"
        if seq is None:
            seq = min(timers, key=lambda s: (timers[s]["due"], s))
        assert seq in timers, f"#{seq} is not a pending timer: {timers}"
        self.clock = max(self.clock, timers[seq]["due"])
        return self.record({"type": "timer_fired", "seq": seq}, drive=drive)

    def receive(self, seq: int, body: bytes | str = b"", *, method: str = "POST",
                headers: Iterable[tuple[str, str]] = (), args: Iterable[tuple[str, str]] = (),
                path: str | None = None, request_id: str | None = None,
                drive: bool = True) -> list[dict[str, Any]]:
        """An HTTP request to the webhook created at ``seq`` (not checked: tests may lie)."""
        self._requests += 1
        if isinstance(body, str):
            body = body.encode()
        request = {
            "id": request_id or f"req-{self._requests}", "method": method,
            "path": path if path is not None else f"/webhook/seq{seq}",
            "headers": [[k, v] for k, v in headers], "args": [[k, v] for k, v in args],
            "body": base64.b64encode(body).decode(),
        }
        return self.record({"type": "webhook_received", "seq": seq, "request": request},
                           drive=drive)

    def resume(self, seq: int, payload: Any = None, *,
               drive: bool = True) -> list[dict[str, Any]]:
        """``durable.resume_hook(token, payload)`` for the hook created at ``seq``."""
        return self.record({"type": "hook_received", "seq": seq, "payload": payload},
                           drive=drive)

    def conflict(self, seq: int, holder: str = "run-other", *,
                 drive: bool = True) -> list[dict[str, Any]]:
        """The hook created at ``seq`` could not claim its token: ``holder`` has it."""
        return self.record({"type": "hook_conflict", "seq": seq, "holder": holder},
                           drive=drive)

    def cancel(self, *, drive: bool = True) -> list[dict[str, Any]]:
        return self.record({"type": "cancel_requested"}, drive=drive)

    def close(self) -> None:
        if self._live is not None:
            self._live.discard()
            self._live = None


def step(name: str, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
    """What calling a ``@durable.step`` inside a workflow gives: a coroutine scheduling it."""
    return call_step(name, list(args), dict(kwargs))
