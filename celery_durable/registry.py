"""The steps and workflows one :class:`~celery_durable.Durable` registered, by name."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol


class StepDefinition(Protocol):
    name: str
    task: Any
    fn: Callable[..., Any]
    max_retries: float
    #: Whether a worker may run it inline (``@durable.step(inline=False)`` says no).
    inline: bool


class WorkflowDefinition(Protocol):
    name: str
    fn: Callable[..., Coroutine[Any, Any, Any]]


class Registry:
    """Names → steps and workflows; a name registered twice is an error."""

    def __init__(self) -> None:
        self.steps: dict[str, StepDefinition] = {}
        self.workflows: dict[str, WorkflowDefinition] = {}

    def __repr__(self) -> str:
        return f"<Registry workflows={len(self.workflows)} steps={len(self.steps)}>"

    def add_step(self, step: StepDefinition) -> None:
        if step.name in self.steps:
            raise ValueError(f"a step named {step.name!r} is already registered; pass "
                             "name=... to one of them")
        self.steps[step.name] = step

    def add_workflow(self, workflow: WorkflowDefinition) -> None:
        if workflow.name in self.workflows:
            raise ValueError(f"a workflow named {workflow.name!r} is already registered; "
                             "pass name=... to one of them")
        self.workflows[workflow.name] = workflow

    def workflow_function(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]] | None:
        """The ``async def`` of a registered workflow (None if this process lacks it)."""
        workflow = self.workflows.get(name)
        return workflow.fn if workflow is not None else None

    def step_task(self, name: str) -> Any:
        """The Celery task of a registered step (None if this process lacks it)."""
        step = self.steps.get(name)
        return step.task if step is not None else None

    def workflow_names(self, name: str) -> list[str]:
        """The registered workflows ``name`` means: itself if registered, else those
        whose last dotted part it is (``data_pipeline`` for ``proj.app.data_pipeline``)."""
        if name in self.workflows:
            return [name]
        return sorted(full for full in self.workflows if full.rsplit(".", 1)[-1] == name)

    def queues(self, default: str) -> list[str]:
        """Every queue a registered step is routed to by its own ``queue`` option, plus
        ``default`` (the app's ``task_default_queue``)."""
        names = {default}
        for step in self.steps.values():
            # The option travels with each message (durable_routing), not on the task.
            routing = getattr(step.task, "durable_routing", None) or {}
            queue = routing.get("queue") or getattr(step.task, "queue", None)
            if queue:
                names.add(str(getattr(queue, "name", queue)))
        return sorted(names)
