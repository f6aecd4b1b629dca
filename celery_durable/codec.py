"""Arguments, results and errors to JSON and back.

Values use kombu's JSON (so ``datetime``, ``date``, ``Decimal`` and ``UUID``
round-trip); exceptions use Celery's own ``prepare_exception`` /
``exception_to_python`` so a step's error comes back as its own type wherever
that type is importable, and as :class:`~celery_durable.errors.StepFailed`
otherwise.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from typing import Any

from celery import Celery
from celery.backends.base import DisabledBackend
from kombu.utils.json import dumps as _dumps
from kombu.utils.json import loads as _loads

from .errors import StepFailed, WorkflowFailed

_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

#: Traceback text kept with a recorded error (for people reading the history).
TRACEBACK_LIMIT = 4000


def dumps(value: Any) -> str:
    """Encode ``value`` as JSON (kombu's encoder); ``TypeError`` if it cannot be."""
    return _dumps(value)


def loads(text: str | bytes) -> Any:
    """Decode JSON written by :func:`dumps`."""
    return _loads(text)


def _type_path(value: Any) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__name__
    return f"{kind.__module__}.{kind.__qualname__}"


def _first_unencodable(value: Any) -> Any:
    """The innermost part of ``value`` that JSON refuses (for a precise message)."""
    children: list[Any] = []
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, (list, tuple)):
        children = list(value)
    for child in children:
        try:
            dumps(child)
        except (TypeError, ValueError):
            return _first_unencodable(child)
    return value


def normalize_call(what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[list[Any], dict[str, Any]]:
    """Check a step call's arguments and return them as JSON will give them back.

    ``what`` names the callee in errors, e.g. ``"step 'proj.add'"``.

    >>> normalize_call("step 'proj.add'", (1, (2, 3)), {})
    ([1, [2, 3]], {})
    """
    try:
        plain_args, plain_kwargs = loads(dumps([list(args), kwargs]))
        return plain_args, plain_kwargs
    except (TypeError, ValueError):
        pass
    places = [(f"argument {i}", a) for i, a in enumerate(args)]
    places += [(f"argument {k!r}", v) for k, v in kwargs.items()]
    for where, value in places:
        try:
            dumps(value)
        except (TypeError, ValueError):
            bad = _first_unencodable(value)
            inner = "" if bad is value else f" (it holds a {_type_path(bad)})"
            raise TypeError(
                f"{what}: {where} of type {_type_path(value)}{inner} cannot be sent as "
                "JSON; pass plain data (str, int, float, bool, None, list, dict, datetime, "
                "Decimal, UUID) such as an id to load inside the step") from None
    raise TypeError(f"{what}: its arguments cannot be sent as JSON")


def check_value(what: str, value: Any) -> Any:
    """Return ``value`` as JSON gives it back, or raise ``TypeError`` naming ``what``."""
    try:
        return loads(dumps(value))
    except (TypeError, ValueError):
        bad = _first_unencodable(value)
        inner = "" if bad is value else f" (it holds a {_type_path(bad)})"
        raise TypeError(f"{what} of type {_type_path(value)}{inner} cannot be stored as JSON; "
                        "return plain data (str, int, float, bool, None, list, dict, "
                        "datetime, Decimal, UUID)") from None


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
