"""The factories make valid rows in the schema the connection is in, and refuse the public schema."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from conversations import encryption
from conversations.models import Conversation, Message, TraceEvent, WeComApp
from testing.factories import (
    APP_SECRET,
    KF_SECRET,
    AgentProfileFactory,
    ContactFactory,
    InboundMessageFactory,
    KnowledgeEntryFactory,
    MessageFactory,
    OutboundMessageFactory,
    TicketFactory,
    TraceEventFactory,
    WeComAppFactory,
)
from testing.vectors import AES_KEY, AGENT_ID, CORP_ID, OPEN_KFID
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def test_wecom_apps_of_both_kinds_go_through_the_service_with_encrypted_secrets(tenant_a):
    with schema_context("alpha"):
        app, kf = WeComAppFactory(), WeComAppFactory(kind="kf")
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM conversations_wecomapp WHERE id = %s", [app.pk])
            (stored_secret,) = cursor.fetchone()
        fetched = WeComApp.objects.get(pk=app.pk)
    assert (app.kind, app.corp_id, app.agent_id, app.open_kfids) == ("app", CORP_ID, AGENT_ID, [])
    assert (kf.kind, kf.agent_id, kf.open_kfids, kf.secret) == ("kf", None, [OPEN_KFID], KF_SECRET)
    assert (fetched.secret, fetched.encoding_aes_key) == (APP_SECRET, AES_KEY)
    assert APP_SECRET not in stored_secret and encryption.decrypt(stored_secret) == APP_SECRET


def test_rows_without_an_app_share_the_schemas_default_app(tenant_a):
    with schema_context("alpha"):
        rows = [ContactFactory(), ContactFactory(), InboundMessageFactory(), OutboundMessageFactory()]
        assert WeComApp.objects.count() == 1
    assert {getattr(row, "app_id", None) or row.contact.app_id for row in rows} == {rows[0].app_id}


def test_a_kf_contact_belongs_to_one_of_its_apps_accounts(tenant_a):
    with schema_context("alpha"):
        contact = ContactFactory(app=WeComAppFactory(kind="kf"))
    assert contact.open_kfid == OPEN_KFID


def test_the_rest_of_the_family_links_up(tenant_a):
    with schema_context("alpha"):
        message = MessageFactory(text="你好")
        trace = TraceEventFactory(stage="received")
        ticket = TicketFactory()
        agent = AgentProfileFactory(user__username="alice")
        entry = KnowledgeEntryFactory(question="怎么开发票？")
        assert Message.objects.get(pk=message.pk).conversation.contact.app_id
        assert TraceEvent.objects.get(pk=trace.pk).trace_id == trace.inbound.trace_id
        assert ticket.conversation.state == Conversation.State.WAITING_HUMAN
        assert Ticket.objects.get(pk=ticket.pk).reason == Ticket.Reason.CUSTOMER_ASKED
    assert (agent.user.username, agent.display_name, agent.user.is_staff) == ("alice", "alice", True)
    assert entry.question_terms  # indexed by the service


def test_the_schemas_are_kept_apart(tenant_a, tenant_b):
    with schema_context("alpha"):
        WeComAppFactory()
    with schema_context("beta"):
        assert not WeComApp.objects.exists()


@pytest.mark.parametrize("factory", [WeComAppFactory, ContactFactory, OutboundMessageFactory, KnowledgeEntryFactory])
def test_the_public_schema_is_refused_with_a_message(tenants_world, factory):
    connection.set_schema_to_public()
    with pytest.raises(RuntimeError, match="schema_context"):
        factory()
