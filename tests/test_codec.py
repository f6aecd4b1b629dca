"""Step arguments as JSON gives them back: the scalar fast path agrees with the round trip."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import pytest

from celery_durable import codec


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(("args", "kwargs"), [
    ((1, "a", None, True, 2.5, -(2**70)), {"k": 3, "s": "\u00e9\ud800"}),
    ((), {}),
    ((Colour.RED, (1, 2)), {"when": dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)}),
    ((Decimal("1.10"), uuid.UUID(int=7), b"\x00\xff"), {"date": dt.date(2026, 1, 2)}),
])
def test_normalized_arguments_are_what_json_gives_back(args: tuple, kwargs: dict) -> None:
    expected = codec.loads(codec.dumps([list(args), kwargs]))
    plain_args, plain_kwargs = codec.normalize_call("step 'x'", args, kwargs)
    assert [plain_args, plain_kwargs] == expected
    # Exact types too: an IntEnum comes back as a plain int, a tuple as a list.
    assert [type(a) for a in plain_args] == [type(a) for a in expected[0]]
    assert {k: type(v) for k, v in plain_kwargs.items()} == \
        {k: type(v) for k, v in expected[1].items()}


def test_the_fast_path_returns_copies() -> None:
    args, kwargs = (1, 2), {"a": 1}
    plain_args, plain_kwargs = codec.normalize_call("step 'x'", args, kwargs)
    plain_kwargs["b"] = 2
    assert kwargs == {"a": 1} and isinstance(plain_args, list)


def test_an_unencodable_argument_is_named() -> None:
    with pytest.raises(TypeError, match=r"step 'x': argument 'cb' of type function"):
        codec.normalize_call("step 'x'", (1,), {"cb": lambda: None})
