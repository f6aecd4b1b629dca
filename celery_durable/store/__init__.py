"""Where histories live: the interface (:mod:`.base`), the key schema and Redis."""

from .base import HistoryStore, Loaded, Recorded, StepClaim
from .redis import RedisStore, connect

__all__ = ["HistoryStore", "Loaded", "Recorded", "StepClaim", "RedisStore", "connect"]
