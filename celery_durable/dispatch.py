"""Celery at the edge: the names of our tasks, deterministic task ids, and sending.

Every message the runtime sends goes through :class:`CeleryDispatcher`: the
``celery_durable.orchestrate`` task that continues a run, a step's own task (with
the ``durable`` header naming its run and seq), and the ETA message of
``celery_durable.fire_timer``.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery

ORCHESTRATE_TASK = "celery_durable.orchestrate"
FIRE_TIMER_TASK = "celery_durable.fire_timer"
#: The message header that marks a step task as part of a run:
#: ``[run id, seq, sent at (ms), queue]``.
STEP_HEADER = "durable"
_TASK_ID_NAMESPACE = uuid.UUID("6f1c1c56-3f0e-4a43-9d0c-6f8a0c5e2d11")


def routing_options(task: Any) -> dict[str, Any]:
    """A step task's own routing options (``queue``, ``priority``...), which its
    messages are sent with: Celery 6 ignores them as task attributes."""
    return dict(getattr(task, "durable_routing", None) or {})


def step_task_id(run_id: str, seq: int) -> str:
    """The deterministic Celery task id of command ``seq`` of ``run_id`` (step or timer)."""
    return str(uuid.uuid5(_TASK_ID_NAMESPACE, f"{run_id}/{seq}"))


class CeleryDispatcher:
    """:class:`~.messages.Dispatcher` on a Celery app.

    ``find_task(name)`` gives a registered step's task, so its own options (queue,
    routing, priority) apply; a step this process did not import is sent by name.
    """

    def __init__(self, app: Celery, find_task: Callable[[str], Any]) -> None:
        self.app = app
        self.find_task = find_task

    def __repr__(self) -> str:
        return f"<CeleryDispatcher app={self.app.main!r}>"

    def wake(self, run_id: str, *, recover: bool = False) -> None:
        # ignore_result: nobody reads an orchestrate result, and a result backend
        # would otherwise subscribe and unsubscribe for each one.
        self.app.send_task(ORCHESTRATE_TASK, args=(run_id,),
                           kwargs={"recover": True} if recover else {}, ignore_result=True)

    def queue_of(self, name: str) -> str:
        """The queue a task's messages go to: its own ``queue`` option, else the app's
        routes, else ``task_default_queue``."""
        default = str(self.app.conf.task_default_queue or "celery")
        task = self.find_task(name)
        own = routing_options(task).get("queue") or getattr(task, "queue", None)
        if own:
            return str(getattr(own, "name", own))
        try:
            queue = self.app.amqp.router.route({}, name).get("queue")
        except Exception:  # noqa: BLE001 - a routing setting we cannot evaluate here
            return default
        return str(getattr(queue, "name", queue) or default)

    def queue_is_empty(self, queue: str) -> bool:
        """True when the broker holds no message in ``queue`` (so a step sent there long
        ago is not behind a backlog); False when it does, or cannot say."""
        try:
            with self.app.connection_for_read() as connection:
                _, count, _ = connection.default_channel.queue_declare(queue=queue,
                                                                       passive=True)
        except Exception as exc:  # noqa: BLE001 - no queue: nothing waits in it
            return "NOT_FOUND" in str(exc) or "404" in str(exc)
        return int(count) == 0

    def send_step(self, run_id: str, seq: int, name: str, args: list[Any],
                  kwargs: dict[str, Any], countdown: float | None = None) -> str:
        queue = self.queue_of(name)
        options: dict[str, Any] = {
            "task_id": step_task_id(run_id, seq),
            "headers": {STEP_HEADER: [run_id, seq, int(time.time() * 1000), queue]}}
        if countdown:
            options["countdown"] = countdown
        task = self.find_task(name)
        if task is not None:
            task.apply_async(args=args, kwargs=kwargs, **routing_options(task), **options)
        else:  # a step this process did not import: route it by name
            self.app.send_task(name, args=args, kwargs=kwargs, **options)
        return queue

    def send_timer(self, run_id: str, seq: int, due: float) -> None:
        self.app.send_task(FIRE_TIMER_TASK, args=(run_id, seq, due),
                           eta=dt.datetime.fromtimestamp(due, dt.timezone.utc),
                           task_id=step_task_id(run_id, seq), ignore_result=True)
