"""``Durable``: decorators and wiring; the user's one object.

``Durable(app)`` registers the run tasks and the sweeper bootstep on a Celery app;
``@durable.step`` and ``@durable.workflow`` register steps and workflows. The work is
done by the :class:`~celery_durable.runtime.Runtime` it builds once per process and
hands to every adapter.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar, overload

from celery import Celery

from . import codec
from .dispatch import routing_options
from .engine.context import current_context
from .engine.primitives import call_child, call_step, start_detached
from .registry import Registry
from .run import Run
from .runtime import Runtime, check_arguments
from .settings import DEFAULTS
from .sweeper import ConsumerPresenceStep, Sweeper, SweeperStep
from .tasks import register_run_tasks, register_step_task

R = TypeVar("R")


def _qualified_name(fn: Callable[..., Any]) -> str:
    """``module.qualname``; for ``python -m pkg.mod`` the module's real name, not
    ``__main__``, so the name matches what workers register when they import it."""
    module = fn.__module__
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            module = spec.name
    return f"{module}.{fn.__qualname__}"


class Step(Generic[R]):
    """A function registered with ``@durable.step``; its ``task`` is a Celery task.

    Inside a workflow, calling it returns a coroutine that schedules the step
    when it first runs; outside one, calling it runs the function directly.
    """

    def __init__(self, durable: Durable, fn: Callable[..., Any], name: str,
                 max_retries: float, task: Any, inline: bool = True) -> None:
        self.durable = durable
        self.fn = fn
        self.name = name
        self.max_retries = max_retries
        self.task = task
        self.inline = inline
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<durable step {self.name} max_retries={self.max_retries}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current_context() is None:
            return self.fn(*args, **kwargs)
        plain_args, plain_kwargs = codec.normalize_call(f"step {self.name!r}", args, kwargs)
        return call_step(self.name, plain_args, plain_kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Send the step as a plain Celery task (outside any run), routed by its own
        ``queue``/``priority``... options."""
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the step as a plain Celery task (outside any run); ``options`` as for
        Celery's ``apply_async``, over the step's own routing options."""
        return self.task.apply_async(args, kwargs, **{**routing_options(self.task), **options})


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
        if current_context() is not None:  # a child run, awaited by this workflow
            check_arguments(self.name, self.fn, list(args), kwargs)
            plain_args, plain_kwargs = codec.normalize_call(f"workflow {self.name!r}", args,
                                                            kwargs)
            return call_child(self.name, plain_args, plain_kwargs)
        if current_context() is None:
            # Its steps would run inline and return plain values, and the first `await`
            # of one would fail with a puzzling "can't be used in 'await' expression".
            raise TypeError(
                f"workflow {self.name!r} is not called directly: start a run with "
                f"{self.fn.__name__}.start(...) (or .apply_async(args=..., run_id=...)) and "
                "wait with run.result(timeout=...); a worker runs it")
        return self.fn(*args, **kwargs)

    def start(self, *args: Any, **kwargs: Any) -> Any:
        """Start a run now; returns its :class:`Run` at once. Inside a workflow it starts
        a detached run (recorded, so exactly once) and returns its run id.

        >>> run = data_pipeline.start({"name": "ada"})        # doctest: +SKIP
        """
        if current_context() is not None:
            check_arguments(self.name, self.fn, list(args), kwargs)
            plain_args, plain_kwargs = codec.normalize_call(f"workflow {self.name!r}", args,
                                                            kwargs)
            return start_detached(self.name, plain_args, plain_kwargs)
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
        self.registry = Registry()
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None
        self.orchestrate_task, self.fire_timer_task = register_run_tasks(
            app, lambda: self.runtime)
        app.steps["worker"].add(SweeperStep)
        app.steps["consumer"].add(ConsumerPresenceStep)

    def __repr__(self) -> str:
        return f"<Durable app={self.app.main!r} workflows={len(self.registry.workflows)} " \
               f"steps={len(self.registry.steps)}>"

    @property
    def runtime(self) -> Runtime:
        """The parts every adapter shares, built at first use (``app.conf`` is final by
        then) and once per process."""
        if self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    self._runtime = Runtime(self.app, self.registry)
        return self._runtime

    def replace_runtime(self, runtime: Runtime | None) -> Runtime | None:
        """Use ``runtime`` from now on (None: build one again at next use); returns the
        one it replaces. For test kits (``celery_durable.testing``) that give the app a
        private store without the user editing it.
        """
        with self._lock:
            previous, self._runtime = self._runtime, runtime
        return previous

    # -- decorators ---------------------------------------------------------------
    @overload
    def step(self, fn: Callable[..., R]) -> Step[R]: ...
    @overload
    def step(self, fn: None = None, **options: Any) -> Callable[[Callable[..., R]], Step[R]]: ...

    def step(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """Register a step: an ordinary Celery task whose result is recorded once.

        Any Celery task option passes through (``queue``, ``rate_limit``,
        ``time_limit``...; routing options such as ``queue`` and ``priority`` travel with
        each message rather than as task attributes); ``max_retries`` defaults to
        ``durable_default_max_retries``; ``inline=False`` keeps a worker from running it
        inline (always a message).

        >>> @durable.step(max_retries=5, queue="io")             # doctest: +SKIP
        ... async def fetch_user(user_id: str) -> dict: ...
        """
        if fn is None:
            return lambda f: self.step(f, **options)
        if not callable(fn):
            raise TypeError(f"@durable.step decorates a function, got {fn!r}")
        name = options.pop("name", None) or _qualified_name(fn)
        inline = bool(options.pop("inline", True))
        if "max_retries" in options and options["max_retries"] is None:
            max_retries: float = math.inf  # Celery's None: retry for ever
        else:
            default = self.app.conf.get("durable_default_max_retries")
            max_retries = options.get("max_retries", DEFAULTS["durable_default_max_retries"]
                                      if default is None else default)
            if isinstance(max_retries, bool) or not isinstance(max_retries, int) \
                    or max_retries < 0:
                raise ValueError(f"step {name!r}: max_retries must be an int >= 0 or None "
                                 f"(no limit), got {max_retries!r}")
            options["max_retries"] = max_retries
        if name in self.registry.steps:
            raise ValueError(f"a step named {name!r} is already registered; pass name=... "
                             "to one of them")
        task = register_step_task(self.app, lambda: self.runtime, name, fn, max_retries,
                                  options)
        step: Step[Any] = Step(self, fn, name, max_retries, task, inline)
        self.registry.add_step(step)
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
        workflow: Workflow[Any] = Workflow(self, fn, name or _qualified_name(fn))
        self.registry.add_workflow(workflow)
        return workflow

    # -- runs -----------------------------------------------------------------------
    def start(self, workflow: Workflow[Any], *args: Any, **kwargs: Any) -> Run:
        """Start a run of ``workflow``; same as ``workflow.start(*args, **kwargs)``."""
        return self.start_run(workflow, list(args), kwargs, None)

    def start_run(self, workflow: Workflow[Any], args: list[Any], kwargs: dict[str, Any],
                  run_id: str | None) -> Run:
        """Start a run (``run_id``: idempotent start under that id); returns its Run."""
        if not isinstance(workflow, Workflow) or workflow.durable is not self:
            raise TypeError(f"{workflow!r} is not a workflow of this Durable; decorate it "
                            "with @durable.workflow")
        runtime = self.runtime
        return Run(runtime, runtime.start_run(workflow.name, args, kwargs, run_id))

    def get_run(self, run_id: str) -> Run:
        """The :class:`Run` with this id; :class:`RunNotFound` if there is none."""
        runtime = self.runtime
        runtime.run_state(run_id)
        return Run(runtime, run_id)

    def resume_hook(self, token: str, payload: Any = None, *, wait: float | None = None
                    ) -> str:
        """Deliver ``payload`` to the live hook with this token; returns its run id.

        A hook exists once a worker has run the workflow up to its ``create_hook()``:
        right after ``start()`` it may not yet. ``wait`` seconds waits (bounded) for
        it. Raises :class:`HookNotFound` if no live run holds a hook with this token.

        >>> durable.resume_hook("slack:C123", {"text": "approve"}, wait=10)  # doctest: +SKIP
        'order-42'
        """
        return self.runtime.resume_hook(token, payload, wait=wait)

    def webhooks_blueprint(self, name: str = "celery_durable_webhooks") -> Any:
        """The Flask blueprint serving ``/webhook/<token>``.

        >>> flask_app.register_blueprint(durable.webhooks_blueprint(), url_prefix="/durable")
        ... # doctest: +SKIP
        """
        from .web.webhooks import webhooks_blueprint

        return webhooks_blueprint(lambda: self.runtime, name)

    def viewer_blueprint(self, *, actions: bool = False,
                         name: str = "celery_durable_viewer") -> Any:
        """The Flask blueprint of the run viewer: the runs, and each run's timeline.

        Read-only unless ``actions=True`` (cancel, wake up, redrive, resume a hook).

        >>> flask_app.register_blueprint(durable.viewer_blueprint(), url_prefix="/runs")
        ... # doctest: +SKIP
        """
        from .web.viewer import viewer_blueprint

        return viewer_blueprint(lambda: self.runtime, actions=actions, name=name)

    def sweep_once(self, limit: int = 100) -> list[str]:
        """One pass of the sweeper (for running it as its own process; workers sweep by
        themselves unless ``durable_sweeper = False``). Returns the runs it checks."""
        return Sweeper(self.runtime).sweep_once(limit)
