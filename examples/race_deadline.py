"""Race a webhook against a deadline: ``race(webhook, sleep("1 day"))``.

The workflow hands a webhook URL to an external system (here a step that only
pretends to) and waits for its callback, but no longer than ``deadline``. The
loser keeps running and is ignored: a callback after the deadline changes nothing.
A day-long sleep costs no worker memory: it waits in Redis, not in a worker.

Run it (a worker and the web app serving the webhooks)::

    celery -A examples.app worker -l INFO
    flask --app examples.app:web run --port 5000
    python -m examples.race_deadline        # prints a curl command to call back
"""

from __future__ import annotations

from celery_durable import WebhookRequest, create_webhook, race, sleep

from . import outbox
from .app import durable


@durable.step
def execute_external_task(webhook_url: str) -> None:
    """Kick off work elsewhere; it will POST to ``webhook_url`` when done."""
    outbox.send("external-service", "start task", callback=webhook_url)


@durable.workflow
async def run_external_task(user_id: str, deadline: float | str = "1 day") -> dict:
    webhook = create_webhook(method="POST")  # the URL exists now, before the step runs
    await execute_external_task(webhook.url)
    # First to settle wins: the callback's request, or sleep()'s None.
    winner = await race(webhook, sleep(deadline))
    if not isinstance(winner, WebhookRequest):
        return {"user_id": user_id, "winner": "deadline"}
    try:
        report = winner.json()
    except ValueError:  # a bad body is data for the workflow, not a crash
        report = {"raw": winner.text}
    return {"user_id": user_id, "winner": "webhook", "report": report}


def main() -> None:
    run = run_external_task.start("u1", deadline=120)
    print(f"run {run.id} started; deadline in 120 s")
    (message,) = outbox.wait_for(run.id, 1)
    print("call back with:\n"
          f"  curl -X POST -H 'Content-Type: application/json' -d '{{\"ok\": true}}' "
          f"{message['callback']}")
    print("result:", run.result(timeout=180))


if __name__ == "__main__":
    main()
