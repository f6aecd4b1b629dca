"""The program language of the model check, its reference interpreter, and the repair
that keeps every generated program's outcome determined (README.md states the rules).

A program is JSON: ``{"root": node, "escape": bool}``; a node's kind is ``k``::

    {"k": "step", "id": 3, "fails": 1, "retries": 2, "error": "ModelError"}
    {"k": "seq" | "gather" | "gather_settled" | "race" | "all_settled", "c": [node, ...]}
    {"k": "wait_for", "t": 0.5, "c": [node]}
    {"k": "sleep", "s": 1.5}
    {"k": "hook", "after": 2.0}      # resumed `after` s after it exists; None: never

Time is the run's durable clock: a node starts at the ``at`` of the event that let it
run, and settles at the ``at`` of its own last event. Each node gets an interval
``[lo, hi]`` of settle times relative to its start, from :class:`Bounds`; a race (or a
fail-fast gather's first error, or a timeout) is *determined* only when one contender's
``hi`` is below every other contender's ``lo``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

INF = math.inf
#: The timeout a repaired ``wait_for`` gets: far beyond any program's duration.
LONG = 120.0
ERRORS = ("ModelError", "ValueError", "FatalError")
LEAVES = ("step", "sleep", "hook")
COMPOSITES = ("seq", "gather", "gather_settled", "race", "all_settled", "wait_for")
#: Always-failing steps fail this many times (more than any max_retries).
ALWAYS = 99


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Upper bounds of real latencies, in seconds (lower bounds are exact: 0 for a step,
    ``s`` for a sleep, ``after`` for a hook)."""

    step: float = 1.25     # one attempt: its scheduling replay -> its outcome recorded
    timer: float = 1.0     # a due timer -> its timer_fired recorded
    hook: float = 1.5      # a hook's creation seen and resumed by the driver
    backoff: float = 0.05  # the model steps' retry_backoff (±25 % jitter)
    fault: float = 0.0     # what the injected fault may add to any leaf


NORMAL = Bounds()
SLOW = {"kill": Bounds(fault=8.0), "redis_restart": Bounds(fault=12.0)}


def bounds_for(fault_kind: str) -> Bounds:
    """Worker kills and Redis restarts delay lost work by about a lease (2 s) plus a
    sweep, a timer grace (2 s) or a reconnection; duplicates delay nothing."""
    return SLOW.get(fault_kind, NORMAL)


class Undetermined(Exception):
    """The outcome of a node depends on timings the bounds do not decide."""


@dataclasses.dataclass(frozen=True)
class Res:
    """A node's reference outcome: a value, or an error ``(type name, message)``; its
    settle interval; the steps (``s:<id>``) and hooks (``h:<path>``) that must settle
    for it (``required``) and those that may run at all (``possible``)."""

    ok: bool
    value: Any = None
    error: tuple[str, str] | None = None
    lo: float = 0.0
    hi: float = 0.0
    required: frozenset[str] = frozenset()
    possible: frozenset[str] = frozenset()


# -- leaves --------------------------------------------------------------------------
def step_outcome(node: dict[str, Any]) -> tuple[bool, int]:
    """``(succeeds, failed attempts)``: a step fails its first ``fails`` recorded attempts
    (lost attempts do not count); ``FatalError`` is never retried."""
    fails, retries = node["fails"], node["retries"]
    if fails == 0:
        return True, 0
    if node["error"] == "FatalError":
        return False, 0
    if fails <= retries:
        return True, fails
    return False, retries


def step_value(node: dict[str, Any]) -> str:
    return f"v{node['id']}"


def step_error(node: dict[str, Any]) -> tuple[str, str]:
    return node["error"], f"e{node['id']}"


def hook_payload(path: str) -> dict[str, str]:
    return {"hook": path}


def hook_token(run_id: str, path: str) -> str:
    return f"model:{run_id}:{path}"


def _leaf(node: dict[str, Any], path: str, b: Bounds) -> Res:
    kind = node["k"]
    if kind == "step":
        ok, failures = step_outcome(node)
        backoff = sum(b.backoff * 2 ** a * 1.25 for a in range(failures))
        keys = frozenset({f"s:{node['id']}"})
        hi = (failures + 1) * b.step + backoff + b.fault
        if ok:
            return Res(True, step_value(node), None, 0.0, hi, keys, keys)
        return Res(False, None, step_error(node), 0.0, hi, keys, keys)
    if kind == "sleep":
        s = float(node["s"])
        if s <= 0:  # no timer: returns in the same replay
            return Res(True, None)
        return Res(True, None, lo=s, hi=s + b.timer + b.fault)
    if kind == "hook":
        keys = frozenset({f"h:{path}"})
        after = node["after"]
        if after is None:
            return Res(True, hook_payload(path), lo=INF, hi=INF, required=keys, possible=keys)
        return Res(True, hook_payload(path), lo=float(after), hi=after + b.hook + b.fault,
                   required=keys, possible=keys)
    raise ValueError(f"unknown node kind {kind!r}")


# -- composites ----------------------------------------------------------------------
def _union(results: list[Res], field: str) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for r in results:
        out |= getattr(r, field)
    return out


def _rivals(results: list[Res], among: list[int]) -> tuple[int, list[int]]:
    """The contender that settles first at the latest, and those that may beat it."""
    first = min(among, key=lambda i: results[i].hi)
    return first, [i for i in among if i != first and not results[i].lo > results[first].hi]


def _settle(node: dict[str, Any], path: str, b: Bounds, repair: bool
            ) -> tuple[dict[str, Any], Res]:
    """The node (repaired if ``repair``) and its outcome; raises :class:`Undetermined`
    for an undetermined node when not repairing."""
    kind = node["k"]
    if kind not in COMPOSITES:
        return node, _leaf(node, path, b)
    pairs = [_settle(c, f"{path}.{i}", b, repair) for i, c in enumerate(node["c"])]
    node = dict(node, c=[n for n, _ in pairs])
    rs = [r for _, r in pairs]
    possible = _union(rs, "possible")
    if kind == "seq":
        lo = hi = 0.0
        values: list[Any] = []
        for i, r in enumerate(rs):
            lo, hi = lo + r.lo, hi + r.hi
            if not r.ok:  # the later children are never called
                done = rs[:i + 1]
                return node, Res(False, None, r.error, lo, hi, _union(done, "required"),
                                 _union(done, "possible"))
            values.append(r.value)
        return node, Res(True, values, None, lo, hi, _union(rs, "required"), possible)
    if kind in ("race", "gather"):
        among = list(range(len(rs))) if kind == "race" else [
            i for i, r in enumerate(rs) if not r.ok]
        if among:
            first, rivals = _rivals(rs, among)
            if rivals:
                if not repair:
                    raise Undetermined(f"{kind} at {path}: children {rivals} may beat {first}")
                # Drop the rivals: the first one then settles first in every execution.
                return _settle(dict(node, c=[n for i, (n, _) in enumerate(pairs)
                                             if i not in rivals]), path, b, repair)
            return node, dataclasses.replace(rs[first], possible=possible)
    if kind == "wait_for":
        r, t = rs[0], float(node["t"])
        late = t + b.timer + b.fault
        if r.hi < t:
            return node, r
        if r.lo > late:
            return node, Res(False, None, ("TimeoutError", ""), t, late, frozenset(), possible)
        if not repair:
            raise Undetermined(f"wait_for at {path}: child [{r.lo}, {r.hi}] vs timeout {t}")
        if r.hi < LONG:
            return dict(node, t=LONG), r
        return pairs[0]  # unwrapped: no timeout at all
    # gather (no error), gather_settled, all_settled: every child settles.
    lo, hi = max(r.lo for r in rs), max(r.hi for r in rs)
    if kind == "gather":
        value: list[Any] = [r.value for r in rs]
    elif kind == "gather_settled":
        value = [r.value if r.ok else ["!err", *r.error] for r in rs]  # type: ignore[misc]
    else:
        value = [[True, r.value] if r.ok else [False, list(r.error or ())] for r in rs]
    return node, Res(True, value, None, lo, hi, _union(rs, "required"), possible)


# -- programs ------------------------------------------------------------------------
def reference(program: dict[str, Any], b: Bounds = NORMAL) -> Res:
    """The reference outcome of a determined program (else :class:`Undetermined`)."""
    return _settle(program["root"], "r", b, repair=False)[1]


def repair(program: dict[str, Any], b: Bounds = NORMAL) -> dict[str, Any]:
    """The program made determined under ``b``: undetermined races and fail-fast gathers
    lose the children that may beat their first one, undetermined timeouts become
    ``LONG``, and never-resumed hooks the outcome waits on are resumed at once."""
    root = program["root"]
    while True:
        fixed, res = _settle(root, "r", b, repair=True)
        if res.hi < INF:
            return dict(program, root=fixed)
        root = _resume_first_never_hook(root)


def _resume_first_never_hook(root: dict[str, Any]) -> dict[str, Any]:
    done = [False]

    def visit(node: dict[str, Any]) -> dict[str, Any]:
        if done[0]:
            return node
        if node["k"] == "hook" and node["after"] is None:
            done[0] = True
            return dict(node, after=0.0)
        if "c" in node:
            return dict(node, c=[visit(c) for c in node["c"]])
        return node

    fixed = visit(root)
    if not done[0]:
        raise AssertionError("an unbounded program without a never-resumed hook")
    return fixed


def walk(node: dict[str, Any], path: str = "r") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(path, node)`` in preorder."""
    yield path, node
    for i, child in enumerate(node.get("c", ())):
        yield from walk(child, f"{path}.{i}")


def steps_of(program: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {n["id"]: n for _, n in walk(program["root"]) if n["k"] == "step"}


def hooks_of(program: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p: n for p, n in walk(program["root"]) if n["k"] == "hook"}


def expected_run(program: dict[str, Any], res: Res) -> tuple[str, Any]:
    """``("completed", result)`` or, when the error escapes, ``("failed", (type, message))``."""
    if res.ok:
        return "completed", {"value": res.value}
    if program.get("escape"):
        return "failed", res.error
    return "completed", {"error": list(res.error or ())}


def estimate_events(program: dict[str, Any], res: Res) -> int:
    """How many events the run's history holds at least before its end (to place a
    fault inside it): those of the steps and hooks its outcome waits for."""
    count = 1  # run_started
    for path, node in walk(program["root"]):
        if node["k"] == "step" and f"s:{node['id']}" in res.required:
            count += 3 + 2 * step_outcome(node)[1]  # scheduled, started, ..., outcome
        elif node["k"] == "hook" and f"h:{path}" in res.required:
            count += 3  # created, received, disposed
    return count


def describe(node: dict[str, Any]) -> str:
    """A short text form, for messages: ``seq(step#0 ok, race(sleep 1.5, hook@2))``."""
    kind = node["k"]
    if kind == "step":
        behaviour = "ok" if node["fails"] == 0 else (
            f"{node['error']}x{'inf' if node['fails'] >= ALWAYS else node['fails']}")
        return f"step#{node['id']} {behaviour} r{node['retries']}"
    if kind == "sleep":
        return f"sleep {node['s']}"
    if kind == "hook":
        return "hook never" if node["after"] is None else f"hook@{node['after']}"
    inner = ", ".join(describe(c) for c in node["c"])
    return f"wait_for[{node['t']}]({inner})" if kind == "wait_for" else f"{kind}({inner})"
