"""The watch part of :class:`~.redis.RedisStore`: which runs the sweepers look at, when,
and the recovery checks on their way."""

from __future__ import annotations

import time
from typing import Any


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisWatch:
    """Mixed into :class:`~.redis.RedisStore` (it has the client, keys and scripts)."""

    client: Any
    keys: Any
    lease: float
    _script: Any

    def watch(self, run_id: str, when: float) -> None:
        # LT: never push back a nearer check that someone set meanwhile.
        self.client.zadd(self.keys.watch, {run_id: _ms(when)}, lt=True)

    def claim_check(self, run_id: str, now: float, stale_after: float) -> bool:
        return bool(self._script("claim_check", [self.keys.checks],
                                 [run_id, _ms(now), _ms(stale_after)]))

    def check_done(self, run_id: str) -> None:
        self.client.zrem(self.keys.checks, run_id)

    def claim_due_runs(self, now: float, next_check: float, limit: int) -> list[str]:
        return list(self._script("claim_due", [self.keys.watch],
                                 [_ms(now), _ms(next_check), limit]))

    def unwatch_if_idle(self, run_id: str) -> bool:
        k = self.keys.run(run_id)
        # Push the entry on, look, and remove it only if nobody touched it meanwhile: an
        # outcome recorded in between moves it, and dying in between leaves it.
        mark = _ms(time.time() + self.lease)
        self.client.zadd(self.keys.watch, {run_id: mark})
        if self._script("busy", [k.state, k.lease, k.steps], []):
            return False
        return bool(self._script("unwatch", [self.keys.watch], [run_id, mark]))
