"""WebSocket entry point: tenant resolution, authentication per schema, groups per tenant."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.db import transaction
from django_tenants.utils import schema_context

from config.asgi import application
from conftest import login_cookie
from conversations.realtime import publish_staff_event_on_commit, staff_group


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
    yield {"alpha": login_cookie("alpha", tenant_a.staff_email),
           "beta": login_cookie("beta", tenant_b.staff_email)}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            Session.objects.all().delete()


@pytest.mark.parametrize(("host", "path"), [("nosuch.test", "/ws/events/"), ("localhost", "/t/nosuch/ws/events/"),
                                            ("localhost", "/t/public/ws/events/")])
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
        anonymous = communicator("/t/alpha/ws/events/")
        assert await connect(anonymous) == (False, 4403)
        # alpha's session cookie means nothing in beta's schema.
        foreign = communicator("/t/beta/ws/events/", cookie=cookies["alpha"])
        assert await connect(foreign) == (False, 4403)
        by_host = communicator("/ws/events/", host="beta.test", cookie=cookies["alpha"])
        assert await connect(by_host) == (False, 4403)

    scenario()


def test_staff_join_their_tenant_group_and_receive_only_its_events(cookies):
    @async_to_sync
    async def scenario():
        alpha = communicator("/ws/events/", host="alpha.test", cookie=cookies["alpha"])
        beta = communicator("/t/beta/ws/events/", cookie=cookies["beta"])
        assert (await connect(alpha))[0] and (await connect(beta))[0]
        assert await alpha.receive_json_from() == {"type": "hello", "tenant": "alpha"}
        assert await beta.receive_json_from() == {"type": "hello", "tenant": "beta"}

        await publish_in("alpha", {"kind": "new_message", "text": "for alpha only"})

        assert await alpha.receive_json_from(timeout=5) == {
            "type": "event", "event": {"kind": "new_message", "text": "for alpha only"}}
        assert await beta.receive_nothing(timeout=0.5)
        await alpha.send_json_to({"type": "ping"})
        assert await alpha.receive_json_from() == {"type": "pong"}
        await alpha.disconnect()
        await beta.disconnect()

    scenario()


def test_group_names_carry_the_schema():
    assert staff_group("alpha") == "alpha.staff"
    assert staff_group("alpha") != staff_group("beta")
    with pytest.raises(ValueError):
        staff_group("bad schema")


async def publish_in(schema: str, event: dict) -> None:
    from channels.db import database_sync_to_async

    @database_sync_to_async
    def publish():
        with schema_context(schema), transaction.atomic():
            publish_staff_event_on_commit(event=event)

    await publish()
