"""WebSocket entry point: tenant resolution, authentication per schema, groups per tenant."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import transaction
from django_tenants.utils import schema_context

from config.asgi import application
from conversations.realtime import conversation_group
from testing.accounts import login_cookie
from testing.factories import AgentProfileFactory
from tickets.models import AgentProfile
from tickets.realtime import queue_changed, queue_group


def communicator(path: str, *, host: str = "localhost", cookie: str | None = None) -> WebsocketCommunicator:
    headers = [(b"host", host.encode()), (b"origin", f"http://{host}".encode())]
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def connect(comm: WebsocketCommunicator):
    connected, detail = await comm.connect(timeout=5)
    return connected, detail


@pytest.fixture
def cookies(committed_db, tenant_a, tenant_b):
    """Signed-in agents of alpha and beta (the tenants' staff users, each with an agent profile)."""
    for world in (tenant_a, tenant_b):
        with schema_context(world.slug):
            user = get_user_model().objects.get(email=world.staff_email)
            AgentProfileFactory(user=user, display_name=world.slug)
    yield {"alpha": login_cookie("alpha", tenant_a.staff_email),
           "beta": login_cookie("beta", tenant_b.staff_email)}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            Session.objects.all().delete()
            AgentProfile.objects.all().delete()


@pytest.mark.parametrize(("host", "path"), [("nosuch.test", "/ws/agent/"), ("localhost", "/t/nosuch/ws/agent/"),
                                            ("localhost", "/t/public/ws/agent/")])
def test_unknown_tenant_is_refused(committed_db, host, path):
    @async_to_sync
    async def scenario():
        comm = communicator(path, host=host)
        connected, code = await connect(comm)
        assert (connected, code) == (False, 4404)

    scenario()


def test_anonymous_and_foreign_sessions_are_refused(cookies):
    @async_to_sync
    async def scenario():
        anonymous = communicator("/t/alpha/ws/agent/")
        assert await connect(anonymous) == (False, 4403)
        # alpha's session cookie means nothing in beta's schema.
        foreign = communicator("/t/beta/ws/agent/", cookie=cookies["alpha"])
        assert await connect(foreign) == (False, 4403)
        by_host = communicator("/ws/agent/", host="beta.test", cookie=cookies["alpha"])
        assert await connect(by_host) == (False, 4403)

    scenario()


def test_agents_join_their_tenant_groups_and_receive_only_its_events(cookies):
    @async_to_sync
    async def scenario():
        alpha = communicator("/ws/agent/", host="alpha.test", cookie=cookies["alpha"])
        beta = communicator("/t/beta/ws/agent/", cookie=cookies["beta"])
        assert (await connect(alpha))[0] and (await connect(beta))[0]
        assert (await alpha.receive_json_from())["agent"] == "alpha"
        assert (await beta.receive_json_from())["agent"] == "beta"

        await publish_in("alpha", change="waiting", conversation=7)

        assert await alpha.receive_json_from(timeout=5) == {"type": "queue", "change": "waiting", "conversation": 7}
        assert await beta.receive_nothing(timeout=0.5)
        await alpha.disconnect()
        await beta.disconnect()

    scenario()


def test_group_names_carry_the_schema():
    assert queue_group("alpha") == "alpha.queue"
    assert conversation_group("alpha", 7) == "alpha.conversation.7"
    assert conversation_group("alpha", 7) != conversation_group("beta", 7)
    with pytest.raises(ValueError):
        queue_group("bad schema")


async def publish_in(schema: str, **detail) -> None:
    @database_sync_to_async
    def publish():
        with schema_context(schema), transaction.atomic():
            queue_changed(**detail)

    await publish()
