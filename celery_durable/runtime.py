"""The runtime: the parts every adapter shares, built once per process.

:class:`~celery_durable.Durable` builds one :class:`Runtime` per process from its
Celery app's settings (lazily: ``app.conf`` must be final) and hands it to every
adapter -- the Celery tasks, the sweeper, :class:`~celery_durable.Run`, the Flask
blueprints, the CLI and the test kit. None of them reaches into ``Durable``.

>>> runtime = durable.runtime                                   # doctest: +SKIP
>>> runtime.store.state(run_id).status                          # doctest: +SKIP
'running'
"""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from typing import Any

from celery import Celery

from . import codec
from .dispatch import CeleryDispatcher
from .engine import history as h
from .engine.cache import InstanceCache
from .error_codec import ErrorCodec
from .errors import HookNotFound, RunNotFound
from .orchestrator import Orchestrator, started_event
from .registry import Registry
from .settings import Settings
from .steps import StepRunner
from .store.base import HistoryStore, RunState
from .store.connect import connect
from .store.keys import check_run_id
from .store.redis import RedisStore
from .timers import TimerPolicy, Timers

logger = logging.getLogger("celery_durable")


class Runtime:
    """Settings, store, error codec, dispatcher, orchestrator, timers and step runner of
    one Celery app, wired together; plus the run operations every adapter offers."""

    def __init__(self, app: Celery, registry: Registry, settings: Settings | None = None,
                 store: HistoryStore | None = None) -> None:
        self.app = app
        self.registry = registry
        self.settings = s = settings or Settings.from_app(app)
        self.store: HistoryStore = store or RedisStore(
            connect(s.redis_url, s.redis_options, s.redis_cluster), prefix=s.key_prefix,
            lease=s.step_lease, retention=s.run_retention, timer_horizon=s.timer_horizon,
            queue_timeout=s.queue_timeout, timer_grace=s.timer_grace)
        self.errors = ErrorCodec(app)
        self.dispatcher = CeleryDispatcher(app, registry.step_task)
        self.timer_policy = TimerPolicy(horizon=s.timer_horizon, grace=s.timer_grace)
        self.orchestrator = Orchestrator(
            store=self.store, find_workflow=registry.workflow_function,
            dispatcher=self.dispatcher, errors=self.errors, cache=InstanceCache(s.cache_size),
            timers=self.timer_policy, lease=s.step_lease,
            block_deadline=s.replay_block_deadline, webhook_base_url=s.webhook_base_url)
        self.timers = Timers(self.timer_policy, self.store, self.dispatcher, self.orchestrator)
        self.steps = StepRunner(store=self.store, orchestrator=self.orchestrator,
                                errors=self.errors, dispatcher=self.dispatcher,
                                timers=self.timer_policy, lease=s.step_lease)

    def __repr__(self) -> str:
        return f"<Runtime app={self.app.main!r} store={self.store!r}>"

    # -- runs -------------------------------------------------------------------
    def start_run(self, workflow_name: str, args: list[Any], kwargs: dict[str, Any],
                  run_id: str | None = None) -> str:
        """Start a run of a registered workflow; returns its id.

        With ``run_id`` the start is idempotent: an existing run under that id is
        returned and nothing new starts.
        """
        workflow = self.registry.workflows.get(workflow_name)
        if workflow is None:
            raise LookupError(f"no workflow named {workflow_name!r} is registered")
        run_id = check_run_id(run_id) if run_id is not None else uuid.uuid4().hex
        try:
            inspect.signature(workflow.fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"workflow {workflow_name!r}: {exc}") from None
        plain_args, plain_kwargs = codec.normalize_call(f"workflow {workflow_name!r}",
                                                        tuple(args), kwargs)
        event = started_event(workflow_name, plain_args, plain_kwargs)
        created = self.store.create_run(run_id, workflow_name, event,
                                        watch_at=time.time() + self.settings.step_lease)
        if created:
            logger.info("run %s of %s started", run_id, workflow_name)
            self.dispatcher.wake(run_id)
        return run_id

    def run_state(self, run_id: str) -> RunState:
        """The run's state; :class:`RunNotFound` if there is no such run."""
        state = self.store.state(run_id)
        if state is None:
            raise RunNotFound(f"no run with id {run_id!r} (never started, or past retention)")
        return state

    def cancel(self, run_id: str) -> bool:
        """Ask the run to stop; False if it had already ended."""
        self.run_state(run_id)
        event = {"type": h.CANCEL_REQUESTED, "at": time.time()}
        if not self.store.request_cancel(run_id, event):
            return False
        logger.info("run %s: cancellation requested", run_id)
        self.dispatcher.wake(run_id)
        return True

    def resume_hook(self, token: str, payload: Any = None) -> str:
        """Deliver ``payload`` to the live hook with this token; returns its run id."""
        info = self.store.token_info(token)
        if info is None or info.kind != "hook":
            raise HookNotFound(f"no live hook has the token {token!r}")
        value = codec.check_value(f"the payload for hook {token!r}", payload)
        event = {"type": h.HOOK_RECEIVED, "seq": info.seq, "at": time.time(),
                 "payload": value}
        if not self.store.deliver(info.run_id, event, "hook", token):
            raise HookNotFound(f"no live hook has the token {token!r} (its run ended or "
                               "disposed it)")
        self.dispatcher.wake(info.run_id)
        return info.run_id
