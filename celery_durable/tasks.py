"""The Celery tasks: ``orchestrate``, ``fire_timer`` and each step's own task.

They are registered when the :class:`~celery_durable.Durable` is created (workers
must know them at import time) and find the runtime only when they run, through
``runtime()``: ``app.conf`` is final by then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from .dispatch import FIRE_TIMER_TASK, ORCHESTRATE_TASK
from .runtime import Runtime

RuntimeGetter = Callable[[], Runtime]

#: Options every step task gets unless the step sets its own.
STEP_TASK_DEFAULTS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True,
                      "typing": False}

#: Routing options Celery 5.7 deprecates as task attributes (no effect from 6.0): a step
#: keeps them as ``durable_routing`` and its messages are sent with them.
ROUTING_OPTIONS = ("queue", "exchange", "exchange_type", "routing_key", "delivery_mode",
                   "priority")


def register_run_tasks(app: Celery, runtime: RuntimeGetter) -> tuple[Any, Any]:
    """Register ``celery_durable.orchestrate`` and ``celery_durable.fire_timer``."""

    @app.task(name=ORCHESTRATE_TASK, acks_late=True, ignore_result=True, shared=False,
              bind=True)
    def orchestrate(self: Any, run_id: str, recover: bool = False) -> str:
        """Continue a durable run (celery_durable's orchestrator)."""
        parts = runtime()
        if recover:
            parts.store.check_done(run_id)  # the sweeper may send another from now on
            return parts.orchestrator.recover(run_id)
        slot = parts.steps.inline_slot(self)  # its first step may run right here
        outcome = parts.orchestrator.drive(run_id, inline=slot)
        parts.steps.run_inline(slot)
        return outcome

    @app.task(name=FIRE_TIMER_TASK, acks_late=True, ignore_result=True, shared=False)
    def fire_timer(run_id: str, seq: int, due: float = 0.0) -> None:
        """Fire a durable timer (never early, at most once) and continue the run."""
        runtime().timers.fire(run_id, int(seq), float(due))

    return orchestrate, fire_timer


def register_step_task(app: Celery, runtime: RuntimeGetter, name: str, fn: Callable[..., Any],
                       max_retries: float, options: dict[str, Any]) -> Any:
    """Register the Celery task that runs step ``fn`` (its body: the step runner)."""

    def run(task: Any, *args: Any, **kwargs: Any) -> Any:
        return runtime().steps.execute(task, name, fn, max_retries, args, kwargs)

    run.__name__ = fn.__name__
    run.__qualname__ = fn.__qualname__
    run.__module__ = fn.__module__
    run.__doc__ = fn.__doc__
    routing = {key: value for key, value in options.items() if key in ROUTING_OPTIONS}
    rest = {key: value for key, value in options.items() if key not in ROUTING_OPTIONS}
    return app.task(name=name, bind=True, shared=False, durable_routing=routing,
                    **{**STEP_TASK_DEFAULTS, **rest})(run)
