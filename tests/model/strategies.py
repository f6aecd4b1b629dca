"""Hypothesis strategies: random programs (``language.py``) and the fault to inject.

:func:`examples` draws a fault, then a raw program, and repairs the program under the
fault's latency bounds so that its outcome is determined (``language.repair``). Draws
shrink towards leaves, ``seq``, succeeding steps and no fault.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from tests.model.language import (
    ALWAYS,
    ERRORS,
    LONG,
    bounds_for,
    estimate_events,
    reference,
    repair,
    steps_of,
)

MAX_STEPS = 8
#: Levels of composite nodes (the root being the first): leaves sit at depth <= 3.
MAX_DEPTH = 3
SLEEPS = (0.5, 0.0, 1.5, 2.0)
TIMEOUTS = (0.5, 1.5, LONG)
AFTERS = (0.0, 2.0, None)
SLOW_LEAVES = ({"k": "hook", "after": None}, {"k": "sleep", "s": 2.0},
               {"k": "hook", "after": 2.0})
#: A program whose shortest possible run is longer than this is not drawn (time budget).
MAX_MIN_SECONDS = 5.0
MIN_RESTART_SECONDS = 0.5
RESTART_TAIL = {"k": "sleep", "s": 1.5}
FAULTS = ("none", "kill", "duplicate")
#: With a private Redis: half the examples restart it.
SOAK_FAULTS = ("none", "redis_restart", "kill", "redis_restart", "duplicate", "redis_restart")


@st.composite
def raw_programs(draw: st.DrawFn, max_steps: int = MAX_STEPS, max_depth: int = MAX_DEPTH
                 ) -> dict[str, Any]:
    """A program tree with at most ``max_steps`` steps and ``max_depth`` composite levels."""
    ids = iter(range(1000))
    budget = [max_steps]

    def leaf() -> dict[str, Any]:
        kinds = ["step", "step", "sleep", "hook"] if budget[0] > 0 else ["sleep", "hook"]
        kind = draw(st.sampled_from(kinds))
        if kind == "step":
            budget[0] -= 1
            return {"k": "step", "id": next(ids),
                    "fails": draw(st.sampled_from((0, 0, 1, 2, ALWAYS))),
                    "retries": draw(st.sampled_from((0, 1, 2))),
                    "error": draw(st.sampled_from(ERRORS))}
        if kind == "sleep":
            return {"k": "sleep", "s": draw(st.sampled_from(SLEEPS))}
        return {"k": "hook", "after": draw(st.sampled_from(AFTERS))}

    def node(depth: int) -> dict[str, Any]:
        # The root is a composite, deeper nodes less and less often.
        if depth >= max_depth or (depth > 0 and draw(st.integers(0, 9)) < 2 + 3 * depth):
            return leaf()
        kind = draw(st.sampled_from(("seq", "gather", "gather_settled", "race",
                                     "all_settled", "wait_for", "race", "wait_for")))
        # Races and timeouts are often against something slow, so that their outcome
        # is determined (and timeouts do fire).
        slow = kind in ("race", "wait_for") and draw(st.booleans())
        if kind == "wait_for":
            child = node(depth + 1)
            if slow:  # something, then something slow: the timeout cuts the sequence
                tail = dict(draw(st.sampled_from(SLOW_LEAVES)))
                child = {"k": "seq", "c": [node(depth + 2), tail]} \
                    if depth + 1 < max_depth else tail
            timeout = draw(st.sampled_from(TIMEOUTS[:2] if slow else TIMEOUTS))
            return {"k": kind, "t": timeout, "c": [child]}
        low = 1 if kind == "seq" and depth > 0 else 2
        children = [node(depth + 1) for _ in range(draw(st.integers(low, 3)) - slow)]
        if slow:
            children.insert(draw(st.integers(0, len(children))),
                            dict(draw(st.sampled_from(SLOW_LEAVES))))
        return {"k": kind, "c": children}

    return {"root": node(0), "escape": draw(st.booleans())}


@st.composite
def faults(draw: st.DrawFn, kinds: tuple[str, ...] = FAULTS) -> dict[str, Any]:
    """``{"kind", "at"}``: the fault comes once the history holds about ``at`` (a
    fraction) of the events the run will record; a kill names the worker (0 or 1), a
    duplicate what it re-sends."""
    fault: dict[str, Any] = {"kind": draw(st.sampled_from(kinds)),
                             "at": draw(st.integers(1, 9)) / 10}
    if fault["kind"] == "kill":
        fault["worker"] = draw(st.integers(0, 1))
    elif fault["kind"] == "duplicate":
        fault["steps"] = draw(st.booleans())
        fault["timers"] = draw(st.booleans())
        fault["wake"] = draw(st.booleans()) or not (fault["steps"] or fault["timers"])
    return fault


@st.composite
def examples(draw: st.DrawFn, kinds: tuple[str, ...] = FAULTS) -> dict[str, Any]:
    """``{"program", "fault", "trigger"}``: a determined program, its fault, and the
    number of history events after which the fault is injected."""
    fault = draw(faults(kinds))
    bounds = bounds_for(fault["kind"])
    program = repair(draw(raw_programs()), bounds)
    res = reference(program, bounds)
    if fault["kind"] == "redis_restart" and res.lo < MIN_RESTART_SECONDS:
        # A restart takes a moment to begin: give it a run that lasts (a timer in flight).
        tail = {"k": "gather_settled", "c": [program["root"], dict(RESTART_TAIL)]}
        program = dict(program, root=tail)
        res = reference(program, bounds)
    assume(res.lo <= MAX_MIN_SECONDS and steps_of(program))
    trigger = max(1, round(fault["at"] * estimate_events(program, res)))
    return {"program": program, "fault": fault, "trigger": trigger}
