"""Fixtures of the WeCom ingress tests: a connected app per tenant and the WeCom sandbox."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from conversations.models import WeComApp
from conversations.services.apps import create_wecom_app
from wecom_sandbox.callbacks import CallbackSender
from wecom_sandbox.client import SandboxClient, start_sandbox

# Tencent's official sample credentials (docs/WECOM_PROTOCOL.md, vector set A).
CORP_ID = "ww1436e0e65a779aee"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
AGENT_ID = 1000002
SECRET = "app-secret-alpha"
KF_SECRET = "kf-secret-alpha"  # a 微信客服 credential is not the app's secret
OPEN_KFID = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"


def make_app(schema: str, *, kind: str = "app", **overrides) -> WeComApp:
    fields = dict(name=f"{schema} {kind}", kind=kind, corp_id=CORP_ID, secret=SECRET, token=TOKEN,
                  encoding_aes_key=AES_KEY)
    if kind == "app":
        fields["agent_id"] = AGENT_ID
    else:
        fields["open_kfids"] = [OPEN_KFID]
        fields["secret"] = KF_SECRET
    fields.update(overrides)
    with schema_context(schema):
        return create_wecom_app(**fields)


@pytest.fixture
def app_alpha(tenant_a) -> WeComApp:
    """A self-built app of tenant alpha, inside the test transaction."""
    return make_app("alpha")


def callback_path(app: WeComApp, schema: str) -> str:
    return f"/t/{schema}/wecom/callback/{app.callback_id}/"


def sender_for(app: WeComApp, url: str, **kwargs) -> CallbackSender:
    return CallbackSender(url=url, token=TOKEN, encoding_aes_key=AES_KEY, receive_id=app.corp_id,
                          agent_id=app.agent_id, **kwargs)


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture(scope="session")
def sandbox_server():
    server, base_url = start_sandbox()
    yield base_url
    server.stop()


@pytest.fixture
def fake_model(sandbox_server):
    """The sandbox's OpenAI-compatible fake model, reset (no faults, no latency, no recorded calls)."""
    with SandboxClient(sandbox_server) as client:
        client.model_reset()
        yield client


@pytest.fixture
def clean_breakers(redis_client):
    """No AI circuit-breaker state left in Redis before or after the test, for either tenant."""
    def clean():
        for schema in ("alpha", "beta"):
            keys = list(redis_client.scan_iter(f"{schema}:ai:breaker:*"))
            if keys:
                redis_client.delete(*keys)

    clean()
    yield
    clean()


@pytest.fixture
def sandbox(sandbox_server, settings):
    """The WeCom sandbox, reset, with the apps' corp registered; WECOM_API_BASE points at it."""
    client = SandboxClient(sandbox_server)
    client.reset()
    client.create_corp(CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": SECRET}],
                       kf_accounts=[{"open_kfid": OPEN_KFID, "secret": KF_SECRET}])
    settings.WECOM_API_BASE = sandbox_server
    yield client
    client.close()
    connection.set_schema_to_public()


def purge_app(schema: str, app: WeComApp) -> None:
    """Delete a committed app and everything that hangs off it (for tests that commit)."""
    from conversations.models import Contact, Conversation, InboundMessage, Message, OutboundMessage, TraceEvent
    from tickets.models import Ticket

    with schema_context(schema):
        OutboundMessage.objects.filter(contact__app=app).delete()
        Ticket.objects.filter(conversation__contact__app=app).delete()
        Message.objects.filter(conversation__contact__app=app).delete()
        Conversation.objects.filter(contact__app=app).delete()
        Contact.objects.filter(app=app).delete()
        TraceEvent.objects.filter(inbound__app=app).delete()
        InboundMessage.objects.filter(app=app).delete()
        WeComApp.objects.filter(pk=app.pk).delete()
