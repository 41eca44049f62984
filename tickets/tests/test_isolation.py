"""The agent screens as a security boundary: HTTP and WebSocket, two tenants, forged ids, a claim race."""

from __future__ import annotations

import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import translation
from django_tenants.utils import schema_context

from config.asgi import application
from conversations.models import Conversation
from conversations.services.conversations import record_message
from testing.accounts import login_cookie
from testing.factories import AgentProfileFactory, UserFactory
from testing.threads import run_in_threads
from tickets import presence
from tickets.models import Ticket
from tickets.services import ActionRefused, claim_conversation


@pytest.fixture
def world(committed_app, handed_off):
    """Committed: an agent per tenant, a waiting conversation in alpha; the users the test adds are removed."""
    users_before = {}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            users_before[schema] = set(get_user_model().objects.values_list("pk", flat=True))
    app = committed_app("alpha", agent_id=7171)
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice")
        conversation = handed_off(app)
    with schema_context("beta"):
        bob = AgentProfileFactory(user__username="bob")
    yield {"app": app, "alice": alice, "bob": bob, "conversation": conversation}
    for schema, before in users_before.items():
        with schema_context(schema):
            get_user_model().objects.exclude(pk__in=before).delete()


def client_for(schema: str, username: str) -> Client:
    """A fresh client carrying the user's session cookie (the test client's cookie jar ignores paths)."""
    client = Client()
    client.cookies["sessionid"] = login_cookie(schema, username)
    return client


def test_http_forged_ids_and_foreign_sessions_see_nothing(world):
    conversation = world["conversation"]
    alice = client_for("alpha", "alice")
    assert alice.get(f"/t/alpha/agent/api/conversations/{conversation.pk}/").status_code == 200
    assert alice.get("/t/alpha/agent/api/queue/").json()["waiting"][0]["id"] == conversation.pk

    # Bob's session means nothing in alpha; his own tenant has no such conversation.
    assert client_for("beta", "bob").get(f"/t/alpha/agent/api/conversations/{conversation.pk}/").status_code == 403
    assert client_for("beta", "bob").get("/t/alpha/agent/").status_code == 302  # to alpha's agent login
    bob = client_for("beta", "bob")
    assert bob.get(f"/t/beta/agent/api/conversations/{conversation.pk}/").status_code == 404
    assert bob.post(f"/t/beta/agent/api/conversations/{conversation.pk}/claim/").status_code == 404
    assert bob.get("/t/beta/agent/api/queue/").json()["waiting"] == []
    with schema_context("alpha"):
        assert Conversation.objects.get(pk=conversation.pk).state == Conversation.State.WAITING_HUMAN


def test_an_agent_cannot_open_a_colleagues_conversation(world):
    conversation = world["conversation"]
    with schema_context("alpha"):
        AgentProfileFactory(user__username="carol")
        claim_conversation(conversation_id=conversation.pk, profile=world["alice"])
    carol_client = client_for("alpha", "carol")
    assert carol_client.get(f"/t/alpha/agent/api/conversations/{conversation.pk}/").status_code == 404
    assert carol_client.post(f"/t/alpha/agent/api/conversations/{conversation.pk}/reply/", {"text": "x"},
                             content_type="application/json").status_code == 404
    late = carol_client.post(f"/t/alpha/agent/api/conversations/{conversation.pk}/claim/")
    assert late.status_code == 409 and late.json() == {"detail": "已被 alice 接走。"}  # zh-hans by default
    late_en = carol_client.post(f"/t/alpha/agent/api/conversations/{conversation.pk}/claim/",
                                HTTP_ACCEPT_LANGUAGE="en")
    assert late_en.json() == {"detail": "Already taken by alice."}


def test_two_agents_claiming_at_the_same_moment_one_wins(world):
    conversation = world["conversation"]
    with schema_context("alpha"):
        dave = AgentProfileFactory(user__username="dave")
    start = threading.Barrier(2)

    def claim(profile) -> tuple[str, str]:
        with schema_context("alpha"), translation.override("en"):
            start.wait(timeout=10)
            try:
                claim_conversation(conversation_id=conversation.pk, profile=profile)
            except ActionRefused as exc:
                return profile.name, str(exc)
            return profile.name, "won"

    outcomes = dict(run_in_threads(lambda: claim(world["alice"]), lambda: claim(dave), timeout=20))
    assert sorted(outcomes.values())[-1] == "won" and list(outcomes.values()).count("won") == 1
    loser = next(name for name, outcome in outcomes.items() if outcome != "won")
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    assert outcomes[loser] == f"Already taken by {winner}."
    with schema_context("alpha"):
        assert Ticket.objects.get(conversation=conversation).assignee.username == winner


def ws(path: str, cookie: str | None, host: str = "localhost") -> WebsocketCommunicator:
    headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


def test_websocket_agents_only_their_tenant_no_forged_watch_no_echo(world):
    conversation = world["conversation"]
    alice_cookie = login_cookie("alpha", "alice")
    bob_cookie = login_cookie("beta", "bob")
    with schema_context("alpha"):
        UserFactory(username="plainstaff")  # staff, but no agent profile
    plain_cookie = login_cookie("alpha", "plainstaff")

    @async_to_sync
    async def scenario():
        assert (await ws("/t/alpha/ws/agent/", plain_cookie).connect())[0] is False  # staff, not an agent
        assert (await ws("/t/alpha/ws/agent/", bob_cookie).connect())[0] is False  # beta's session in alpha
        alice = ws("/t/alpha/ws/agent/", alice_cookie)
        bob = ws("/t/beta/ws/agent/", bob_cookie)
        assert (await alice.connect())[0] and (await bob.connect())[0]
        hello = await alice.receive_json_from()
        assert hello["type"] == "hello" and hello["agent"] == "alice"
        await bob.receive_json_from()

        await bob.send_json_to({"type": "watch", "conversation": conversation.pk})  # a forged id
        assert await bob.receive_json_from() == {"type": "error", "message": "conversation not found"}
        await alice.send_json_to({"type": "watch", "conversation": conversation.pk})
        assert await alice.receive_json_from() == {"type": "watching", "conversation": conversation.pk}
        viewing = await alice.receive_json_from()  # who views it (collision detection: test_collision.py)
        assert viewing["type"] == "viewers" and [v["name"] for v in viewing["viewers"]] == ["alice"]

        await _customer_writes(conversation.pk, "还在吗？", origin="")
        event = await alice.receive_json_from(timeout=5)
        assert event["type"] == "message" and event["message"]["text"] == "还在吗？"
        assert await bob.receive_nothing(timeout=0.5)

        await _customer_writes(conversation.pk, "echo test", origin=hello["socket"])
        assert await alice.receive_nothing(timeout=0.5)  # its own action is not echoed back
        await alice.disconnect()
        await bob.disconnect()

    scenario()
    assert presence.status(schema="alpha", user_id=world["alice"].user_id) == "offline"


async def _customer_writes(conversation_id: int, text: str, *, origin: str) -> None:
    @database_sync_to_async
    def write():
        with schema_context("alpha"), transaction.atomic():
            conversation = Conversation.objects.get(pk=conversation_id)
            record_message(conversation=conversation, author="customer", text=text, origin=origin)

    await write()


def test_presence_follows_heartbeats(world, redis_client):
    agent = world["alice"]
    presence.touch(schema="alpha", user_id=agent.user_id, socket="tab1")
    assert presence.status(schema="alpha", user_id=agent.user_id) == "online"
    presence.set_away(schema="alpha", user_id=agent.user_id, away=True)
    assert presence.status(schema="alpha", user_id=agent.user_id) == "away"
    presence.set_away(schema="alpha", user_id=agent.user_id, away=False)
    redis_client.hset(f"alpha:presence:{agent.user_id}", "tab1", time.time() - 61)  # a tab closed silently
    assert presence.status(schema="alpha", user_id=agent.user_id) == "offline"
    assert presence.status(schema="beta", user_id=agent.user_id) == "offline"
