"""Where histories live: the interface (:mod:`.base`), the key schema, the mark format
and Redis."""

from .base import Commit, Committed, HistoryStore, Loaded, Recorded, RunState, StepClaim, TokenInfo
from .connect import connect
from .redis import RedisStore

__all__ = ["Commit", "Committed", "HistoryStore", "Loaded", "Recorded", "RunState", "StepClaim",
           "TokenInfo", "RedisStore", "connect"]
