"""Live workflow instances kept per process, so a wake-up replays only the tail.

An instance is taken out while one thread drives it and put back afterwards;
the least recently used one is discarded (its tasks cancelled and drained on
the calling thread) when the cache is full.
"""

from __future__ import annotations

import collections
import threading

from .replay import Replayer


class InstanceCache:
    """An LRU of :class:`Replayer` by run id; ``size=0`` turns caching off."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._items: collections.OrderedDict[str, Replayer] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f"<InstanceCache {len(self._items)}/{self.size} "
                f"hits={self.hits} misses={self.misses}>")

    def __len__(self) -> int:
        return len(self._items)

    def take(self, run_id: str) -> Replayer | None:
        """Remove and return the live instance of ``run_id``, if this process has one."""
        with self._lock:
            replayer = self._items.pop(run_id, None)
            if replayer is None:
                self.misses += 1
            else:
                self.hits += 1
            return replayer

    def position(self, run_id: str) -> int:
        """The history position of the live instance of ``run_id`` (0 without one)."""
        with self._lock:
            replayer = self._items.get(run_id)
            return replayer.position if replayer is not None else 0

    def put(self, replayer: Replayer) -> None:
        """Keep ``replayer`` for its run's next wake-up."""
        evicted = []
        with self._lock:
            if self.size <= 0:
                evicted.append(replayer)
            else:
                old = self._items.pop(replayer.run_id, None)
                if old is not None and old is not replayer:
                    evicted.append(old)
                self._items[replayer.run_id] = replayer
                while len(self._items) > self.size:
                    evicted.append(self._items.popitem(last=False)[1])
        for item in evicted:
            item.discard()

    def clear(self) -> None:
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        for item in items:
            item.discard()
