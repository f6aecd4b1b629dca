"""celery_durable: durable, replayable ``async``/``await`` workflows on Celery + Redis.

>>> from celery import Celery
>>> from celery_durable import Durable
>>> app = Celery("proj", broker="redis://127.0.0.1:6379/0")
>>> durable = Durable(app)
"""

from .app import Durable, Step, Workflow
from .engine.inboxes import Hook, Webhook, create_hook, create_webhook
from .engine.primitives import (
    Settled,
    WorkflowMetadata,
    all_settled,
    as_completed,
    deprecate_patch,
    get_workflow_metadata,
    now,
    patched,
    race,
    random,
    sleep,
    uuid4,
    wait,
)
from .engine.webhook_http import WebhookRequest
from .errors import (
    ChildWorkflowFailed,
    FatalError,
    HookConflictError,
    HookNotFound,
    NonDeterminismError,
    RetryableError,
    RunConflictError,
    RunNotFound,
    StepFailed,
    WorkflowBlockedError,
    WorkflowCancelled,
    WorkflowFailed,
)
from .run import Run
from .steps import StepMetadata, get_step_metadata

__version__ = "0.1.0"

__all__ = [
    # the app object and what it returns
    "Durable", "Step", "Workflow", "Run",
    # inside a workflow
    "create_webhook", "create_hook", "Webhook", "Hook", "WebhookRequest",
    "sleep", "race", "all_settled", "Settled", "wait", "as_completed",
    "now", "random", "uuid4", "get_workflow_metadata", "WorkflowMetadata",
    # changing workflow code while runs are in flight
    "patched", "deprecate_patch",
    # inside a step
    "get_step_metadata", "StepMetadata",
    # errors
    "FatalError", "RetryableError", "StepFailed", "ChildWorkflowFailed", "NonDeterminismError",
    "WorkflowFailed",
    "WorkflowCancelled", "WorkflowBlockedError", "RunNotFound", "RunConflictError",
    "HookNotFound",
    "HookConflictError",
]
