"""Independent steps in parallel: ``asyncio.gather`` is ``Promise.all``.

The three fetches are dispatched together and run on whichever workers are free;
the workflow resumes once all three are recorded. If one fails (after its
retries), ``gather`` raises that error at once, like ``Promise.all``.

Run it::

    celery -A examples.app worker -l INFO      # one terminal
    python -m examples.parallel_fetch          # another
"""

from __future__ import annotations

import asyncio
import time

from .app import durable

# A pretend database: the steps only simulate I/O.
USERS = {"u1": {"name": "Ada"}, "u2": {"name": "Grace"}}
ORDERS = {"u1": ["analytical engine", "punch cards"], "u2": ["compiler"]}
THEMES = {"u1": "dark"}


@durable.step
async def fetch_user(user_id: str) -> dict:
    await asyncio.sleep(0.2)  # an async step: e.g. an HTTP call with httpx
    return USERS[user_id]


@durable.step
def fetch_orders(user_id: str) -> dict:
    time.sleep(0.2)  # a sync step: e.g. a database query
    return {"items": ORDERS.get(user_id, [])}


@durable.step
def fetch_preferences(user_id: str) -> dict:
    time.sleep(0.2)
    return {"theme": THEMES.get(user_id, "light")}


@durable.workflow
async def fetch_user_data(user_id: str) -> dict:
    user, orders, preferences = await asyncio.gather(
        fetch_user(user_id),
        fetch_orders(user_id),
        fetch_preferences(user_id),
    )
    return {"user": user, "orders": orders, "preferences": preferences}


def main() -> None:
    run = fetch_user_data.start("u1")
    print(f"run {run.id} started")
    print("result:", run.result(timeout=60))


if __name__ == "__main__":
    main()
