"""The replay engine: pure Python, no Redis, no Celery, no Flask.

``Replayer`` turns a history into commands on a deterministic event loop; the
primitives are what workflow code awaits. Only :mod:`celery_durable.errors`
is imported from the rest of the package.
"""

from .history import Command, StepCommand, TimerCommand
from .replay import Outcome, Replayer

__all__ = ["Command", "StepCommand", "TimerCommand", "Outcome", "Replayer"]
