"""Collision detection over the agent WebSocket (tickets/consumers.py, tickets/viewers.py): the agents viewing a
conversation and who is typing reach only the sockets watching that conversation, which passed its access
check: never another tenant's agents, never an agent who cannot see the conversation. Viewers leave when
their socket closes or stops heartbeating."""

from __future__ import annotations

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from testing.accounts import login_cookie
from testing.factories import AgentProfileFactory
from tickets.models import AgentProfile
from tickets.services import claim_conversation
from tickets.tests.test_isolation import ws
from tickets.viewers import VIEWER_TTL_SECONDS


@pytest.fixture
def world(committed_app, handed_off, redis_client):
    """Committed: in alpha a waiting conversation (every agent sees it) and one alice owns (carol cannot see
    it); agents alice and carol, supervisor sam; bob in beta. The users the test adds are removed, and no
    viewers are left from an earlier test's conversation of the same id."""
    for key in redis_client.scan_iter("*:viewers:*"):
        redis_client.delete(key)
    users_before = {}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            users_before[schema] = set(get_user_model().objects.values_list("pk", flat=True))
    app = committed_app("alpha", agent_id=7272)
    with schema_context("alpha"):
        alice = AgentProfileFactory(user__username="alice", display_name="小王")
        AgentProfileFactory(user__username="carol", display_name="小李")
        AgentProfileFactory(user__username="sam", display_name="主管", role=AgentProfile.Role.SUPERVISOR)
        waiting = handed_off(app, "zhangsan")
        owned = handed_off(app, "lisi")
        claim_conversation(conversation_id=owned.pk, profile=alice)
    with schema_context("beta"):
        AgentProfileFactory(user__username="bob", display_name="小王")
    yield {"waiting": waiting, "owned": owned}
    for schema, before in users_before.items():
        with schema_context(schema):
            get_user_model().objects.exclude(pk__in=before).delete()


def names(event: dict) -> list[str]:
    assert event["type"] == "viewers", event
    return [viewer["name"] for viewer in event["viewers"]]


async def connected(schema: str, cookie: str):
    socket = ws(f"/t/{schema}/ws/agent/", cookie)
    assert (await socket.connect())[0]
    hello = await socket.receive_json_from()
    return socket, hello


async def watch(socket, conversation_id: int) -> dict:
    await socket.send_json_to({"type": "watch", "conversation": conversation_id})
    assert await socket.receive_json_from() == {"type": "watching", "conversation": conversation_id}
    return await socket.receive_json_from()


def test_viewers_and_typing_reach_only_those_watching_the_same_conversation(world):
    waiting, owned = world["waiting"].pk, world["owned"].pk
    cookies = {name: login_cookie("beta" if name == "bob" else "alpha", name)
               for name in ("alice", "sam", "carol", "bob")}

    @async_to_sync
    async def scenario():
        alice, alice_hello = await connected("alpha", cookies["alice"])
        sam, _ = await connected("alpha", cookies["sam"])
        carol, _ = await connected("alpha", cookies["carol"])
        bob, _ = await connected("beta", cookies["bob"])

        assert names(await watch(alice, waiting)) == ["小王"]
        assert names(await watch(sam, waiting)) == ["主管", "小王"]
        assert names(await alice.receive_json_from()) == ["主管", "小王"]

        await alice.send_json_to({"type": "typing"})
        typing = await sam.receive_json_from()
        assert typing == {"type": "typing", "conversation": waiting, "user": alice_hello["user"], "name": "小王"}
        await alice.send_json_to({"type": "typing"})  # within the throttle: not passed on again
        assert await sam.receive_nothing(timeout=0.3)
        assert await alice.receive_nothing(timeout=0.3)  # never echoed to the typist

        # Carol cannot see alice's own conversation: refused, and she learns nothing of who views it.
        await carol.send_json_to({"type": "watch", "conversation": owned})
        assert await carol.receive_json_from() == {"type": "error", "message": "conversation not found"}
        # Bob (beta) forging alpha's ids gets nothing either.
        await bob.send_json_to({"type": "watch", "conversation": waiting})
        assert (await bob.receive_json_from())["type"] == "error"

        # Alice moves to her own conversation: the waiting one's viewers are told she left.
        assert names(await watch(alice, owned)) == ["小王"]
        assert names(await sam.receive_json_from()) == ["主管"]
        await alice.send_json_to({"type": "typing"})
        assert await sam.receive_nothing(timeout=0.3)  # sam watches the other conversation
        assert await carol.receive_nothing(timeout=0.3)
        assert await bob.receive_nothing(timeout=0.3)

        assert names(await watch(sam, owned)) == ["主管", "小王"]
        assert names(await alice.receive_json_from()) == ["主管", "小王"]
        await alice.disconnect()  # the tab closes
        assert names(await sam.receive_json_from()) == ["主管"]
        for socket in (sam, carol, bob):
            await socket.disconnect()

    scenario()


def test_a_viewer_whose_socket_stops_heartbeating_ages_out(world, redis_client):
    waiting = world["waiting"].pk
    cookies = {name: login_cookie("alpha", name) for name in ("alice", "sam")}

    @async_to_sync
    async def scenario():
        alice, alice_hello = await connected("alpha", cookies["alice"])
        sam, _ = await connected("alpha", cookies["sam"])
        await watch(alice, waiting)
        await watch(sam, waiting)
        await alice.receive_json_from()
        # Alice's tab froze: her last heartbeat is older than the viewers' time to live.
        key = f"alpha:viewers:{waiting}"
        entry = json.loads(redis_client.hget(key, alice_hello["socket"]))
        redis_client.hset(key, alice_hello["socket"],
                          json.dumps({**entry, "at": time.time() - VIEWER_TTL_SECONDS - 1}))
        await sam.send_json_to({"type": "heartbeat"})  # the next heartbeat of anyone watching prunes her
        assert names(await sam.receive_json_from()) == ["主管"]
        await alice.disconnect()
        await sam.disconnect()

    scenario()


async def next_of(socket, kind: str) -> dict:
    """The socket's next event of this type (the queue's and the ticket's own events come too)."""
    while (event := await socket.receive_json_from(timeout=5))["type"] != kind:
        pass
    return event


def test_an_agent_who_loses_sight_of_the_conversation_leaves_its_viewers(world):
    waiting = world["waiting"].pk
    cookies = {name: login_cookie("alpha", name) for name in ("alice", "carol")}
    with schema_context("alpha"):
        alice_profile = AgentProfile.objects.get(user__username="alice")

    @database_sync_to_async
    def alice_claims():
        with schema_context("alpha"):
            claim_conversation(conversation_id=waiting, profile=alice_profile)

    @async_to_sync
    async def scenario():
        alice, _ = await connected("alpha", cookies["alice"])
        carol, _ = await connected("alpha", cookies["carol"])
        assert names(await watch(carol, waiting)) == ["小李"]
        assert names(await watch(alice, waiting)) == ["小李", "小王"]
        assert names(await carol.receive_json_from()) == ["小李", "小王"]

        await alice_claims()  # now alice's own: carol, an agent, may no longer see it
        assert (await next_of(carol, "state"))["state"] == "human"
        assert names(await next_of(alice, "viewers")) == ["小王"]
        await alice.send_json_to({"type": "typing"})
        assert await carol.receive_nothing(timeout=0.3)
        await alice.disconnect()
        await carol.disconnect()

    scenario()
