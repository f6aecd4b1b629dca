"""Sequential steps: validate → process → store, each using the previous result.

Run it (Redis on 127.0.0.1:6379, or set ``EXAMPLES_REDIS_URL``)::

    celery -A examples.app worker -l INFO      # one terminal
    python -m examples.pipeline                # another
"""

from __future__ import annotations

import hashlib
import json
import time

from celery_durable import FatalError

from .app import durable


@durable.step
def validate_data(data: dict) -> str:
    """Check the input; bad input is a FatalError (retrying will not fix it)."""
    missing = [field for field in ("name", "email") if not data.get(field)]
    if missing:
        raise FatalError(f"missing fields: {', '.join(missing)}")
    return json.dumps({"name": data["name"].strip(), "email": data["email"].strip().lower()})


@durable.step
def process_data(validated: str) -> str:
    """Some CPU work on the validated record."""
    time.sleep(0.1)  # stands for real work
    record = json.loads(validated)
    return f"{record['name'].title()} <{record['email']}>"


@durable.step
async def store_data(processed: str) -> str:  # steps may be async too
    """"Store" the record; returns its id (derived from the content: idempotent)."""
    return "rec-" + hashlib.sha256(processed.encode()).hexdigest()[:8]


@durable.workflow
async def data_pipeline(data: dict) -> str:
    # Each await is durable: its result is recorded before the next step starts,
    # so a worker dying between steps never runs a finished step again.
    validated = await validate_data(data)
    processed = await process_data(validated)
    stored = await store_data(processed)
    return stored


def main() -> None:
    run = data_pipeline.start({"name": "ada lovelace", "email": " Ada@Example.com "})
    print(f"run {run.id} started")
    print("result:", run.result(timeout=60))


if __name__ == "__main__":
    main()
