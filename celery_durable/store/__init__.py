"""Where histories live: the interface (:mod:`.base`), the key schema and Redis."""

from .base import Commit, HistoryStore, Loaded, Recorded, StepClaim
from .redis import RedisStore, connect

__all__ = ["Commit", "HistoryStore", "Loaded", "Recorded", "StepClaim", "RedisStore", "connect"]
