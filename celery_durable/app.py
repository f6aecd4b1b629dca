"""``Durable``: registers steps and workflows on a Celery app.

This is the Celery adapter: the orchestrator and step runner are Celery tasks,
steps are dispatched with deterministic task ids and a ``durable`` header, and a
worker bootstep runs the sweeper that re-drives runs whose worker went away.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import logging
import math
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar, overload

from celery import Celery, bootsteps, signals

from . import codec
from .engine import history as h
from .engine.cache import InstanceCache
from .engine.context import current_replayer
from .engine.primitives import call_step
from .errors import HookNotFound, RunNotFound
from .orchestrator import Orchestrator, new_token, started_event
from .run import Run
from .settings import Settings
from .steps import StepRunner
from .store.keys import check_run_id
from .store.redis import RedisStore, connect

logger = logging.getLogger("celery_durable")

R = TypeVar("R")
ORCHESTRATE_TASK = "celery_durable.orchestrate"
FIRE_TIMER_TASK = "celery_durable.fire_timer"
_STEP_ID_NAMESPACE = uuid.UUID("6f1c1c56-3f0e-4a43-9d0c-6f8a0c5e2d11")



def _qualified_name(fn: Callable[..., Any]) -> str:
    """``module.qualname``; for ``python -m pkg.mod`` the module's real name, not
    ``__main__``, so the name matches what workers register when they import it."""
    module = fn.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
    return f"{module}.{fn.__qualname__}"


def step_task_id(run_id: str, seq: int) -> str:
    """The deterministic Celery task id of step ``seq`` of ``run_id``."""
    return str(uuid.uuid5(_STEP_ID_NAMESPACE, f"{run_id}/{seq}"))


class Step(Generic[R]):
    """A function registered with ``@durable.step``; its ``task`` is a Celery task.

    Inside a workflow, calling it returns a coroutine that schedules the step
    when it first runs; outside one, calling it runs the function directly.
    """

    def __init__(self, durable: Durable, fn: Callable[..., Any], name: str,
                 max_retries: float, task: Any) -> None:
        self.durable = durable
        self.fn = fn
        self.name = name
        self.max_retries = max_retries
        self.task = task
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<durable step {self.name} max_retries={self.max_retries}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_replayer() is None:
            return self.fn(*args, **kwargs)
        plain_args, plain_kwargs = codec.normalize_call(f"step {self.name!r}", args, kwargs)
        return call_step(self.name, plain_args, plain_kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Send the step as a plain Celery task (outside any run)."""
        return self.task.delay(*args, **kwargs)

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        """Send the step as a plain Celery task (outside any run)."""
        return self.task.apply_async(*args, **kwargs)


class Workflow(Generic[R]):
    """An ``async def`` registered with ``@durable.workflow``."""

    def __init__(self, durable: Durable, fn: Callable[..., Coroutine[Any, Any, R]],
                 name: str) -> None:
        self.durable = durable
        self.fn = fn
        self.name = name
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<durable workflow {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, R]:
        return self.fn(*args, **kwargs)

    def start(self, *args: Any, **kwargs: Any) -> Run:
        """Start a run now; returns its :class:`Run` at once.

        >>> run = data_pipeline.start({"name": "ada"})        # doctest: +SKIP
        """
        return self.durable.start_run(self, list(args), kwargs, None)

    def apply_async(self, args: Any = (), kwargs: dict[str, Any] | None = None,
                    run_id: str | None = None) -> Run:
        """Celery-style start; with ``run_id`` the start is idempotent.

        >>> run = order_flow.apply_async(args=(42,), run_id="order-42")  # doctest: +SKIP
        """
        return self.durable.start_run(self, list(args), dict(kwargs or {}), run_id)


class Durable:
    """Durable workflows on a Celery app; settings come from ``app.conf``.

    >>> app = Celery("proj", broker="redis://127.0.0.1:6379/0")   # doctest: +SKIP
    >>> durable = Durable(app)                                     # doctest: +SKIP
    """

    def __init__(self, app: Celery) -> None:
        if getattr(app, "_celery_durable", None) is not None:
            raise RuntimeError(f"{app!r} already has a Durable; create one Durable per Celery "
                               "app and import it where steps and workflows are defined")
        self.app = app
        app._celery_durable = self
        self.workflows: dict[str, Workflow[Any]] = {}
        self.steps: dict[str, Step[Any]] = {}
        self._lock = threading.RLock()
        self._settings: Settings | None = None
        self._store: RedisStore | None = None
        self._orchestrator: Orchestrator | None = None
        self._errors: codec.ErrorCodec | None = None
        self.runner = StepRunner(self)
        self._register_tasks()
        app.steps["worker"].add(SweeperStep)

    def __repr__(self) -> str:
        return f"<Durable app={self.app.main!r} workflows={len(self.workflows)} " \
               f"steps={len(self.steps)}>"

    # -- lazily built parts (after app.conf is final, once per process) -----------
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    self._settings = Settings.from_app(self.app)
        return self._settings

    @property
    def store(self) -> RedisStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    s = self.settings
                    client = connect(s.redis_url, s.redis_options, s.redis_cluster)
                    self._store = RedisStore(client, prefix=s.key_prefix, lease=s.step_lease,
                                             retention=s.run_retention,
                                             timer_horizon=s.timer_horizon,
                                             queue_timeout=s.queue_timeout,
                                             timer_grace=s.timer_grace)
        return self._store

    @property
    def errors(self) -> codec.ErrorCodec:
        if self._errors is None:
            with self._lock:
                if self._errors is None:
                    self._errors = codec.ErrorCodec(self.app)
        return self._errors

    @property
    def orchestrator(self) -> Orchestrator:
        if self._orchestrator is None:
            with self._lock:
                if self._orchestrator is None:
                    self._orchestrator = self._make_orchestrator()
        return self._orchestrator

    def _make_orchestrator(self) -> Orchestrator:
        s = self.settings
        return Orchestrator(
            store=self.store, find_workflow=self._workflow_function,
            dispatch=self.dispatch, errors=self.errors,
            cache=InstanceCache(s.cache_size), lease=s.step_lease,
            block_deadline=s.replay_block_deadline, timer_horizon=s.timer_horizon,
            webhook_base_url=s.webhook_base_url)

    def _workflow_function(self, name: str) -> Any:
        workflow = self.workflows.get(name)
        return workflow.fn if workflow is not None else None

    # -- decorators ---------------------------------------------------------------
    @overload
    def step(self, fn: Callable[..., R]) -> Step[R]: ...
    @overload
    def step(self, fn: None = None, **options: Any) -> Callable[[Callable[..., R]], Step[R]]: ...

    def step(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Register a step: an ordinary Celery task whose result is recorded once.

        Any Celery task option passes through (``queue``, ``rate_limit``,
        ``time_limit``...); ``max_retries`` defaults to ``durable_default_max_retries``.

        >>> @durable.step(max_retries=5, queue="io")             # doctest: +SKIP
        ... async def fetch_user(user_id: str) -> dict: ...
        """
        if fn is None:
            return lambda f: self.step(f, **options)
        if not callable(fn):
            raise TypeError(f"@durable.step decorates a function, got {fn!r}")
        name = options.pop("name", None) or _qualified_name(fn)
        if "max_retries" in options and options["max_retries"] is None:
            max_retries: float = math.inf  # Celery's None: retry for ever
        else:
            max_retries = options.get("max_retries", self.settings.default_max_retries)
            if not isinstance(max_retries, int) or max_retries < 0:
                raise ValueError(f"step {name!r}: max_retries must be an int >= 0 or None "
                                 f"(no limit), got {max_retries!r}")
            options["max_retries"] = max_retries
        if name in self.steps:
            raise ValueError(f"a step named {name!r} is already registered; pass name=... "
                             "to one of them")
        runner = self.runner

        def run(task: Any, *args: Any, **kwargs: Any) -> Any:
            return runner.execute(task, name, fn, max_retries, args, kwargs)

        run.__name__ = fn.__name__
        run.__qualname__ = fn.__qualname__
        run.__module__ = fn.__module__
        run.__doc__ = fn.__doc__
        task_options = {"acks_late": True, "reject_on_worker_lost": True,
                        "ignore_result": True, "typing": False}
        task_options.update(options)
        task = self.app.task(name=name, bind=True, shared=False, **task_options)(run)
        step: Step[Any] = Step(self, fn, name, max_retries, task)
        self.steps[name] = step
        return step

    @overload
    def workflow(self, fn: Callable[..., Coroutine[Any, Any, R]]) -> Workflow[R]: ...
    @overload
    def workflow(self, fn: None = None, *, name: str | None = None
                 ) -> Callable[[Callable[..., Coroutine[Any, Any, R]]], Workflow[R]]: ...

    def workflow(self, fn: Any = None, *, name: str | None = None) -> Any:
        """Register an ``async def`` as a durable workflow.

        >>> @durable.workflow                                    # doctest: +SKIP
        ... async def data_pipeline(data: dict) -> str:
        ...     return await store_data(await validate_data(data))
        """
        if fn is None:
            return lambda f: self.workflow(f, name=name)
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@durable.workflow needs an 'async def' function, got {fn!r}")
        wf_name = name or _qualified_name(fn)
        if wf_name in self.workflows:
            raise ValueError(f"a workflow named {wf_name!r} is already registered; "
                             "pass name=... to one of them")
        workflow: Workflow[Any] = Workflow(self, fn, wf_name)
        self.workflows[wf_name] = workflow
        return workflow

    # -- runs -----------------------------------------------------------------------
    def start(self, workflow: Workflow[Any], *args: Any, **kwargs: Any) -> Run:
        """Start a run of ``workflow``; same as ``workflow.start(*args, **kwargs)``."""
        return self.start_run(workflow, list(args), kwargs, None)

    def start_run(self, workflow: Workflow[Any], args: list[Any], kwargs: dict[str, Any],
                  run_id: str | None) -> Run:
        if not isinstance(workflow, Workflow) or workflow.durable is not self:
            raise TypeError(f"{workflow!r} is not a workflow of this Durable; decorate it "
                            "with @durable.workflow")
        run_id = check_run_id(run_id) if run_id is not None else uuid.uuid4().hex
        try:
            inspect.signature(workflow.fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"workflow {workflow.name!r}: {exc}") from None
        plain_args, plain_kwargs = codec.normalize_call(f"workflow {workflow.name!r}",
                                                        tuple(args), kwargs)
        event = started_event(workflow.name, plain_args, plain_kwargs)
        created = self.store.create_run(run_id, workflow.name, event,
                                        watch_at=time.time() + self.settings.step_lease)
        if created:
            logger.info("run %s of %s started", run_id, workflow.name)
            self.wake(run_id)
        return Run(self, run_id)

    def get_run(self, run_id: str) -> Run:
        """The :class:`Run` with this id; :class:`RunNotFound` if there is none."""
        if self.store.state(run_id) is None:
            raise RunNotFound(f"no run with id {run_id!r} (never started, or past retention)")
        return Run(self, run_id)

    def resume_hook(self, token: str, payload: Any = None) -> str:
        """Deliver ``payload`` to the live hook with this token; returns its run id.

        Raises :class:`HookNotFound` if no live run holds a hook with this token.

        >>> durable.resume_hook("slack:C123", {"text": "approve"})     # doctest: +SKIP
        'order-42'
        """
        info = self.store.token_info(token)
        if info is None or info.get("kind") != "hook":
            raise HookNotFound(f"no live hook has the token {token!r}")
        value = codec.check_value(f"the payload for hook {token!r}", payload)
        event = {"type": h.HOOK_RECEIVED, "seq": int(info["seq"]), "at": time.time(),
                 "payload": value}
        if not self.store.deliver(info["run"], event, "hook", token):
            raise HookNotFound(f"no live hook has the token {token!r} (its run ended or "
                               "disposed it)")
        self.wake(info["run"])
        return info["run"]

    def webhooks_blueprint(self, name: str = "celery_durable_webhooks") -> Any:
        """The Flask blueprint serving ``/webhook/<token>``.

        >>> flask_app.register_blueprint(durable.webhooks_blueprint(), url_prefix="/durable")
        ... # doctest: +SKIP
        """
        from .web.webhooks import webhooks_blueprint

        return webhooks_blueprint(self, name)

    def wake(self, run_id: str, recover: bool = False) -> None:
        """Send ``celery_durable.orchestrate(run_id)``: some worker continues the run."""
        self.app.send_task(ORCHESTRATE_TASK, args=(run_id,),
                           kwargs={"recover": True} if recover else {})

    # -- dispatch -------------------------------------------------------------------
    def dispatch(self, run_id: str, command: h.Command) -> None:
        """Send what a committed command needs: a step task, or a timer task."""
        if isinstance(command, h.StepCommand):
            self.send_step(run_id, command.seq, command.name, command.args, command.kwargs)
        elif isinstance(command, h.TimerCommand):
            self.send_timer(run_id, command.seq, command.due)

    def send_timer(self, run_id: str, seq: int, due: float) -> None:
        """Send the ETA message that fires timer ``seq`` of ``run_id`` at ``due``."""
        self.app.send_task(FIRE_TIMER_TASK, args=(run_id, seq, due),
                           eta=dt.datetime.fromtimestamp(due, dt.timezone.utc),
                           task_id=step_task_id(run_id, seq))

    def send_step(self, run_id: str, seq: int, name: str, args: list[Any],
                  kwargs: dict[str, Any], countdown: float | None = None) -> None:
        options: dict[str, Any] = {"task_id": step_task_id(run_id, seq),
                                   "headers": {"durable": [run_id, seq]}}
        if countdown:
            options["countdown"] = countdown
        step = self.steps.get(name)
        if step is not None:
            step.task.apply_async(args=args, kwargs=kwargs, **options)
        else:  # a step this process did not import: route it by name
            self.app.send_task(name, args=args, kwargs=kwargs, **options)

    # -- Celery tasks -------------------------------------------------------------------
    def _register_tasks(self) -> None:
        durable = self

        @self.app.task(name=ORCHESTRATE_TASK, acks_late=True, ignore_result=True, shared=False)
        def orchestrate(run_id: str, recover: bool = False) -> str:
            """Continue a durable run (celery_durable's orchestrator)."""
            if recover:
                return durable.orchestrator.recover(run_id)
            return durable.orchestrator.drive(run_id)

        @self.app.task(name=FIRE_TIMER_TASK, acks_late=True, ignore_result=True, shared=False)
        def fire_timer(run_id: str, seq: int, due: float = 0.0) -> None:
            """Fire a durable timer (never early, at most once) and continue the run."""
            if time.time() < due:  # a clock behind the sender's, or an early ETA
                durable.send_timer(run_id, int(seq), due)
                return
            event = {"type": h.TIMER_FIRED, "seq": int(seq), "at": time.time()}
            token = new_token()
            recorded = durable.store.record(run_id, int(seq), event, token, timer_due=due)
            if recorded.leased and durable.orchestrator.drive(run_id, token) \
                    == "unknown-workflow":
                durable.wake(run_id)  # this worker lacks the workflow: hand it on

        self.orchestrate_task = orchestrate
        self.fire_timer_task = fire_timer

    def sweep_once(self, limit: int = 100) -> list[str]:
        """One pass of the sweeper: hand timers coming due to ETA messages, and
        re-drive runs whose watch time passed (lost steps, crashed replays).

        Workers run it every ``durable_sweep_interval``; several at once is safe.
        Returns the ids of the runs it woke.
        """
        now = time.time()
        for run_id, seq, due in self.store.arm_due_timers(now):
            self.send_timer(run_id, seq, due)
        due_runs = self.store.claim_due_runs(now, now + self.settings.step_lease, limit)
        for run_id in due_runs:
            logger.info("run %s: checking for lost work", run_id)
            self.wake(run_id, recover=True)
        return due_runs


class SweeperStep(bootsteps.StartStopStep):
    """Worker bootstep: a thread that arms timers and re-drives runs whose worker went
    away, and the marks that tie prefetched step messages to this worker.

    Several workers sweeping at once is safe: each due run is claimed atomically.
    Disable with ``durable_sweeper = False`` (then run ``Durable.sweep_once`` elsewhere).
    """

    label = "celery_durable sweeper"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._durable: Durable | None = None
        self._marks: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self.worker_id = ""

    def start(self, parent: Any) -> None:
        durable = getattr(parent.app, "_celery_durable", None)
        if durable is None or parent.app.conf.get("durable_sweeper", True) is False:
            return
        self._durable = durable
        self.worker_id = f"{getattr(parent, 'hostname', 'worker')}:{os.getpid()}:" \
                         f"{uuid.uuid4().hex[:8]}"
        try:
            durable.store.worker_alive(self.worker_id)
        except Exception:  # noqa: BLE001 - Redis may be starting: the loop beats again
            logger.warning("durable sweeper: Redis not reachable yet", exc_info=True)
        signals.task_received.connect(self._received, weak=False)
        self._thread = threading.Thread(target=self._loop, args=(durable,),
                                        name="durable-sweeper", daemon=True)
        self._thread.start()
        threading.Thread(target=self._send_marks, args=(durable,),
                         name="durable-received", daemon=True).start()

    def _received(self, sender: Any = None, request: Any = None, **kwargs: Any) -> None:
        # On the consumer, for every message it takes (prefetched ones too): only queue
        # it, so that a slow Redis never holds up the consumer.
        marker = (getattr(request, "request_dict", None) or {}).get("durable")
        if marker:
            self._marks.put((str(marker[0]), int(marker[1])))

    def _send_marks(self, durable: Durable) -> None:
        while not self._stop.is_set():
            try:
                first = self._marks.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._marks.get_nowait())
                except queue.Empty:
                    break
            try:
                durable.store.received(batch, self.worker_id)
            except Exception:  # noqa: BLE001 - unmarked steps are recovered later anyway
                logger.warning("durable: could not mark %d received steps", len(batch),
                               exc_info=True)

    def _loop(self, durable: Durable) -> None:
        interval = durable.settings.sweep_interval
        while not self._stop.wait(interval):
            try:
                durable.store.worker_alive(self.worker_id)
                durable.sweep_once()
            except Exception:  # noqa: BLE001 - Redis may be restarting: try again later
                logger.warning("durable sweeper: sweep failed", exc_info=True)

    def stop(self, parent: Any) -> None:
        self._stop.set()
        signals.task_received.disconnect(self._received)
        if self._durable is not None and self.worker_id:
            try:
                self._durable.store.worker_gone(self.worker_id)
            except Exception:  # noqa: BLE001 - its key expires by itself
                pass
