"""Run every example end to end: ``python -m examples.demo`` (or ``make demo``).

One command starts what a deployment runs — Redis (the one on 127.0.0.1:6379 or
``$REDIS_URL``, else an embedded ``redis-server``), a real ``celery worker`` for
:mod:`examples.app`, and the Flask web app serving webhooks on a free loopback
port — then runs each example, plays the outside world where one needs it (reads
the URLs the steps "sent" and POSTs the callbacks and RSVPs), and checks every
result. It exits non-zero if any example fails.

It writes under its own key prefix and queue (``examples-<random>``) and deletes
only those keys at the end; it never flushes a Redis it did not start.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from celery_durable.devstack import (
    WebServer,
    WorkerProcess,
    clean_tag,
    find_or_start_redis,
    free_port,
)

ROOT = Path(__file__).resolve().parents[1]
RESULT_TIMEOUT = 30.0


class DemoFailure(AssertionError):
    """An example ended with another result than expected."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoFailure(message)


# -- the local stack: worker, web app, cleanup ------------------------------------------
def example_env(redis_url: str, tag: str, web_port: int) -> dict[str, str]:
    """The settings examples.app reads; ``tag`` is both key prefix and queue name."""
    return {"EXAMPLES_REDIS_URL": redis_url, "EXAMPLES_QUEUE": tag, "EXAMPLES_PREFIX": tag,
            "EXAMPLES_WEBHOOK_BASE": f"http://127.0.0.1:{web_port}/durable"}


def load_app(env: dict[str, str]) -> Any:
    """Import examples.app configured by ``env`` (it reads the environment at import)."""
    os.environ.update(env)
    from examples import app as module

    if (module.REDIS_URL, module.PREFIX, module.QUEUE, module.WEBHOOK_BASE) != (
            env["EXAMPLES_REDIS_URL"], env["EXAMPLES_PREFIX"], env["EXAMPLES_QUEUE"],
            env["EXAMPLES_WEBHOOK_BASE"]):
        raise RuntimeError("examples.app was imported before its environment was set")
    return module


def start_worker(env: dict[str, str], log: Path) -> WorkerProcess:
    """``celery -A examples.app worker`` on the example queue."""
    return WorkerProcess("examples.app", log, queues=[env["EXAMPLES_QUEUE"]],
                         env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                         hostname=f"{env['EXAMPLES_QUEUE']}@%h")


@contextmanager
def running_stack(redis_url: str, tag: str) -> Iterator[dict[str, str]]:
    """A worker and the web app for examples.app on ``redis_url``, under ``tag``.

    Yields the environment; stops both and deletes the ``tag`` keys on exit.
    """
    port = free_port()
    env = example_env(redis_url, tag, port)
    saved = {key: os.environ.get(key) for key in env}
    logs = Path(tempfile.mkdtemp(prefix="celery-durable-demo-"))
    worker: WorkerProcess | None = None
    server = None
    try:
        module = load_app(env)
        worker = start_worker(env, logs / "worker.log")
        server = WebServer(module.web, port=port)
        worker.wait_ready()
        yield env
    except BaseException:
        if worker is not None:
            print(f"--- worker log (tail) ---\n{worker.tail()}", file=sys.stderr)
        raise
    finally:
        if worker is not None:
            worker.stop()
        if server is not None:
            server.stop()
        client = redis.Redis.from_url(redis_url)
        try:
            clean_tag(client, tag)
        finally:
            client.close()
        shutil.rmtree(logs, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- the outside world -------------------------------------------------------------------
def post(url: str, body: Any) -> int:
    """POST ``body`` as JSON; returns the HTTP status."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# -- the examples ------------------------------------------------------------------------
def demo_pipeline() -> str:
    from examples.pipeline import data_pipeline

    run = data_pipeline.start({"name": "ada lovelace", "email": " Ada@Example.com "})
    result = run.result(timeout=RESULT_TIMEOUT)
    names = [e.get("name", "").rsplit(".", 1)[-1] for e in run.events()
             if e["type"] == "step_completed"]
    expect(names == ["validate_data", "process_data", "store_data"], f"step order {names}")
    expect(isinstance(result, str) and result.startswith("rec-"), f"result {result!r}")
    return result


def demo_parallel_fetch() -> dict:
    from examples.parallel_fetch import fetch_user_data

    run = fetch_user_data.start("u1")
    result = run.result(timeout=RESULT_TIMEOUT)
    expected = {"user": {"name": "Ada"}, "orders": {"items": ["analytical engine", "punch cards"]},
                "preferences": {"theme": "dark"}}
    expect(result == expected, f"result {result!r}")
    # All three steps were scheduled before the first one completed: in parallel.
    types = [e["type"] for e in run.events()]
    expect(types.index("step_completed") > max(i for i, t in enumerate(types)
                                               if t == "step_scheduled"), "not parallel")
    return result


def demo_race_deadline() -> dict:
    from examples import outbox
    from examples.race_deadline import run_external_task

    on_time = run_external_task.start("u1", deadline="1 day")  # its callback will come
    too_late = run_external_task.start("u2", deadline=1)  # nobody calls back within 1 s
    (task,) = outbox.wait_for(on_time.id, 1)
    expect(post(task["callback"], {"status": "done", "rows": 42}) == 202, "callback refused")
    results = {"on_time": on_time.result(timeout=RESULT_TIMEOUT),
               "too_late": too_late.result(timeout=RESULT_TIMEOUT)}
    expect(results["on_time"] == {"user_id": "u1", "winner": "webhook",
                                  "report": {"status": "done", "rows": 42}}, f"{results}")
    expect(results["too_late"] == {"user_id": "u2", "winner": "deadline"}, f"{results}")
    # A callback after the run ended finds no webhook.
    (late_task,) = outbox.read(too_late.id)
    expect(post(late_task["callback"], {"status": "done"}) == 404, "late callback accepted")
    return results


def demo_birthday(party_in: float = 5.0) -> dict:
    from examples import outbox
    from examples.birthday import birthday_workflow

    friends = ["grace", "linus", "margaret"]
    birthday = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=party_in)
    run = birthday_workflow.start("may your code always compile", "ada@example.com",
                                  friends, birthday)
    invitations = {m["to"]: m["rsvp_url"] for m in outbox.wait_for(run.id, len(friends))}
    expect(sorted(invitations) == sorted(friends), f"invited {sorted(invitations)}")
    # Grace and Margaret answer before the birthday; Linus never does.
    for friend, answer in (("grace", "yes"), ("margaret", "maybe")):
        expect(post(invitations[friend], {"rsvp": f"{friend}: {answer}"}) == 202, "RSVP refused")
    result = run.result(timeout=RESULT_TIMEOUT + party_in)
    card = next(m for m in outbox.read(run.id) if m["subject"] == "your birthday card")
    expect(result["status"] == "Sent" and result["image"].startswith("https://cards.example/"),
           f"result {result!r}")
    expect(card["rsvps"] == ["grace: yes", "margaret: maybe"], f"card {card!r}")
    expect(dt.datetime.now(dt.timezone.utc) >= birthday, "the card went out early")
    return {**result, "card": card}


EXAMPLES: list[tuple[str, Callable[[], Any]]] = [
    ("pipeline", demo_pipeline),
    ("parallel_fetch", demo_parallel_fetch),
    ("race_deadline", demo_race_deadline),
    ("birthday", demo_birthday),
]


def run_all() -> int:
    """Run every example against the running stack; returns how many failed."""
    failed = 0
    for name, function in EXAMPLES:
        started = time.monotonic()
        try:
            result = function()
        except Exception:  # report and carry on with the next example
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s)")
            traceback.print_exc()
            continue
        print(f"ok   {name} ({time.monotonic() - started:.1f} s)\n     {result!r}")
    return failed


def main() -> int:
    began = time.monotonic()
    handle = find_or_start_redis()
    tag = f"examples-{uuid.uuid4().hex[:10]}"
    print(f"redis  {handle.url} ({'started for the demo' if handle.owned else 'found'})")
    try:
        with running_stack(handle.url, tag) as env:
            print(f"worker celery -A examples.app worker -Q {tag} (ready)")
            print(f"web    {env['EXAMPLES_WEBHOOK_BASE']}")
            print(f"viewer {env['EXAMPLES_WEBHOOK_BASE'].removesuffix('/durable')}/runs/")
            failed = run_all()
    finally:
        if handle.owned:
            handle.close()
    print(f"{len(EXAMPLES) - failed}/{len(EXAMPLES)} examples passed "
          f"in {time.monotonic() - began:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
