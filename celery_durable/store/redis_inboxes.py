"""The webhook and hook part of :class:`~.redis.RedisStore`: tokens, deliveries and the
answers to webhook requests held open."""

from __future__ import annotations

import hmac
import time
from typing import Any

from .. import codec
from .base import TokenClaim, TokenInfo


class RedisInboxes:
    """Mixed into :class:`~.redis.RedisStore` (it has the client, keys and scripts)."""

    client: Any
    keys: Any
    lease: float
    _batch: Any
    _block_for: Any
    step_fields: Any

    def claim_tokens(self, run_id: str, claims: list[TokenClaim], takeover: str = ""
                     ) -> list[tuple[TokenClaim, str]]:
        batch = self._batch()
        for claim in claims:
            batch.script("claim_token", [self.keys.token(claim.token)],
                         [run_id, claim.seq, claim.kind, claim.token, claim.method or "",
                          codec.dumps(claim.respond_with), takeover, int(time.time() * 1000)])
        holders = batch.execute() if claims else []
        return [(claim, holder) for claim, holder in zip(claims, holders, strict=True) if holder]

    def holds_inbox(self, run_id: str, kind: str, token: str) -> bool:
        mark = f"{kind}:{token}"
        return any(field.startswith("inbox:") and value == mark
                   for field, value in self.step_fields(run_id).items())

    def token_info(self, token: str) -> TokenInfo | None:
        info = self.client.hgetall(self.keys.token(token))
        # The key is a hash of the token; compare the token itself in constant time too.
        if not info or not hmac.compare_digest(info.get("token", "").encode(), token.encode()):
            return None
        return TokenInfo(run_id=info["run"], seq=int(info["seq"]), kind=info.get("kind", ""),
                         method=info.get("method") or None,
                         respond_with=codec.loads(info.get("respond_with") or "null"),
                         claimed_at=int(info.get("claimed_at") or 0) / 1000)

    def deliver(self, run_id: str, event: dict[str, Any], kind: str, token: str) -> bool:
        k = self.keys.run(run_id)
        _, appended = (self._batch()
                       .call("zadd", self.keys.watch,
                             {run_id: int((time.time() + self.lease) * 1000)})
                       .script("deliver", [k.history, k.state, k.steps],
                               [codec.dumps(event), event["seq"], f"{kind}:{token}"])
                       .execute())
        return bool(appended)

    def wait_response(self, run_id: str, request_id: str, timeout: float
                      ) -> dict[str, Any] | None:
        key = self.keys.response(run_id, request_id)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            reply = self.client.blpop([key], timeout=self._block_for(remaining))
            if reply:
                return dict(codec.loads(reply[1]))
