"""A run's timeline laid out on one time axis: lanes of bars, in percent of the axis.

One lane per command (step, sleep, webhook, hook); a step's lane holds one bar per
attempt (a failed attempt that was retried is its own bar, marked), with the time it
sat queued and the backoff between attempts drawn as thin gaps. Commands scheduled in
one commit under one name (a ``gather`` of 500) become a group: one lane with the
group's span, how many of them ran at once over time, and counts; its lanes open
below it on demand.

Framework-free: a :class:`~celery_durable.timeline.Timeline` in, positions and words
out (the template draws them).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..timeline import Attempt, Row, Timeline
from . import viewer_model as vm

#: A run of more same-named commands from one commit than this is drawn as a group.
GROUP_MIN = 8
#: Columns of a group's "how many ran at once" histogram across the axis.
BUCKETS = 120


@dataclasses.dataclass
class Bar:
    """A span on the axis. ``kind`` is set on bars (a command's attempt or wait) and
    empty on the gaps between them (queued, backoff)."""

    seq: int
    kind: str
    left: float
    width: float
    css: str
    tip: str
    attempt: int | None = None
    outcome: str = ""
    marker: str = ""


@dataclasses.dataclass
class Lane:
    seq: int
    kind: str
    label: str
    name: str
    status: str
    bars: list[Bar]
    #: Where requests or payloads arrived, in percent of the axis.
    ticks: list[float]
    took: str
    attempts: int


@dataclasses.dataclass
class Group:
    id: str
    kind: str
    label: str
    lanes: list[Lane]
    left: float
    width: float
    #: status → how many of the group's commands have it.
    counts: dict[str, int]
    retries: int
    #: (left %, height %) columns: the mean number running at once, against the peak.
    histogram: list[tuple[float, float]]
    peak: float
    bucket_width: float
    took: str


@dataclasses.dataclass
class Chart:
    start: float
    end: float
    items: list[Lane | Group]
    #: (left %, label) of the axis ticks.
    ticks: list[tuple[float, str]]
    #: Where "now" is, for a running run.
    now: float | None

    @property
    def lanes(self) -> int:
        return sum(len(i.lanes) if isinstance(i, Group) else 1 for i in self.items)


class Axis:
    """Times to percent of the run's span."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = max(end, start + 0.001)
        self.span = self.end - self.start

    def at(self, moment: float) -> float:
        return round(min(100.0, max(0.0, (moment - self.start) / self.span * 100)), 3)

    def bar(self, seq: int, kind: str, begin: float, end: float, css: str, tip: str,
            **extra: Any) -> Bar:
        left = self.at(begin)
        return Bar(seq, kind, left, round(max(0.0, self.at(end) - left), 3), css, tip, **extra)


def layout(timeline: Timeline, received: dict[int, list[float]], now: float) -> Chart:
    """The chart of ``timeline``; ``received`` gives each webhook's or hook's arrival
    times (by seq). A running run's axis ends now, an ended one's at its end."""
    running = timeline.ended is None
    end = now if running else timeline.ended or now
    axis = Axis(timeline.started, end)
    lanes = [_lane(row, axis, received.get(row.seq, []), running) for row in timeline.rows]
    items: list[Lane | Group] = []
    for batch in _batches(timeline.rows, lanes):
        if len(batch) > GROUP_MIN:
            items.append(_group([r for r, _ in batch], [lane for _, lane in batch], axis))
        else:
            items.extend(lane for _, lane in batch)
    return Chart(axis.start, axis.end, items, ticks(axis), axis.at(now) if running else None)


def _batches(rows: list[Row], lanes: list[Lane]) -> list[list[tuple[Row, Lane]]]:
    """Consecutive rows of one kind and name committed together (same ``start``)."""
    batches: list[list[tuple[Row, Lane]]] = []
    for row, lane in zip(rows, lanes, strict=True):
        last = batches[-1][-1][0] if batches else None
        if last is not None and (last.kind, last.name, last.start) == \
                (row.kind, row.name, row.start):
            batches[-1].append((row, lane))
        else:
            batches.append([(row, lane)])
    return batches


def ticks(axis: Axis, target: int = 8) -> list[tuple[float, str]]:
    """Round steps (1, 2, 5 × 10^k seconds) from the run's start, about ``target`` of them."""
    raw = axis.span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    out, i = [], 0
    while i * step <= axis.span + 1e-9:
        out.append((axis.at(axis.start + i * step), "0" if i == 0 else
                    f"+{vm.duration(i * step)}"))
        i += 1
    return out


# -- one lane per command ------------------------------------------------------------
def _lane(row: Row, axis: Axis, received: list[float], running: bool) -> Lane:
    if row.kind == "step":
        bars = _step_bars(row, axis, running)
        label = vm.short_name(row.name)
    else:
        bars = [_wait_bar(row, axis, running)]
        label = {"sleep": "sleep", "webhook": f"webhook {vm.mask_token(row.name)}",
                 "hook": f"hook {row.name}", "child": f"child {vm.short_name(row.name)}"
                 }.get(row.kind, row.kind)
    name = vm.mask_token(row.name) if row.kind == "webhook" else row.name
    took = row.duration
    if took is None and received:  # a wait still open: how long until the first arrival
        took = received[0] - row.start
    return Lane(row.seq, row.kind, label, name, _status(row, running), bars,
                [axis.at(at) for at in received], vm.duration(took), len(row.attempts))


def _status(row: Row, running: bool) -> str:
    # A command still open when its run ended (a race's loser, say) was left behind.
    if not running and row.end is None and row.status in ("pending", "running"):
        return "abandoned"
    return row.status


def _step_bars(row: Row, axis: Axis, running: bool) -> list[Bar]:
    name = vm.short_name(row.name)
    if not row.attempts:
        state = "queued" if running else "abandoned"
        return [axis.bar(row.seq, "step", row.start, axis.end, f"queued {state}",
                         f"{name} #{row.seq}\n{state} since {vm.clock(row.start)}")]
    bars = []
    if row.attempts[0].started > row.start:
        bars.append(axis.bar(row.seq, "", row.start, row.attempts[0].started, "queued",
                             f"{name} #{row.seq}: queued "
                             f"{vm.duration(row.attempts[0].started - row.start)}"))
    for index, attempt in enumerate(row.attempts):
        bars.append(_attempt_bar(row, attempt, axis, running, name))
        following = row.attempts[index + 1] if index + 1 < len(row.attempts) else None
        if following is not None and attempt.ended is not None:
            bars.append(axis.bar(row.seq, "", attempt.ended, following.started, "backoff",
                                 f"{name} #{row.seq}: waiting to retry "
                                 f"{vm.duration(following.started - attempt.ended)}"))
    return bars


def _attempt_bar(row: Row, attempt: Attempt, axis: Axis, running: bool, name: str) -> Bar:
    outcome = attempt.outcome
    if attempt.ended is None and not running:
        outcome = "abandoned"
    ended = attempt.ended if attempt.ended is not None else axis.end
    words = {"retrying": "failed, retried", "failed": "failed", "completed": "completed",
             "running": "running", "abandoned": "unfinished when the run ended"}[outcome]
    tip = [f"{name} #{row.seq} · attempt {attempt.number}", words,
           f"{vm.clock(attempt.started)} → "
           f"{vm.clock(attempt.ended) if attempt.ended else '…'} "
           f"({vm.duration(ended - attempt.started)})"]
    if attempt.error:
        tip.append(vm.error_line(attempt.error))
    failed = outcome in ("retrying", "failed")
    return axis.bar(row.seq, "step", attempt.started, ended,
                    f"attempt {outcome}" + (" failed-attempt" if failed else ""),
                    "\n".join(tip), attempt=attempt.number, outcome=outcome,
                    marker="✕" if failed else "")


def _wait_bar(row: Row, axis: Axis, running: bool) -> Bar:
    kind = row.kind
    end = row.end
    tip = [f"{kind} #{row.seq}"]
    css = f"wait {kind} {_status(row, running)}"
    if kind == "sleep":
        due = row.detail.get("due")
        due = float(due) if isinstance(due, (int, float)) else None
        tip.append(f"until {vm.clock(due)}")
        if end is None and due is not None:
            end = min(due, axis.end)
            if due > axis.end:
                css += " overflow"
                tip.append(f"due in {vm.duration(due - axis.end)}")
        if row.end is not None:
            tip.append(f"fired {vm.clock(row.end)}")
    elif kind in ("webhook", "hook"):
        tip[0] = f"{kind} {vm.mask_token(row.name) if kind == 'webhook' else row.name}" \
                 f" #{row.seq}"
        count = len(row.detail.get("received", []))
        tip.append(f"{count} received" + (", disposed" if row.status == "disposed" else ""))
    else:  # a child run, or a kind of command this viewer does not know yet
        tip[0] = f"{kind} {row.name} #{row.seq}"
        tip.append(str(row.status))
    end = end if end is not None else axis.end
    tip.append(f"{vm.clock(row.start)} → {vm.clock(row.end) if row.end else '…'} "
               f"({vm.duration(end - row.start)})")
    return axis.bar(row.seq, kind, row.start, end, css, "\n".join(tip),
                    outcome=_status(row, running))


# -- groups --------------------------------------------------------------------------
def _group(rows: list[Row], lanes: list[Lane], axis: Axis) -> Group:
    first = rows[0]
    ends = [axis.end if r.end is None else r.end for r in rows]
    counts: dict[str, int] = {}
    for lane in lanes:
        counts[lane.status] = counts.get(lane.status, 0) + 1
    retries = sum(max(0, len(r.attempts) - 1) for r in rows)
    spans = [(a.started, a.ended if a.ended is not None else axis.end)
             for r in rows for a in r.attempts]
    histogram, peak, width = _histogram(spans, axis)
    left = axis.at(first.start)
    label = vm.short_name(first.name) if first.kind == "step" else first.kind
    return Group(f"g{first.seq}-{rows[-1].seq}", first.kind, label, lanes, left,
                 round(max(0.0, axis.at(max(ends)) - left), 3), counts, retries,
                 histogram, peak, width, vm.duration(max(ends) - first.start))


def _histogram(spans: list[tuple[float, float]], axis: Axis
               ) -> tuple[list[tuple[float, float]], float, float]:
    """Mean attempts running at once per column of the axis; columns never touched are
    left out. Returns (left %, height % of the peak) columns, the peak, column width %."""
    size = axis.span / BUCKETS
    load = [0.0] * BUCKETS
    for begin, end in spans:
        first = max(0, min(BUCKETS - 1, int((begin - axis.start) / size)))
        last = max(0, min(BUCKETS - 1, int((end - axis.start) / size)))
        for b in range(first, last + 1):
            lo, hi = axis.start + b * size, axis.start + (b + 1) * size
            load[b] += max(0.0, min(end, hi) - max(begin, lo)) / size
    peak = max(load, default=0.0)
    if peak <= 0:
        return [], 0.0, round(100 / BUCKETS, 3)
    columns = [(round(b * 100 / BUCKETS, 3), round(max(6.0, v / peak * 100), 1))
               for b, v in enumerate(load) if v > 0]
    return columns, round(peak, 1), round(100 / BUCKETS, 3)
