"""Fixtures for the replay-engine tests: a :class:`~.sim.Sim` factory run in both modes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .sim import MODES, Sim


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """``fresh``: every drive replays the whole history; ``cached``: a live instance is
    also fed only the tail and must agree with the fresh replay."""
    return str(request.param)


@pytest.fixture
def make_sim(mode: str) -> Iterator[Callable[..., Sim]]:
    """``make_sim(workflow, args=[...], ...)`` → a started :class:`Sim` in this test's mode."""
    sims: list[Sim] = []

    def make(workflow: Any, *, start: bool = True, **options: Any) -> Sim:
        sim = Sim(workflow, mode=mode, **options)
        sims.append(sim)
        if start:
            sim.start()
        return sim

    yield make
    for sim in sims:
        sim.close()
