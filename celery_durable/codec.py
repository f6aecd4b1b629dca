"""Arguments and results to JSON and back (kombu's JSON, nothing of Celery).

``bytes``, ``datetime``, ``date``, ``Decimal`` and ``UUID`` round-trip; a value that cannot be
encoded is refused with a ``TypeError`` naming where it was found. Exceptions are
encoded by :mod:`.error_codec`, which needs Celery.
"""

from __future__ import annotations

import json as _json
from typing import Any

from kombu.utils.json import dumps as _dumps
from kombu.utils.json import loads as _loads


def dumps(value: Any) -> str:
    """Encode ``value`` as JSON (kombu's encoder); ``TypeError`` if it cannot be."""
    return _dumps(value)


def loads(text: str | bytes) -> Any:
    """Decode JSON written by :func:`dumps`.

    Most values hold none of kombu's typed values (``{"__type__": ...}``: datetime,
    Decimal, UUID, bytes): those are decoded by the C parser alone, without kombu's
    Python hook on every object (a replay decodes every event of a history).
    """
    marker = b'"__type__"' if isinstance(text, bytes) else '"__type__"'
    if marker not in text:  # type: ignore[operator]
        return _json.loads(text)
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


#: Types JSON returns unchanged (exact types: a subclass, such as an ``IntEnum``, comes
#: back as its base and takes the round trip).
_SCALARS = frozenset({str, int, float, bool, type(None)})


def normalize_call(what: str, args: tuple[Any, ...], kwargs: dict[str, Any]
                   ) -> tuple[list[Any], dict[str, Any]]:
    """Check a step call's arguments and return them as JSON will give them back.

    ``what`` names the callee in errors, e.g. ``"step 'proj.add'"``.

    >>> normalize_call("step 'proj.add'", (1, (2, 3)), {})
    ([1, [2, 3]], {})
    """
    if all(type(a) in _SCALARS for a in args) and all(
            type(k) is str and type(v) in _SCALARS for k, v in kwargs.items()):
        # JSON gives these back as they are: skip the round trip (a replay makes one
        # call per step it passes).
        return list(args), dict(kwargs)
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
                "JSON; pass plain data (str, int, float, bool, None, list, dict, bytes, "
                "datetime, date, Decimal, UUID) such as an id to load inside the step") from None
    raise TypeError(f"{what}: its arguments cannot be sent as JSON")


def check_value(what: str, value: Any) -> Any:
    """Return ``value`` as JSON gives it back, or raise ``TypeError`` naming ``what``."""
    try:
        return loads(dumps(value))
    except (TypeError, ValueError):
        bad = _first_unencodable(value)
        inner = "" if bad is value else f" (it holds a {_type_path(bad)})"
        raise TypeError(f"{what} of type {_type_path(value)}{inner} cannot be stored as JSON; "
                        "return plain data (str, int, float, bool, None, list, dict, bytes, "
                        "datetime, date, Decimal, UUID)") from None
