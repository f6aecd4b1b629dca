"""Every public exception of celery_durable.

Step code raises :class:`FatalError` or :class:`RetryableError` to steer retries;
the rest are raised by the runtime and name what went wrong and what to do.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = [
    "DurableError",
    "FatalError",
    "RetryableError",
    "StepFailed",
    "ChildWorkflowFailed",
    "NonDeterminismError",
    "WorkflowFailed",
    "WorkflowCancelled",
    "WorkflowBlockedError",
    "RunNotFound",
    "RunConflictError",
    "HookNotFound",
    "HookConflictError",
    "LeaseLost",
    "CorruptHistory",
]


class DurableError(Exception):
    """Base class of the errors raised by the runtime itself."""


class FatalError(Exception):
    """Raised by a step: fail now, do not retry.

    >>> raise FatalError("card number rejected")  # doctest: +SKIP
    """


class RetryableError(Exception):
    """Raised by a step: retry after ``retry_after``.

    ``retry_after`` is seconds (int/float), a ``timedelta`` or an aware/naive-UTC
    ``datetime`` to retry at.

    >>> raise RetryableError("rate limited", retry_after=30)  # doctest: +SKIP
    """

    def __init__(
        self, message: str = "", retry_after: float | _dt.timedelta | _dt.datetime | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def delay_seconds(self, now: _dt.datetime | None = None) -> float | None:
        """The delay this error asks for, in seconds (``None`` if it asks for none)."""
        value = self.retry_after
        if value is None:
            return None
        if isinstance(value, _dt.timedelta):
            return max(0.0, value.total_seconds())
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_dt.timezone.utc)
            now = now or _dt.datetime.now(_dt.timezone.utc)
            return max(0.0, (value - now).total_seconds())
        return max(0.0, float(value))


class StepFailed(DurableError):
    """A step failed with an exception whose class could not be rebuilt here.

    ``type`` is the original class name (with its module), ``message`` its text.
    """

    def __init__(self, type: str, message: str, step: str | None = None) -> None:  # noqa: A002
        self.type = type
        self.message = message
        self.step = step
        where = f"step {step!r} " if step else ""
        super().__init__(f"{where}failed with {type}: {message}")

    def __reduce__(self) -> Any:
        return (StepFailed, (self.type, self.message, self.step))


class ChildWorkflowFailed(DurableError):
    """A child run failed with an exception whose class could not be rebuilt here.

    ``type`` is the original class name (with its module), ``message`` its text,
    ``run_id`` the child's run id.
    """

    def __init__(self, type: str, message: str, run_id: str = "") -> None:  # noqa: A002
        self.type = type
        self.message = message
        self.run_id = run_id
        super().__init__(f"child run {run_id!r} failed with {type}: {message}")

    def __reduce__(self) -> Any:
        return (ChildWorkflowFailed, (self.type, self.message, self.run_id))


class NonDeterminismError(DurableError):
    """Replay produced a command that differs from the one the history holds.

    The run stops in ``failed`` and its history is kept intact: deploy code that
    replays the same way (or start a new run) and the run can be inspected.
    """

    def __init__(self, message: str, position: int | None = None,
                 expected: Any = None, actual: Any = None) -> None:
        # All four in ``args`` so the error survives being recorded and rebuilt.
        super().__init__(message, position, expected, actual)
        self.position = position
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return str(self.args[0])


class WorkflowBlockedError(DurableError):
    """Workflow code blocked the replay (``time.sleep``, network I/O...).

    Workflow code must only compute and await: move blocking work into a step.
    """


class WorkflowFailed(DurableError):
    """The run failed with an error that could not be rebuilt as its own type."""

    def __init__(self, message: str, *, run_id: str | None = None,
                 error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.error = error or {}


class WorkflowCancelled(DurableError):
    """The run was cancelled (``run.cancel()``) and did not catch the cancellation."""


class RunNotFound(DurableError, LookupError):
    """No run has this id (it never existed, or its retention has passed)."""


class RunConflictError(DurableError):
    """A start with a ``run_id`` that a run of another workflow already holds."""

    def __init__(self, message: str, *, run_id: str = "", workflow: str = "",
                 existing_workflow: str = "") -> None:
        super().__init__(message)
        self.run_id = run_id
        self.workflow = workflow
        self.existing_workflow = existing_workflow

    def __reduce__(self) -> Any:
        return (_rebuild_conflict, (str(self), self.run_id, self.workflow,
                                    self.existing_workflow))


def _rebuild_conflict(message: str, run_id: str, workflow: str, existing: str
                      ) -> RunConflictError:
    return RunConflictError(message, run_id=run_id, workflow=workflow, existing_workflow=existing)


class HookNotFound(DurableError, LookupError):
    """No live hook has this token."""


class HookConflictError(DurableError):
    """The hook token is held by another live run."""

    @classmethod
    def held_by(cls, token: str, holder: str) -> HookConflictError:
        return cls(f"hook token {token!r} is held by live run {holder!r}; it is free again "
                   "once that run disposes it or ends")


class CorruptHistory(DurableError):
    """A run's history holds an entry that cannot be read (not JSON, or a ``run_started``
    without what replay needs): the run fails with this error, its history kept."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message, index)
        self.index = index

    def __str__(self) -> str:
        return str(self.args[0])


class LeaseLost(DurableError):
    """This replay lost the run's lease to another worker; its work is discarded."""
