"""Webhooks and hooks on the replay engine: tokens, inboxes, requests, responses, disposal."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re

import pytest

from celery_durable.engine.inboxes import create_hook, create_webhook
from celery_durable.engine.primitives import race, sleep
from celery_durable.errors import HookConflictError, NonDeterminismError

from .sim import START, Sim, step

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
BASE = "https://example.test/durable"


def token_bits(token: str) -> int:
    padded = token + "=" * (-len(token) % 4)
    return len(base64.urlsafe_b64decode(padded)) * 8


# -- creating webhooks: at once, stable tokens ------------------------------------------
async def hand_out_url():
    webhook = create_webhook()
    await step("send", webhook.url, webhook.token)
    request = await webhook
    return request.text


def test_create_webhook_emits_its_command_at_once_with_a_strong_url_safe_token(make_sim):
    sim = make_sim(hand_out_url, webhook_base_url=BASE + "/")
    created = sim.history[1]
    assert (created["type"], created["seq"]) == ("webhook_created", 1)
    assert created["method"] is None and created["respond_with"] is None
    token = created["token"]
    assert URL_SAFE.match(token) and token_bits(token) >= 128
    assert sim.steps[0]["seq"] == 2
    assert sim.steps[0]["args"] == [f"{BASE}/webhook/{token}", token]
    sim.receive(1, "hello")
    sim.complete("send")
    assert sim.outcome.value == "hello"
    sim.verify_replay()


def test_a_webhook_is_registered_before_any_await_even_if_never_awaited(make_sim):
    async def workflow():
        return create_webhook(method="post").token

    sim = make_sim(workflow)
    assert sim.outcome.value == sim.webhooks[0]["token"]
    assert sim.webhooks[0]["method"] == "POST"
    assert sim.live_tokens() == [("webhook", sim.outcome.value)]


def test_tokens_are_the_same_on_every_replay_and_differ_per_webhook_and_per_run():
    async def workflow():
        tokens = [create_webhook().token, create_webhook().token, create_hook().token]
        await step("send", tokens)
        return tokens

    def tokens_of(mode, secret, run_id="run-1"):
        sim = Sim(workflow, mode=mode, secret=secret, run_id=run_id)
        sim.start()
        sim.complete("send")
        sim.verify_replay()
        sim.close()
        assert [e["token"] for e in sim.created] == sim.outcome.value
        return sim.outcome.value

    first = tokens_of("fresh", "s3cret")
    assert len(set(first)) == 3
    assert tokens_of("cached", "s3cret") == first
    assert tokens_of("fresh", "s3cret", run_id="run-2") == first  # tokens follow the secret
    other = tokens_of("fresh", "other-secret")
    assert not set(other) & set(first)


# -- receiving: await, async for, race, gather, tasks -------------------------------------
@pytest.mark.parametrize("early", [True, False], ids=["before-await", "after-await"])
def test_await_webhook_gives_the_first_request(make_sim, early):
    sim = make_sim(hand_out_url)
    if early:  # requests arrive while the step is still running
        sim.receive(1, "one")
        sim.receive(1, "two")
        assert not sim.done
        sim.complete("send")
    else:
        sim.complete("send")
        assert not sim.done
        sim.receive(1, "one")
    assert sim.outcome.value == "one"
    sim.verify_replay()


def test_async_for_yields_each_request_in_history_order(make_sim):
    async def workflow():
        webhook = create_webhook()
        seen = []
        async for request in webhook:
            seen.append(request.text)
            if request.text == "stop":
                break
            await step("handle", request.text)
        again = await webhook  # awaiting still gives the first one
        return seen + [again.text]

    sim = make_sim(workflow)
    sim.receive(1, "a")
    sim.receive(1, "b")  # arrives while "handle a" runs
    assert sim.pending_steps == ["handle"]
    sim.complete("handle")
    sim.receive(1, "stop")
    sim.complete("handle")
    assert sim.outcome.value == ["a", "b", "stop", "a"]
    assert [e["args"] for e in sim.steps] == [["a"], ["b"]]
    sim.verify_replay()


def test_with_block_disposes_the_token_on_exit(make_sim):
    async def workflow():
        with create_webhook() as webhook:
            request = await webhook
        return await step("after", request.text)

    sim = make_sim(workflow)
    token = sim.webhooks[0]["token"]
    assert sim.live_tokens() == [("webhook", token)]
    new = sim.receive(1, "payload")
    assert [(e["type"], e["seq"], e.get("target")) for e in new] == [
        ("webhook_disposed", 2, 1), ("step_scheduled", 3, None)]
    assert sim.live_tokens() == []
    sim.complete("after", "done")
    assert sim.outcome.value == "done"
    sim.verify_replay()


def test_with_block_disposes_when_left_by_an_exception(make_sim):
    async def workflow():
        try:
            async with create_hook("approvals:1") as hook:
                await asyncio.wait_for(hook, timeout=60)
        except asyncio.TimeoutError:
            return await step("expired")

    sim = make_sim(workflow)
    assert sim.live_tokens() == [("hook", "approvals:1")]
    new = sim.fire()
    assert [e["type"] for e in new] == ["hook_disposed", "step_scheduled"]
    assert new[0]["target"] == 1
    assert sim.live_tokens() == []
    sim.complete("expired", "x")
    sim.verify_replay()


@pytest.mark.parametrize("winner", ["request", "timer"])
def test_race_a_webhook_against_a_sleep(make_sim, winner):
    async def workflow():
        with create_webhook() as webhook:
            result = await race(webhook, sleep("1 day"))
        return "timeout" if result is None else result.text

    sim = make_sim(workflow)
    assert sim.timers[0]["due"] == START + 86400
    if winner == "request":
        sim.advance(30)
        sim.receive(1, "approved")
        assert sim.outcome.value == "approved"
    else:
        sim.fire()
        assert sim.outcome.value == "timeout"
    assert sim.events_of("webhook_disposed")[0]["target"] == 1
    sim.verify_replay()


@pytest.mark.parametrize("request_first", [True, False])
def test_webhook_in_gather_with_a_step(make_sim, request_first):
    async def workflow():
        webhook = create_webhook()
        request, value = await asyncio.gather(webhook, step("work", webhook.url))
        return [request.text, value]

    sim = make_sim(workflow)
    if request_first:
        sim.receive(1, "req")
        assert not sim.done
        sim.complete("work", 7)
    else:
        sim.complete("work", 7)
        assert not sim.done
        sim.receive(1, "req")
    assert sim.outcome.value == ["req", 7]
    sim.verify_replay()


BIRTHDAY_GUESTS = ["ann", "bob", "cy"]


async def birthday(guests):
    webhooks = {guest: create_webhook() for guest in guests}
    await step("invite", {guest: webhook.url for guest, webhook in webhooks.items()})
    replies: dict[str, str] = {}

    async def collect(guest, webhook):
        request = await webhook
        replies[guest] = request.json()["answer"]
        await step("thank", guest)

    tasks = [asyncio.create_task(collect(g, w)) for g, w in webhooks.items()]
    await sleep("7 days")  # not blocked by any guest
    for task in tasks:
        task.cancel()
    return replies


def test_a_task_per_webhook_collects_replies_without_blocking(make_sim):
    sim = make_sim(birthday, args=[BIRTHDAY_GUESTS])
    assert [e["seq"] for e in sim.webhooks] == [1, 2, 3]
    sim.complete("invite")
    assert len(sim.timers) == 1
    sim.receive(2, json.dumps({"answer": "yes"}))
    assert sim.steps[-1]["args"] == ["bob"]
    sim.receive(1, json.dumps({"answer": "no"}))
    sim.complete(sim.steps[-1]["seq"])
    sim.fire()
    assert sim.outcome.value == {"bob": "yes", "ann": "no"}
    assert [e["args"] for e in sim.steps[1:]] == [["bob"], ["ann"]]
    sim.verify_replay()


# -- the request object -----------------------------------------------------------------
def test_webhook_request_fields(make_sim):
    async def workflow():
        r = await create_webhook()
        return {
            "id": r.id, "method": r.method, "path": r.path,
            "ctype": [r.headers["content-type"], r.headers.get("CONTENT-TYPE"),
                      "Content-type" in r.headers],
            "tags": [r.headers["x-tag"], r.headers.getlist("X-TAG")],
            "missing": [r.headers.get("x-nope"), r.headers.getlist("x-nope")],
            "args": [r.args["q"], r.args.getlist("q"), r.args.get("other")],
            "body": [type(r.body).__name__, r.body.decode(), r.text],
            "json": r.json(),
        }

    sim = make_sim(workflow)
    sim.receive(1, json.dumps({"n": [1, 2]}), method="PUT", path="/webhook/t",
                headers=[("Content-Type", "application/json"), ("X-Tag", "a"),
                         ("x-tag", "b")],
                args=[("q", "1"), ("q", "2")], request_id="r-77")
    assert sim.outcome.value == {
        "id": "r-77", "method": "PUT", "path": "/webhook/t",
        "ctype": ["application/json", "application/json", True],
        "tags": ["a", ["a", "b"]],
        "missing": [None, []],
        "args": ["1", ["1", "2"], None],
        "body": ["bytes", '{"n": [1, 2]}', '{"n": [1, 2]}'],
        "json": {"n": [1, 2]},
    }
    sim.verify_replay()


def test_binary_body_and_text_charset(make_sim):
    async def workflow():
        webhook = create_webhook()
        requests = []
        async for request in webhook:
            requests.append(request)
            if len(requests) == 2:
                break
        return [list(requests[0].body), requests[1].text]

    sim = make_sim(workflow)
    sim.receive(1, b"\x00\xff\x10")
    sim.receive(1, "café".encode("latin-1"),
                headers=[("Content-Type", "text/plain; charset=latin-1")])
    assert sim.outcome.value == [[0, 255, 16], "café"]
    sim.verify_replay()


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b""], ids=repr)
def test_bad_json_raises_value_error_inside_the_workflow(make_sim, body):
    async def workflow():
        request = await create_webhook()
        try:
            return request.json()
        except ValueError as exc:
            return await step("reject", type(exc).__name__, str(exc))

    sim = make_sim(workflow)
    sim.receive(1, body, request_id="bad-1")
    assert sim.steps[0]["args"][0] in ("ValueError", "JSONDecodeError", "UnicodeDecodeError")
    assert "bad-1" in sim.steps[0]["args"][1]
    sim.complete("reject", "rejected")
    assert sim.outcome.value == "rejected"
    sim.verify_replay()


def test_text_survives_an_unknown_charset(make_sim):
    async def workflow():
        return (await create_webhook()).text

    sim = make_sim(workflow)
    sim.receive(1, b"hi", headers=[("Content-Type", "text/plain; charset=bogus")])
    assert sim.outcome.value == "hi"


@pytest.mark.parametrize("charset", ["punycode", "idna", "utf-16"])
def test_text_survives_a_charset_whose_codec_refuses_the_body(make_sim, charset):
    async def workflow():
        return (await create_webhook()).text

    sim = make_sim(workflow)
    sim.receive(1, b"\xff\xfehi\x80", headers=[("Content-Type", f"text/plain; charset={charset}")])
    assert sim.outcome.status == "completed" and isinstance(sim.outcome.value, str)


def test_text_charset_parameter_is_case_insensitive(make_sim):
    async def workflow():
        return (await create_webhook()).text

    sim = make_sim(workflow)
    sim.receive(1, "café".encode("latin-1"),
                headers=[("Content-Type", "text/plain; Charset=latin-1")])
    assert sim.outcome.value == "café"


# -- responding -------------------------------------------------------------------------
@pytest.mark.parametrize("body, headers, expected", [
    ("ok", None, {"body": "ok", "headers": {}, "base64": False}),
    ({"ok": True}, {"X-A": 1},
     {"body": '{"ok": true}', "headers": {"X-A": "1", "Content-Type": "application/json"},
      "base64": False}),
    (b"\x00\x01", {}, {"body": "AAE=", "base64": True,
                       "headers": {"Content-Type": "application/octet-stream"}}),
], ids=["text", "json", "bytes"])
def test_manual_respond_emits_a_respond_command(make_sim, body, headers, expected):
    async def workflow():
        webhook = create_webhook(respond_with="manual")
        request = await webhook
        await request.respond(201, body, headers)
        return await step("after")

    sim = make_sim(workflow)
    assert sim.webhooks[0]["respond_with"] == "manual"
    new = sim.receive(1, request_id="r-9")
    assert [e["type"] for e in new] == ["webhook_responded", "step_scheduled"]
    responded = new[0]
    assert responded["seq"] == 2 and responded["request_id"] == "r-9"
    assert responded["status"] == 201
    assert {k: responded[k] for k in ("body", "headers", "base64")} == expected
    sim.complete("after")
    sim.verify_replay()


@pytest.mark.parametrize("respond_with", [None, (200, "ok")], ids=["default", "static"])
def test_respond_without_manual_raises_runtime_error(make_sim, respond_with):
    async def workflow():
        request = await create_webhook(respond_with=respond_with)
        await request.respond(200, "late")

    sim = make_sim(workflow)
    sim.receive(1)
    assert isinstance(sim.outcome.error, RuntimeError)
    assert "manual" in str(sim.outcome.error)
    assert sim.events_of("webhook_responded") == []


def test_respond_with_a_bad_status_raises_value_error(make_sim):
    async def workflow():
        request = await create_webhook(respond_with="manual")
        await request.respond(42)

    sim = make_sim(workflow)
    sim.receive(1)
    assert isinstance(sim.outcome.error, ValueError)
    assert sim.events_of("webhook_responded") == []


def test_static_respond_with_is_recorded_normalised(make_sim):
    async def workflow():
        create_webhook(respond_with=(200, {"received": True}))
        create_webhook(respond_with=[204])

    sim = make_sim(workflow)
    assert [e["respond_with"] for e in sim.webhooks] == [
        {"status": 200, "body": '{"received": true}',
         "headers": {"Content-Type": "application/json"}},
        {"status": 204, "body": "", "headers": {}},
    ]
    sim.verify_replay()


@pytest.mark.parametrize("spec", ["auto", 200, (200, "x", {}, "extra"), ()], ids=repr)
def test_bad_respond_with_raises_value_error_before_registering(make_sim, spec):
    async def workflow():
        create_webhook(respond_with=spec)

    sim = make_sim(workflow)
    assert isinstance(sim.outcome.error, ValueError)
    assert "respond_with" in str(sim.outcome.error)
    assert sim.webhooks == []


# -- hooks ------------------------------------------------------------------------------
def test_hook_with_a_chosen_token_gets_payloads_in_order(make_sim):
    async def workflow():
        hook = create_hook("slack:C1")
        first = await hook
        seen = []
        async for payload in hook:
            seen.append(payload)
            if len(seen) == 3:
                break
        return [hook.token, first, seen]

    sim = make_sim(workflow)
    assert [(e["type"], e["seq"], e["token"]) for e in sim.created] == [
        ("hook_created", 1, "slack:C1")]
    assert sim.live_tokens() == [("hook", "slack:C1")]
    for payload in ({"text": "hi"}, [1, 2], None):
        sim.resume(1, payload)
    assert sim.outcome.value == ["slack:C1", {"text": "hi"}, [{"text": "hi"}, [1, 2], None]]
    sim.verify_replay()


def test_hook_without_a_token_derives_one(make_sim):
    async def workflow():
        hook = create_hook()
        webhook = create_webhook()
        return [hook.token, webhook.token]

    sim = make_sim(workflow, secret="abc")
    hook_token, webhook_token = sim.outcome.value
    assert URL_SAFE.match(hook_token) and token_bits(hook_token) >= 128
    assert hook_token != webhook_token
    assert sim.hooks[0]["token"] == hook_token
    sim.verify_replay()


@pytest.mark.parametrize("token", ["", 7, "x" * 257], ids=["empty", "int", "long"])
def test_hook_token_must_be_a_short_string(make_sim, token):
    async def workflow():
        create_hook(token)

    sim = make_sim(workflow)
    assert isinstance(sim.outcome.error, ValueError)
    assert sim.created == []


@pytest.mark.parametrize("how", ["await", "async-for"])
def test_hook_conflict_raises_hook_conflict_error(make_sim, how):
    async def workflow():
        hook = create_hook("order:42")
        try:
            if how == "await":
                await hook
            else:
                async for _ in hook:
                    pass
        except HookConflictError as exc:
            return await step("conflict", str(exc))

    sim = make_sim(workflow)
    sim.conflict(1, holder="run-7")
    message = sim.steps[0]["args"][0]
    assert "order:42" in message and "run-7" in message
    sim.complete("conflict", "handled")
    assert sim.outcome.value == "handled"
    sim.verify_replay()


def test_hook_conflict_uncaught_fails_the_run(make_sim):
    async def workflow():
        return await create_hook("order:42")

    sim = make_sim(workflow)
    sim.conflict(1)
    assert isinstance(sim.outcome.error, HookConflictError)
    sim.verify_replay()


async def one_of_each():
    hook = create_hook("h")
    webhook = create_webhook()
    await step("s")
    return [await webhook, await hook]


@pytest.mark.parametrize("event", [
    {"type": "webhook_received", "seq": 3, "request": {}},      # a step
    {"type": "webhook_received", "seq": 9, "request": {}},      # nothing (yet)
    {"type": "hook_received", "seq": 3, "payload": 1},          # a step
], ids=["webhook-to-step", "webhook-to-unknown", "hook-to-step"])
def test_delivery_to_a_seq_that_is_no_webhook_is_non_determinism(event):
    sim = Sim(one_of_each)
    sim.start()
    with pytest.raises(NonDeterminismError) as info:
        sim.record(event, drive=True)
    assert info.value.position == event["seq"]
    sim.close()


@pytest.mark.parametrize("event", [
    {"type": "webhook_received", "seq": 1, "request": {"id": "r"}},   # a hook
    {"type": "hook_received", "seq": 2, "payload": "p"},              # a webhook
], ids=["webhook-to-hook", "hook-to-webhook"])
def test_delivery_of_the_wrong_kind_is_non_determinism(event):
    sim = Sim(one_of_each)
    sim.start()
    try:
        with pytest.raises(NonDeterminismError):
            sim.record(event, drive=True)
    finally:
        sim.close()


# -- determinism ------------------------------------------------------------------------
async def requests_and_a_step():
    webhook = create_webhook()
    seen: list[str] = []

    async def listen():
        async for request in webhook:
            seen.append(request.text)
            if len(seen) == 2:
                return

    listener = asyncio.create_task(listen())
    work = await step("work")
    await step("report", work, list(seen))
    await listener
    return await step("done", seen)


@pytest.mark.parametrize("order", ["".join(p) for p in itertools.permutations("xyw")])
def test_every_interleaving_of_requests_and_a_step_replays_identically(make_sim, order):
    sim = make_sim(requests_and_a_step)
    for event in order:
        sim.advance(1)
        if event == "w":
            sim.complete("work", "W")
        else:
            sim.receive(1, event)
    arrived = [e for e in order if e != "w"]
    before = arrived[:order.index("w")]
    report = next(e for e in sim.steps if e["name"] == "report")
    assert report["args"] == ["W", before]
    sim.complete("report")
    sim.complete("done", "ok")
    assert sim.steps[-1]["args"] == [arrived]
    assert sim.outcome.value == "ok"
    sim.verify_replay()


@pytest.mark.parametrize("headers", [{"X-A": "a\r\nSet-Cookie: x"}, {"X-B": "日本"},
                                     {"bad name": "v"}], ids=["crlf", "non-latin-1", "name"])
def test_bad_response_headers_are_refused_in_the_workflow(make_sim, headers):
    async def workflow():
        try:
            create_webhook(respond_with=(200, "ok", headers))
        except ValueError as exc:
            return str(exc)
        return "accepted"

    sim = make_sim(workflow)
    assert "header" in sim.outcome.value
