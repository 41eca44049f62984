"""What the AI path does with a picture, voice message, video or file: the tenant's non-text policy
(DeskSettings.non_text_policy) hands off or answers with the tenant's reply, with or without a model."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.models import Contact, Conversation, DeskSettings, InboundMessage, TraceEvent
from conversations.services.answering import answer_contact
from conversations.services.inbound import record_callback_message
from conversations.services.outbound import deliver_for_contact
from conversations.vocabulary import Stage
from testing.factories import AIProviderFactory, WeComAppFactory
from testing.vectors import CORP_ID
from tickets.models import Ticket

pytestmark = pytest.mark.django_db
USER = "lisi"
_msg_ids = itertools.count(7100000000000000001)


@pytest.fixture
def app(tenant_a, sandbox, redis_client):
    for key in redis_client.scan_iter("*:rate-notice:*"):
        redis_client.delete(key)
    connection.set_schema_to_public()
    with schema_context("alpha"):
        reset_breaker("alpha")
        yield WeComAppFactory()
        reset_breaker("alpha")


def customer_sends(app, msgtype: str) -> InboundMessage:
    Contact.objects.get_or_create(app=app, external_id=USER, open_kfid="")
    fields = {"ToUserName": CORP_ID, "FromUserName": USER, "CreateTime": "1700000000", "MsgType": msgtype,
              "MediaId": "media-of-the-customer", "MsgId": str(next(_msg_ids)), "AgentID": str(app.agent_id)}
    return record_callback_message(app=app, fields=fields).inbound


def answer_and_deliver(app, sandbox) -> list[str]:
    contact = Contact.objects.get(app=app, external_id=USER)
    assert answer_contact(contact) is None
    assert deliver_for_contact(contact.pk) is None
    return [text.rstrip("\u200b") for text in sandbox.received_texts(USER)]


def stages(inbound: InboundMessage) -> list[str]:
    return list(TraceEvent.objects.filter(trace_id=inbound.trace_id)
                .exclude(stage__in=[Stage.SENT, Stage.MEDIA_STORED, Stage.MEDIA_REFUSED])
                .values_list("stage", flat=True))


@pytest.mark.parametrize("msgtype", ["image", "voice", "video"])  # files come only through 微信客服
def test_handoff_policy_hands_a_non_text_message_to_humans(app, sandbox, msgtype):
    desk = DeskSettings.current()
    assert desk.non_text_policy == "handoff"  # the default
    inbound = customer_sends(app, msgtype)

    received = answer_and_deliver(app, sandbox)

    assert received[0].startswith(desk.handoff_message)
    assert Conversation.objects.get(contact__external_id=USER).state == Conversation.State.WAITING_HUMAN
    assert Ticket.objects.get().reason == Ticket.Reason.NON_TEXT
    assert stages(inbound) == ["received", "enqueued", "handoff", "processed"]
    handoff = TraceEvent.objects.get(trace_id=inbound.trace_id, stage=Stage.HANDOFF)
    assert handoff.detail["reason"] == "non_text"


def test_reply_policy_answers_with_the_tenants_reply_and_keeps_the_bot(app, sandbox):
    desk = DeskSettings.current()
    desk.non_text_policy = "reply"
    desk.non_text_reply = "已收到图片，我们会尽快查看。"
    desk.save()
    inbound = customer_sends(app, "image")

    assert answer_and_deliver(app, sandbox) == ["已收到图片，我们会尽快查看。"]
    assert Conversation.objects.get(contact__external_id=USER).state == Conversation.State.BOT
    assert not Ticket.objects.exists()
    assert stages(inbound) == ["received", "enqueued", "fallback", "processed"]


def test_with_a_model_the_policy_still_decides_and_the_model_is_not_asked(app, sandbox, fake_model):
    AIProviderFactory(base_url=sandbox.model_base_url, api_key="k-non-text", timeout_seconds=2)
    desk = DeskSettings.current()
    desk.non_text_policy = "reply"
    desk.save()
    customer_sends(app, "voice")

    assert answer_and_deliver(app, sandbox) == [desk.non_text_reply]
    assert fake_model.model_calls(api_key="k-non-text") == []
