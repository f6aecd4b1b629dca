"""Sequential, parallel and durable primitives together: a birthday card.

1. make the card's text, then its image (sequential: the image needs the text);
2. one webhook per friend, and all RSVP emails sent at once (``asyncio.gather``);
3. RSVPs collected as they arrive, without blocking (``asyncio.create_task`` per
   webhook: the Python form of ``webhook.then(...)``);
4. a durable sleep until the birthday (a ``datetime``: days away costs nothing);
5. the card sent with whatever RSVPs came in by then.

Run it (a worker and the web app serving the webhooks)::

    celery -A examples.app worker -l INFO
    flask --app examples.app:web run --port 5000
    python -m examples.birthday             # prints the RSVP links to POST to
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

from celery_durable import Webhook, create_webhook, sleep

from . import outbox
from .app import durable


@durable.step
def make_card_text(prompt: str) -> str:
    return f"Happy birthday! {prompt.capitalize()}."  # stands for a call to a text model


@durable.step
def make_card_image(text: str) -> str:
    return f"https://cards.example/{hashlib.sha256(text.encode()).hexdigest()[:12]}.png"


@durable.step
def send_rsvp_email(friend: str, rsvp_url: str) -> None:
    outbox.send(friend, "RSVP for the party", rsvp_url=rsvp_url)


@durable.step
def send_birthday_card(text: str, image: str, rsvps: list, email: str) -> None:
    outbox.send(email, "your birthday card", text=text, image=image, rsvps=rsvps)


@durable.workflow
async def birthday_workflow(prompt: str, email: str, friends: list[str],
                            birthday: dt.datetime) -> dict:
    text = await make_card_text(prompt)
    image = await make_card_image(text)

    webhooks = [create_webhook(method="POST") for _ in friends]
    await asyncio.gather(*(send_rsvp_email(friend, webhook.url)
                           for friend, webhook in zip(friends, webhooks, strict=True)))

    rsvps: list = []

    async def collect(webhook: Webhook) -> None:
        request = await webhook
        try:
            rsvps.append(request.json()["rsvp"])
        except (ValueError, KeyError, TypeError):
            pass  # a malformed reply is ignored, not fatal

    # Not awaited: each task appends when its friend answers (keep the references:
    # asyncio holds tasks weakly).
    collectors = [asyncio.create_task(collect(webhook)) for webhook in webhooks]

    await sleep(birthday)  # until that moment (a naive datetime means UTC)
    for task in collectors:
        task.cancel()  # stop listening: late answers don't count
    await send_birthday_card(text, image, rsvps, email)
    return {"text": text, "image": image, "status": "Sent"}


def main() -> None:
    birthday = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=60)
    friends = ["grace@example.com", "linus@example.com"]
    run = birthday_workflow.start("may your code always compile", "ada@example.com",
                                  friends, birthday)
    print(f"run {run.id} started; the card goes out at {birthday:%H:%M:%S} UTC")
    for message in outbox.wait_for(run.id, len(friends)):
        print(f"RSVP for {message['to']}:\n  curl -X POST -H 'Content-Type: application/json' "
              f"-d '{{\"rsvp\": \"yes\"}}' {message['rsvp_url']}")
    print("result:", run.result(timeout=180))


if __name__ == "__main__":
    main()
