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
from .errors import HookNotFound, RunConflictError, RunNotFound
from .inline import inline_policy
from .orchestrator import Orchestrator
from .registry import Registry
from .replay_check import export_record
from .settings import Settings
from .steps import StepRunner
from .store.base import HistoryStore, RunState
from .store.connect import connect
from .store.keys import check_run_id
from .store.redis import RedisStore
from .store.run_index import RunSummary
from .timers import TimerPolicy, Timers

logger = logging.getLogger("celery_durable")


def check_arguments(workflow_name: str, fn: Any, args: list[Any], kwargs: dict[str, Any]
                    ) -> None:
    """Refuse arguments the workflow's signature does not take, naming each one."""
    signature = inspect.signature(fn)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        params = signature.parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unexpected = [] if takes_any else [
            name for name in kwargs
            if name not in params or params[name].kind is inspect.Parameter.POSITIONAL_ONLY]
        detail = f"unexpected keyword argument(s) {', '.join(map(repr, unexpected))}; " \
            if unexpected else ""
        bare = signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in params.values()],
            return_annotation=signature.empty)
        raise TypeError(f"workflow {workflow_name!r}: {detail}{exc} (it takes "
                        f"{workflow_name.rpartition('.')[2]}{bare})") from None


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
        self.steps = StepRunner(
            store=self.store, orchestrator=self.orchestrator, errors=self.errors,
            dispatcher=self.dispatcher, timers=self.timer_policy, lease=s.step_lease,
            max_lost=s.max_lost_attempts, inline_steps=s.inline_steps,
            find_step=registry.steps.get,
            accept_inline=inline_policy(app, registry.steps.get, self.dispatcher.queue_of))

    def __repr__(self) -> str:
        return f"<Runtime app={self.app.main!r} store={self.store!r}>"

    # -- runs -------------------------------------------------------------------
    def start_run(self, workflow_name: str, args: list[Any], kwargs: dict[str, Any],
                  run_id: str | None = None) -> str:
        """Start a run of a registered workflow; returns its id.

        With ``run_id`` the start is idempotent: if a run of the same workflow holds
        that id, nothing new starts (of concurrent starts, exactly one creates); if a
        run of another workflow holds it, :class:`RunConflictError`.
        """
        workflow = self.registry.workflows.get(workflow_name)
        if workflow is None:
            known = ", ".join(sorted(self.registry.workflows)) or "none"
            raise LookupError(f"no workflow named {workflow_name!r} is registered "
                              f"(registered: {known})")
        run_id = check_run_id(run_id) if run_id is not None else uuid.uuid4().hex
        check_arguments(workflow_name, workflow.fn, args, kwargs)
        plain_args, plain_kwargs = codec.normalize_call(f"workflow {workflow_name!r}",
                                                        tuple(args), kwargs)
        event = h.started_event(workflow_name, plain_args, plain_kwargs)
        existing = self.store.create_run(run_id, workflow_name, event,
                                         watch_at=time.time() + self.settings.step_lease)
        if existing is not None and existing != workflow_name:
            raise RunConflictError(
                f"run id {run_id!r} is held by a run of workflow {existing!r}, not "
                f"{workflow_name!r}: choose another run_id (e.g. prefix it with the "
                "workflow's name)", run_id=run_id, workflow=workflow_name,
                existing_workflow=existing)
        if existing is None:
            logger.info("run %s of %s started", run_id, workflow_name)
        try:
            # Also for an existing run: a start whose message was lost is sent again.
            self.dispatcher.wake(run_id)
        except Exception:  # noqa: BLE001 - the run is saved: the sweeper starts it
            logger.warning("run %s: the broker did not take its first message; it is saved, "
                           "and a worker's sweeper starts it within durable_step_lease (%ss) "
                           "once the broker answers", run_id, self.settings.step_lease,
                           exc_info=True)
        return run_id

    def queue_of(self, step_name: str | None) -> str:
        """The queue a step's messages go to (None: the orchestrator's queue)."""
        return self.dispatcher.queue_of(step_name or "celery_durable.orchestrate")

    def run_state(self, run_id: str) -> RunState:
        """The run's state; :class:`RunNotFound` if there is no such run."""
        state = self.store.state(run_id)
        if state is None:
            raise RunNotFound(f"no run with id {run_id!r} (never started, or past retention)")
        return state

    def list_runs(self, status: str | None = None, workflow: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> list[RunSummary]:
        """Runs newest first; ``cursor`` (the last row's ``.cursor``) pages on."""
        return list(self.store.list_runs(status, workflow, limit, cursor))

    def redrive(self, run_id: str) -> list[int]:
        """Continue a failed run under the code deployed now; returns the seqs of the steps
        that run again. ``ValueError`` if the run is not failed."""
        state = self.run_state(run_id)
        if state.status != "failed":
            raise ValueError(f"run {run_id!r} is {state.status}, not failed: only a failed "
                             "run can be redriven")
        events = self.store.events(run_id)
        voided = h.failures_that_ended(events)
        seqs = sorted({int(events[i]["seq"]) for i in voided})
        event = {"type": h.RUN_REDRIVEN, "at": time.time(), "voided": voided, "steps": seqs}
        if not self.store.redrive(run_id, event, seqs):
            raise ValueError(f"run {run_id!r} is no longer failed: only a failed run can be "
                             "redriven")
        logger.info("run %s redriven (steps run again: %s)", run_id, seqs or "none")
        self.dispatcher.wake(run_id, recover=True)
        return seqs

    def export(self, run_id: str) -> str:
        """The run's history as one JSON line (see :mod:`.replay_check`)."""
        state = self.run_state(run_id)
        return export_record(run_id, state.workflow, self.store.events(run_id))

    def workflow_function(self, name: str) -> Any:
        """The ``async def`` of a registered workflow (None if this process lacks it)."""
        return self.registry.workflow_function(name)

    def decode_error(self, error: dict[str, Any], step: str | None = None) -> BaseException:
        return self.errors.decode(error, step)

    @property
    def webhook_base_url(self) -> str:
        """``durable_webhook_base_url``: where the URLs of webhooks point."""
        return self.settings.webhook_base_url

    def cancel(self, run_id: str) -> bool:
        """Ask the run to stop; False if it had already ended."""
        self.run_state(run_id)
        event = {"type": h.CANCEL_REQUESTED, "at": time.time()}
        if not self.store.request_cancel(run_id, event):
            return False
        logger.info("run %s: cancellation requested", run_id)
        self.dispatcher.wake(run_id)
        for child in self.store.live_children(run_id):  # cancelling a parent cancels them
            if self.store.state(child) is not None:
                self.cancel(child)
        return True

    def resume_hook(self, token: str, payload: Any = None, *, wait: float | None = None
                    ) -> str:
        """Deliver ``payload`` to the live hook with this token; returns its run id.

        ``wait``: seconds to wait for the hook to exist (a run reaches its
        ``create_hook()`` only once a worker has run it that far).
        """
        value = codec.check_value(f"the payload for hook {token!r}", payload)
        deadline = time.monotonic() + (wait or 0.0)
        while True:
            info = self.store.token_info(token)
            if info is not None and info.kind == "hook":
                event = {"type": h.HOOK_RECEIVED, "seq": info.seq, "at": time.time(),
                         "payload": value}
                if self.store.deliver(info.run_id, event, "hook", token):
                    self.dispatcher.wake(info.run_id)
                    return info.run_id
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        waited = f" after waiting {wait}s" if wait else ""
        raise HookNotFound(
            f"no live hook has the token {token!r}{waited}. A hook exists from the moment a "
            "worker runs the workflow up to its create_hook() until the run disposes it or "
            "ends: right after start() it may not exist yet (pass wait=<seconds>; "
            "`celery durable resume-hook --wait SECONDS`), and a "
            "webhook's token is not a hook's")
