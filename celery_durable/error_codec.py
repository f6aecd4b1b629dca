"""Exceptions to JSON-safe dicts and back, with Celery's rebuilding rules.

A step's error is recorded with Celery's ``prepare_exception`` (type, module,
args) plus its text and traceback, and rebuilt with ``exception_to_python`` after
importing the named module, so every worker rebuilds the same type whatever it
imported before; a type that cannot be rebuilt becomes
:class:`~celery_durable.errors.StepFailed`.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from typing import Any

from celery import Celery
from celery.backends.base import DisabledBackend

from .codec import dumps
from .errors import StepFailed, WorkflowFailed

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

#: Traceback text kept with a recorded error (for people reading the history).
TRACEBACK_LIMIT = 4000


class ErrorCodec:
    """Exceptions to JSON-safe dicts and back, with Celery's rebuilding rules."""

    def __init__(self, app: Celery) -> None:
        self._backend = DisabledBackend(app=app)
        self._backend.serializer = "json"

    def encode(self, exc: BaseException) -> dict[str, Any]:
        info = self._backend.prepare_exception(exc, serializer="json")
        info["message"] = str(exc)
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        info["traceback"] = tb[-TRACEBACK_LIMIT:]
        try:
            dumps(info["exc_message"])
        except (TypeError, ValueError):
            info["exc_message"] = [str(exc)]
        return info

    def decode(self, error: dict[str, Any], step: str | None = None) -> BaseException:
        """Rebuild a step's error as its own type, else :class:`StepFailed`."""
        type_name = str(error.get("exc_type", "Exception"))
        module = str(error.get("exc_module", ""))
        message = str(error.get("message", ""))
        full_type = f"{module}.{type_name}" if module and module != "builtins" else type_name
        if module and module not in sys.modules and _MODULE_NAME.match(module):
            # Import it rather than depend on what this process happened to import
            # before: a replay must rebuild the same type in every worker.
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - not importable here: StepFailed below
                pass
        try:
            exc = self._backend.exception_to_python(
                {k: error[k] for k in ("exc_type", "exc_module", "exc_message") if k in error})
        except Exception:  # noqa: BLE001 - SecurityError, bad data: fall back below
            exc = None
        if exc is None or type(exc).__module__ != module:
            exc = StepFailed(full_type, message, step)
        remote = error.get("traceback")
        if remote and hasattr(exc, "add_note"):
            where = f"step {step!r}" if step else "the workflow"
            exc.add_note(f"raised in {where}; its traceback there:\n{remote}")
        return exc

    def decode_run_error(self, error: dict[str, Any], run_id: str) -> BaseException:
        """Rebuild a run's error as its own type, else :class:`WorkflowFailed`."""
        exc = self.decode(error)
        if isinstance(exc, StepFailed) and exc.step is None:
            return WorkflowFailed(f"run {run_id!r} failed with {exc.type}: {exc.message}",
                                  run_id=run_id, error=error)
        return exc
