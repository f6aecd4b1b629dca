"""Case 5: the cost of a full replay of a long history, in-process.

The history is built the way ``tests/engine/sim.py`` drives the engine: a live
:class:`~celery_durable.engine.replay.Replayer` of the real ``bench.proj.sequential``
workflow is fed ``run_started`` and then, for every step it emits, the three events a
real worker records (``step_scheduled``, ``step_started``, ``step_completed``: the
shape of a recorded ``sequential`` run), until the history holds ``--events`` events
(10,000 = ``run_started`` + 3,333 steps × 3). The events are stored as the store
writes them (``codec.dumps``), then timed, ``--repeat`` times:

* decode: the store's decoding of what a load read (``celery_durable.store.decode.loaded``,
  as ``RedisStore.load`` calls it: JSON to events, entries replay ignores left unparsed);
* replay: a fresh ``Replayer`` fed the whole history (``Replayer.feed``), to the end of
  the workflow;
* the floor: bare ``json.loads`` of every one of the same strings.

Cold: the first decode + replay in a fresh Python process (imports done before the
clock starts), from the same strings written to a file. With ``--redis-url``, also the
``LRANGE`` of the 10,000 strings pushed to ``--key`` (deleted afterwards). ``bench/run.py``
runs all this in a fresh process (``in_subprocess``), away from its own large heap.

    .venv/bin/python bench/replay.py [--events 10000] [--repeat 5] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RUN_ID = "bench-replay-run"
START = 1_700_000_000.0


def _workflow(proj: Any) -> tuple[Any, Any]:
    runtime = proj.durable.runtime
    fn = runtime.workflow_function(proj.sequential.name)
    if fn is None:
        raise RuntimeError(f"no workflow {proj.sequential.name!r} registered")
    return fn, runtime.decode_error


def build_history(proj: Any, events: int) -> list[dict[str, Any]]:
    """``run_started`` + (``events`` - 1) / 3 steps of ``sequential``, as a worker records."""
    from celery_durable.engine.history import StepCommand
    from celery_durable.engine.replay import Replayer

    try:
        from celery_durable.engine.history import started_event
    except ImportError:  # before it moved into the engine
        from celery_durable.orchestrator import started_event

    steps = max(1, (events - 1) // 3)
    fn, decode_error = _workflow(proj)
    started = json.loads(json.dumps(started_event(proj.sequential.name, [steps], {})))
    started["at"] = START
    live = Replayer(fn, run_id=RUN_ID, error_decoder=decode_error)
    history = [started]
    live.feed([started])
    clock = START
    try:
        while len(history) < 1 + 3 * steps:
            commands = live.take_new_commands()
            if not commands:
                raise RuntimeError(f"the workflow emitted nothing after {len(history)} events")
            new = []
            for command in commands:
                if not isinstance(command, StepCommand):
                    raise RuntimeError(f"sequential emitted {command.describe()}, not a step")
                clock += 0.003
                new.append(command.to_event(clock))
                new.append({"type": "step_started", "seq": command.seq, "attempt": 1,
                            "at": clock + 0.001})
                new.append({"type": "step_completed", "seq": command.seq, "at": clock + 0.002,
                            "result": command.args[0]})
            live.feed(new)
            history += new
    finally:
        live.discard()
    return json.loads(json.dumps(history))


def encode(history: list[dict[str, Any]]) -> list[str]:
    from celery_durable import codec

    return [codec.dumps(event) for event in history]


def replay_once(proj: Any, items: list[str]) -> dict[str, Any]:
    """Decode and replay ``items`` once; seconds for each, and how the workflow ended."""
    from celery_durable.engine.replay import Replayer
    from celery_durable.store.decode import loaded

    fn, decode_error = _workflow(proj)
    t0 = time.perf_counter()
    events = loaded(RUN_ID, "running", items, "0", 0, len(items)).events  # as a load does
    t1 = time.perf_counter()
    replayer = Replayer(fn, run_id=RUN_ID, error_decoder=decode_error)
    replayer.feed(events)
    new = replayer.take_new_commands()
    t2 = time.perf_counter()
    outcome = replayer.outcome
    replayer.discard()
    return {"decode_s": t1 - t0, "replay_s": t2 - t1, "new_commands": len(new),
            "outcome": outcome.status if outcome else "running",
            "value": outcome.value if outcome else None}


def json_floor(items: list[str]) -> float:
    t0 = time.perf_counter()
    for item in items:
        json.loads(item)
    return time.perf_counter() - t0


def cold(items: list[str]) -> dict[str, Any]:
    """The first decode + replay in a fresh process (``--cold-file``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
        fh.write("\n".join(items))
        path = fh.name
    try:
        out = subprocess.run([sys.executable, str(Path(__file__)), "--cold-file", path],
                             capture_output=True, text=True, timeout=300, cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        os.unlink(path)


def lrange_ms(client: Any, key: str, items: list[str], repeat: int = 3) -> float:
    for i in range(0, len(items), 1000):
        client.rpush(key, *items[i:i + 1000])
    try:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            client.lrange(key, 0, -1)
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000
    finally:
        client.delete(key)


def measure(proj: Any, events: int = 10_000, repeat: int = 5, client: Any = None,
            key: str | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    items = encode(build_history(proj, events))
    built_s = time.perf_counter() - t0
    n = len(items)
    steps = (n - 1) // 3
    runs = [replay_once(proj, items) for _ in range(repeat)]
    bad = [r for r in runs if r["outcome"] != "completed" or r["value"] != sum(range(steps))]
    floor = statistics.median(json_floor(items) for _ in range(repeat))
    decode_s = statistics.median(r["decode_s"] for r in runs)
    replay_s = statistics.median(r["replay_s"] for r in runs)
    total_s = statistics.median(r["decode_s"] + r["replay_s"] for r in runs)
    result: dict[str, Any] = {
        "events": n, "steps": steps, "build_s": built_s, "repeat": repeat,
        "us_per_event": total_s / n * 1e6, "decode_us_per_event": decode_s / n * 1e6,
        "replay_us_per_event": replay_s / n * 1e6, "json_loads_us_per_event": floor / n * 1e6,
        "warm_total_s": total_s, "bytes": sum(len(i) for i in items),
        "error": f"replay ended {bad[0]['outcome']} with {bad[0]['value']!r}" if bad else None,
        "cold": cold(items)}
    if client is not None and key:
        result["lrange_ms"] = lrange_ms(client, key, items)
    return result


def summary_line(r: dict[str, Any]) -> str:
    c = r["cold"]
    cold_text = (f"cold (fresh process): {(c['decode_s'] + c['replay_s']) * 1000:.0f} ms "
                 f"(decode {c['decode_s'] * 1000:.0f} + replay {c['replay_s'] * 1000:.0f})"
                 if "decode_s" in c else f"cold: {c.get('error')}")
    lr = f"; LRANGE of the {r['events']} strings {r['lrange_ms']:.1f} ms" \
        if "lrange_ms" in r else ""
    return (f"replay of {r['events']} events ({r['steps']} steps, {r['bytes'] / 1e6:.2f} MB "
            f"JSON): {r['us_per_event']:.1f} us/event warm (decode "
            f"{r['decode_us_per_event']:.1f} + replay {r['replay_us_per_event']:.1f}; "
            f"json.loads alone {r['json_loads_us_per_event']:.1f}), "
            f"{r['warm_total_s'] * 1000:.0f} ms; {cold_text}{lr}")


def in_subprocess(events: int, repeat: int, redis_url: str | None = None,
                  key: str | None = None, timeout: float = 600) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process: the caller's heap (a bench driver holding
    thousands of results) would make the garbage collector part of the figure."""
    cmd = [sys.executable, str(Path(__file__)), "--events", str(events), "--repeat",
           str(repeat), "--json"]
    if redis_url and key:
        cmd += ["--redis-url", redis_url, "--key", key]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    lines = out.stdout.strip().splitlines()
    if out.returncode not in (0, 1) or not lines:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"bench/replay.py exited {out.returncode}: {tail}")
    return dict(json.loads(lines[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--redis-url", help="also time the LRANGE of the history there")
    parser.add_argument("--key", default="bench-replay:lrange",
                        help="the list key the LRANGE uses (deleted afterwards)")
    parser.add_argument("--cold-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:1/0")  # never connected
    os.environ.setdefault("BENCH_TAG", "bench-replay")
    from bench import proj

    if args.cold_file:
        items = Path(args.cold_file).read_text().split("\n")
        print(json.dumps(replay_once(proj, items)))
        return 0
    client = None
    if args.redis_url:
        import redis

        client = redis.Redis.from_url(args.redis_url)
    result = measure(proj, args.events, args.repeat, client, args.key if client else None)
    print(json.dumps(result, default=str) if args.json else summary_line(result))
    return 1 if result["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
