"""Commands for one round trip to Redis: a pipeline, or one call after another on a
Cluster (where redis-py cannot pipeline scripts)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

Op = tuple[str, tuple[Any, ...], dict[str, Any]]


class Batch:
    """Commands for one round trip: a pipeline, or sequential calls on a cluster.

    Scripts go into the pipeline as plain EVALSHA (redis-py would first send SCRIPT
    EXISTS, a round trip of its own); one the server does not know yet is loaded and
    run again on its own.
    """

    def __init__(self, client: Any, scripts: dict[str, Any], cluster: bool) -> None:
        self._client = client
        self._scripts = scripts
        self._cluster = cluster
        self.ops: list[tuple[Any, Callable[[Any], Any]]] = []

    def script(self, name: str, keys: list[str], args: list[Any]) -> Batch:
        script = self._scripts[name]

        def direct(client: Any) -> Any:
            return script(keys=keys, args=args, client=client)

        def queued(pipe: Any) -> Any:
            return pipe.evalsha(script.sha, len(keys), *keys, *args)

        self.ops.append((direct, queued))
        return self

    def calls(self, ops: list[Op]) -> Batch:
        for method, args, kwargs in ops:
            self.call(method, *args, **kwargs)
        return self

    def call(self, method: str, *args: Any, **kwargs: Any) -> Batch:
        def op(client: Any) -> Any:
            return getattr(client, method)(*args, **kwargs)

        self.ops.append((op, op))
        return self

    def execute(self) -> list[Any]:
        client = self._client
        if self._cluster:
            return [direct(client) for direct, _ in self.ops]
        pipe = client.pipeline(transaction=False)
        for _, queued in self.ops:
            queued(pipe)
        results = list(pipe.execute(raise_on_error=False))
        for i, result in enumerate(results):
            if isinstance(result, redis.exceptions.NoScriptError) or (
                    isinstance(result, redis.exceptions.ResponseError)
                    and str(result).startswith("NOSCRIPT")):
                results[i] = self.ops[i][0](client)  # it did not run: run it, loading it
            elif isinstance(result, Exception):
                raise result
        return results
