"""Replaying saved histories against the code deployed now: the check a team runs before
a deploy.

A history (from ``celery durable export``, or :meth:`Runtime.export`) is fed to a fresh
:class:`~celery_durable.engine.replay.Replayer` of the current workflow code. Nothing
runs and nothing is written: steps are not called, the store is not touched. The
result says ``ok``, or ``diverged`` with the position, the command the history holds
and the one the code produces now.

>>> for result in replay_file("histories.jsonl", durable.runtime):     # doctest: +SKIP
...     assert result.ok, result
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from . import codec
from .engine import history as h
from .engine.replay import Replayer
from .errors import CorruptHistory, NonDeterminismError
from .orchestrator import WorkflowFn, check_started


class ReplaySource(Protocol):
    """What replaying needs of a runtime: the workflows and the error rebuilding."""

    def workflow_function(self, name: str) -> WorkflowFn | None: ...

    def decode_error(self, error: dict[str, Any], step: str | None = None
                     ) -> BaseException: ...

    @property
    def webhook_base_url(self) -> str:
        """Where webhook URLs point (``durable_webhook_base_url``): a step given
        ``webhook.url`` must get the URL the history recorded."""
        ...


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    """How one history replayed against the current code."""

    run_id: str
    workflow: str
    ok: bool
    position: int | None = None
    expected: str | None = None
    actual: str | None = None
    #: Why the history could not be replayed at all (no such workflow, unreadable).
    error: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"ok        {self.run_id}  {self.workflow}"
        if self.error:
            return f"error     {self.run_id}  {self.workflow}: {self.error}"
        return (f"diverged  {self.run_id}  {self.workflow} at #{self.position}: the history "
                f"holds {self.expected}, the code now produces {self.actual}")


def export_record(run_id: str, workflow: str, events: list[dict[str, Any]]) -> str:
    """One line of an export: ``{"run_id", "workflow", "events"}`` as JSON.

    The events are the raw history, the run's secret included (a replay derives the same
    webhook tokens from it): treat exports as credentials of live runs.
    """
    return codec.dumps({"run_id": run_id, "workflow": workflow, "events": events})


def read_exports(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The records of an export, line by line; ``ValueError`` naming a bad line."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = codec.loads(line)
        except ValueError as exc:
            raise ValueError(f"line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict) or not isinstance(record.get("events"), list):
            raise ValueError(f"line {number}: not an exported run (an object with "
                             "run_id, workflow and events)")
        yield record


def replay_record(record: dict[str, Any], source: ReplaySource) -> ReplayResult:
    """Replay one exported run against the current code (no step runs, nothing written)."""
    events: list[dict[str, Any]] = record["events"]
    run_id = str(record.get("run_id") or "?")
    workflow = str(record.get("workflow") or (events[0].get("workflow") if events else "?"))
    try:
        check_started(run_id, events)
    except CorruptHistory as exc:
        return ReplayResult(run_id, workflow, False, error=str(exc))
    fn = source.workflow_function(workflow)
    if fn is None:
        return ReplayResult(run_id, workflow, False,
                            error=f"no workflow named {workflow!r} in this code")
    replayer = Replayer(fn, run_id=run_id, error_decoder=source.decode_error,
                        webhook_base_url=source.webhook_base_url,
                        voided=h.redriven_positions(events))
    try:
        replayer.feed(events)
        new = replayer.take_new_commands()
        ended = any(e.get("type") in h.END_EVENTS for e in events[-1:])
        if ended and new:  # the history ended; the code goes on
            return ReplayResult(run_id, workflow, False, position=new[0].seq,
                                expected="the run's end", actual=new[0].describe())
    except NonDeterminismError as exc:
        return ReplayResult(run_id, workflow, False, position=exc.position,
                            expected=str(exc.expected), actual=str(exc.actual))
    except Exception as exc:  # noqa: BLE001 - the workflow code failed to replay
        return ReplayResult(run_id, workflow, False, error=f"{type(exc).__name__}: {exc}")
    finally:
        replayer.discard()
    return ReplayResult(run_id, workflow, True)


def replay_file(path: str | Path, source: ReplaySource,
                only: Callable[[dict[str, Any]], bool] | None = None) -> list[ReplayResult]:
    """Replay every run of an export file (JSON lines), or of a folder of them (``*.jsonl``).

    >>> results = replay_file("tests/histories", durable.runtime)   # doctest: +SKIP
    >>> assert all(r.ok for r in results), [str(r) for r in results if not r.ok]
    """
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    results = []
    for file in files:
        with file.open() as lines:
            for record in read_exports(lines):
                if only is None or only(record):
                    results.append(replay_record(record, source))
    return results


def dumps_result(result: ReplayResult) -> str:
    """A result as one JSON line."""
    return json.dumps(dataclasses.asdict(result))
