"""The trace of a message, callback to delivery: what the rounds and the ledger write (services/tracing.py),
the one reading of it (selectors.message_trace), the admin's timeline and GET /api/messages/{id}/trace/.

Messages arrive as signed callbacks through the callback view, are answered in-process against the
sandbox's fake model and delivered to the WeCom sandbox, so every stage is the one production writes.
"""

from __future__ import annotations

import importlib
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.models import Contact, InboundMessage, Message, OutboundMessage, TraceEvent
from conversations.selectors import message_trace
from conversations.services.answering import answer_pending
from conversations.services.outbound import deliver_for_contact, queue_outbound, resend_dead_letters
from conversations.services.tracing import save_trace_events, trace_event
from conversations.templatetags.trace_timeline import duration_ms
from conversations.vocabulary import Stage
from testing.accounts import api_client, staff_client
from testing.factories import (
    AIProviderFactory,
    ContactFactory,
    FallbackScriptFactory,
    InboundMessageFactory,
    KnowledgeEntryFactory,
    OutboundMessageFactory,
    TraceEventFactory,
    WeComAppFactory,
)
from testing.vectors import CORP_ID
from testing.wecom import callback_path, relative, sender_for
from wecom_sandbox.callbacks import text_message

pytestmark = pytest.mark.django_db
USER = "zhangsan"
ANSWER = "根据资料：在订单详情页申请电子发票。"  # the fake model answering from the knowledge entry
MODEL_LATENCY = 0.3  # seconds the fake model takes: the llm_call stage must show at least this
Status = OutboundMessage.Status


@pytest.fixture
def world(tenant_a, tenant_b, sandbox, redis_client):
    """Alpha's app with one knowledge entry and the fake model as its AI provider."""
    for key in redis_client.scan_iter("LIMITS*"):
        redis_client.delete(key)
    connection.set_schema_to_public()
    with schema_context("alpha"):
        reset_breaker("alpha")
        app = WeComAppFactory()
        KnowledgeEntryFactory(question="怎么开发票？", answer="在订单详情页申请电子发票。", tags=["发票"])
        FallbackScriptFactory(name="默认", text="抱歉，请稍后再试。", is_default=True)
        AIProviderFactory(base_url=sandbox.model_base_url, api_key="k-alpha", timeout_seconds=5)
    yield app
    with schema_context("alpha"):
        reset_breaker("alpha")


def callback(app, text: str) -> InboundMessage:
    """WeCom's callback for a member's text, delivered twice (a redelivery) through the callback view."""
    sender = sender_for(app, "http://testserver" + callback_path(app, "alpha"))
    prepared = sender.prepare(text_message(corp_id=CORP_ID, agent_id=app.agent_id, from_user=USER, content=text))
    for _ in range(2):
        response = Client().post(relative(prepared.url), data=prepared.body, content_type="text/xml")
        assert (response.status_code, response.content) == (200, b"")
    with schema_context("alpha"):
        return InboundMessage.objects.get(sender=USER, content=text)


def answer() -> Contact:
    """Answer everything pending (the worker's job, in-process); the ledger rows are left to `deliver`."""
    with schema_context("alpha"):
        assert answer_pending(deliver=False) is None
        return Contact.objects.get(external_id=USER)


def deliver(contact: Contact) -> float | None:
    with schema_context("alpha"):
        return deliver_for_contact(contact.pk)


def make_retry_due() -> None:
    with schema_context("alpha"):
        OutboundMessage.objects.filter(status=Status.RETRYING).update(next_attempt_at=timezone.now())


def stages(body: dict) -> list[str]:
    return [event["stage"] for event in body["events"]]


# -- what the services write ------------------------------------------------------------------------------


def test_every_stage_of_an_answered_message_is_linked_to_it_and_timed_when_it_happened(world, sandbox):
    sandbox.model_configure(latency=MODEL_LATENCY)
    inbound = callback(world, "怎么开发票")
    deliver(answer())
    assert [text.rstrip("\u200b") for text in sandbox.received_texts(USER)] == [ANSWER]

    with schema_context("alpha"):
        (row,) = OutboundMessage.objects.all()
        assert (row.inbound_id, row.trace_id) == (inbound.pk, inbound.trace_id)
        events = list(TraceEvent.objects.filter(trace_id=inbound.trace_id).order_by("id"))
        assert {event.inbound_id for event in events} == {inbound.pk}  # the delivery's `sent` too
        trace = message_trace(inbound)

    assert [step.stage for step in trace.steps] == ["received", "enqueued", "duplicate", "retrieved", "llm_call",
                                                    "queued", "processed", "sent"]
    by_stage = {step.stage: step for step in trace.steps}
    # The round saves its events together at its end; each still carries the moment it happened.
    assert by_stage["llm_call"].since_previous.total_seconds() >= MODEL_LATENCY
    assert by_stage["llm_call"].detail["ms"] >= MODEL_LATENCY * 1000
    assert by_stage["sent"].outbound_id == by_stage["queued"].outbound_id == row.pk
    assert trace.steps[0].since_previous is None
    assert all(later.at >= earlier.at for earlier, later in zip(trace.steps, trace.steps[1:], strict=False))
    assert all(step.since_received == step.at - inbound.received_at for step in trace.steps)
    assert trace.total == trace.steps[-1].since_received >= by_stage["llm_call"].since_received
    assert trace.deliveries == [row]


def test_a_handoff_message_is_delivered_in_the_trace_of_the_message_that_asked(world, sandbox):
    inbound = callback(world, "转人工")
    deliver(answer())
    with schema_context("alpha"):
        (row,) = OutboundMessage.objects.all()
        assert (row.author, row.inbound_id) == (Message.Author.HANDOFF, inbound.pk)
        trace = message_trace(inbound)
    assert [step.stage for step in trace.steps] == ["received", "enqueued", "duplicate", "queued", "handoff",
                                                    "processed", "sent"]
    assert trace.steps[-1].outbound_id == row.pk and trace.steps[4].detail["reason"] == "customer_asked"


def test_an_agents_reply_has_a_trace_of_its_own_without_an_inbound_message(world, sandbox, admin_client):
    with schema_context("alpha"):
        contact = ContactFactory(app=world, external_id=USER)
        queue_outbound(contact=contact, conversation=None, message=None, author=Message.Author.AGENT,
                       text="您好，我是客服小王。", cause="agent-reply:1")
    deliver(contact)
    with schema_context("alpha"):
        row = OutboundMessage.objects.get(idempotency_key="agent-reply:1:1")
        assert row.trace_id is not None and row.inbound_id is None
        sent = TraceEvent.objects.get(trace_id=row.trace_id)
        assert (sent.stage, sent.inbound_id, sent.detail["outbound"]) == ("sent", None, row.pk)
        assert not InboundMessage.objects.filter(trace_id=row.trace_id).exists()

    page = admin_client.get(f"/t/alpha/admin/conversations/outboundmessage/{row.pk}/change/",
                            HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "none: it answers no customer message" in page and str(row.trace_id) in page
    assert [chunk.split('"', 1)[0] for chunk in page.split('data-stage="')[1:]] == ["queued", "sent"]


def test_the_migration_links_delivery_events_written_before_it_to_their_message(tenant_a):
    migration = importlib.import_module("conversations.migrations.0011_trace_links_delivery_to_inbound")
    with schema_context("alpha"):
        inbound = InboundMessageFactory()
        row = OutboundMessageFactory(trace_id=inbound.trace_id)
        own = OutboundMessageFactory(trace_id=uuid.uuid4())
        sent = TraceEventFactory(inbound=None, trace_id=inbound.trace_id, stage="sent", detail={"outbound": row.pk})
        unrelated = TraceEventFactory(inbound=None, trace_id=own.trace_id, stage="sent")
        with connection.cursor() as cursor:
            cursor.execute(migration.LINK_OUTBOUND)
            cursor.execute(migration.LINK_EVENTS)
        row.refresh_from_db(), own.refresh_from_db(), sent.refresh_from_db(), unrelated.refresh_from_db()
        assert (row.inbound_id, sent.inbound_id) == (inbound.pk, inbound.pk)
        assert (own.inbound_id, unrelated.inbound_id) == (None, None)


def test_a_rounds_events_are_saved_as_they_were_collected_in_one_statement(tenant_a, django_assert_num_queries):
    with schema_context("alpha"):
        inbound = InboundMessageFactory()
        own_trace = uuid.uuid4()
        when = timezone.now().replace(microsecond=123456)
        quoted = '引号 " 和 \\ 与 \'单引号\''
        events = [
            trace_event(inbound=inbound, stage=Stage.RECEIVED, natural_key=inbound.natural_key, text=quoted),
            None,  # a stage a row had nothing for
            trace_event(inbound=None, stage=Stage.SENT, trace_id=own_trace, outbound=7, ms=12.5,
                        nested={"a": [1, None]}),
        ]
        events[2].created_at = when

        with django_assert_num_queries(1):
            save_trace_events(events)

        saved = list(TraceEvent.objects.order_by("id").values_list("trace_id", "inbound_id", "stage", "detail",
                                                                   "created_at"))
        assert saved[0][:3] == (inbound.trace_id, inbound.pk, "received")
        assert saved[0][3] == {"natural_key": inbound.natural_key, "text": quoted}
        assert saved[1] == (own_trace, None, "sent", {"outbound": 7, "ms": 12.5, "nested": {"a": [1, None]}}, when)
        assert events == []  # handed over: a caller that saves again saves nothing twice


def test_durations_read_as_people_read_them():
    assert [duration_ms(ms) for ms in (None, 0, 35, 1234, 75_000, 3_725_000, -20)] == [
        "", "0 ms", "35 ms", "1.23 s", "1 min 15 s", "1 h 2 min", "-20 ms"]


# -- the API ----------------------------------------------------------------------------------------------


def test_the_api_gives_the_trace_from_callback_to_delivery_by_id_or_trace_id(world, sandbox, api_keys):
    sandbox.model_configure(latency=MODEL_LATENCY)
    inbound = callback(world, "怎么开发票")
    deliver(answer())
    with schema_context("alpha"):
        row = OutboundMessage.objects.get()

    response = api_client(api_keys["alpha"]).get(f"/t/alpha/api/messages/{inbound.pk}/trace/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["trace_id"], body["status"]) == (inbound.pk, str(inbound.trace_id), "processed")
    assert stages(body) == ["received", "enqueued", "duplicate", "retrieved", "llm_call", "queued", "processed",
                            "sent"]
    events = {event["stage"]: event for event in body["events"]}
    assert body["events"][0]["since_previous_ms"] is None and body["events"][0]["since_received_ms"] >= 0
    assert events["llm_call"]["since_previous_ms"] >= MODEL_LATENCY * 1000
    assert events["llm_call"]["detail"]["outcome"] == "ok"
    assert events["sent"]["outbound_id"] == row.pk and events["sent"]["detail"]["attempts"] == 1
    assert events["sent"]["label"] == "已送达"  # zh-hans first
    received = [event["since_received_ms"] for event in body["events"]]
    assert received == sorted(received) and body["total_ms"] == received[-1]
    assert [(d["id"], d["status"], d["attempts"]) for d in body["deliveries"]] == [(row.pk, "sent", 1)]

    by_trace_id = api_client(api_keys["alpha"]).get(f"/t/alpha/api/messages/{inbound.trace_id}/trace/")
    assert by_trace_id.status_code == 200 and by_trace_id.json() == body


def test_a_dead_reply_re_sent_and_delivered_is_one_trace(world, sandbox, api_keys, settings):
    settings.OUTBOUND_RETRY_BASE_SECONDS = 0.01
    inbound = callback(world, "怎么开发票")
    contact = answer()
    sandbox.inject_fault("/cgi-bin/message/send", errcode=-1, count=1)  # system busy: retried
    assert deliver(contact) is not None
    make_retry_due()
    sandbox.set_members(CORP_ID, ["lisi"])  # zhangsan is no member: 81013, permanent
    assert deliver(contact) is None
    with schema_context("alpha"):
        row = OutboundMessage.objects.get()
        assert (row.status, row.last_errcode) == (Status.DEAD, 81013)
    sandbox.set_members(CORP_ID, [])  # the operator fixed the cause, then re-sends the dead letter
    with schema_context("alpha"):
        assert resend_dead_letters(ids=[row.pk]) == (1, [])
    assert deliver(contact) is None
    assert [text.rstrip("\u200b") for text in sandbox.received_texts(USER)] == [ANSWER]

    body = api_client(api_keys["alpha"]).get(f"/t/alpha/api/messages/{inbound.pk}/trace/").json()

    delivery = [event for event in body["events"] if event["outbound_id"] is not None]
    assert [(event["stage"], event["detail"].get("errcode")) for event in delivery] == [
        ("queued", None), ("send_attempt", -1), ("dead", 81013), ("resend", None), ("sent", None)]
    assert {event["outbound_id"] for event in delivery} == {row.pk}
    dead = delivery[2]
    assert dead["detail"]["attempts"] == 2 and dead["detail"]["reason"]
    assert stages(body)[:4] == ["received", "enqueued", "duplicate", "retrieved"]
    assert [(d["status"], d["attempts"], d["last_errcode"]) for d in body["deliveries"]] == [("sent", 1, 81013)]


def test_another_tenants_key_sees_nothing_of_alphas_message(world, sandbox, api_keys):
    inbound = callback(world, "怎么开发票")
    deliver(answer())
    with schema_context("beta"):  # beta's own message under the very same id
        theirs = InboundMessageFactory(pk=inbound.pk, sender="lisi")
        TraceEventFactory(inbound=theirs, stage="received")

    missing = api_client(api_keys["beta"]).get("/t/beta/api/messages/999999999/trace/")
    by_trace_id = api_client(api_keys["beta"]).get(f"/t/beta/api/messages/{inbound.trace_id}/trace/")
    same_id = api_client(api_keys["beta"]).get(f"/t/beta/api/messages/{inbound.pk}/trace/")

    assert (missing.status_code, missing.json()) == (404, {"detail": "No message with this id or trace id.",
                                                           "code": "not_found"})
    assert (by_trace_id.status_code, by_trace_id.json()) == (404, missing.json())
    assert same_id.status_code == 200
    assert (same_id.json()["trace_id"], stages(same_id.json())) == (str(theirs.trace_id), ["received"])
    assert api_client(api_keys["beta"]).get(f"/t/alpha/api/messages/{inbound.pk}/trace/").status_code == 401


@pytest.mark.parametrize("key", [None, "wd_nope_nope"])
def test_the_trace_needs_a_valid_key(world, api_keys, key):
    with schema_context("alpha"):
        inbound = InboundMessageFactory(app=world)
    response = api_client(key).get(f"/t/alpha/api/messages/{inbound.pk}/trace/")
    assert response.status_code == 401 and set(response.json()) == {"detail", "code"}


@pytest.mark.parametrize("reference", ["999999999", "not-a-message", "99999999999999999999999",
                                       "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_message_is_404_never_500(api_keys, reference):
    response = api_client(api_keys["alpha"]).get(f"/t/alpha/api/messages/{reference}/trace/")
    assert (response.status_code, response.json()) == (404, {"detail": "No message with this id or trace id.",
                                                             "code": "not_found"})


def test_the_trace_endpoint_is_read_only_and_in_the_openapi_schema(api_keys, tenant_a):
    with schema_context("alpha"):
        inbound = InboundMessageFactory()
    assert api_client(api_keys["alpha"]).post(f"/t/alpha/api/messages/{inbound.pk}/trace/").status_code == 405
    assert api_client(api_keys["alpha"]).delete(f"/t/alpha/api/messages/{inbound.pk}/trace/").status_code == 405
    schema = api_client(api_keys["alpha"]).get("/t/alpha/api/schema/?format=json").json()
    operation = schema["paths"]["/api/messages/{id}/trace/"]["get"]
    assert set(operation["responses"]) == {"200", "401", "403", "404", "429"}  # 429: every key is throttled
    assert operation["x-scopes"] == ["conversations:read"]
    fields = schema["components"]["schemas"]["MessageTrace"]["properties"]
    assert {"id", "trace_id", "received_at", "events", "deliveries"} <= set(fields)
    event = schema["components"]["schemas"]["TraceEvent"]["properties"]
    assert {"stage", "at", "since_previous_ms", "since_received_ms", "detail"} <= set(event)


# -- the admin --------------------------------------------------------------------------------------------


def test_the_admin_shows_the_timeline_on_the_message_and_from_its_reply(world, sandbox, admin_client, settings):
    settings.OUTBOUND_RETRY_BASE_SECONDS = 0.01
    inbound = callback(world, "怎么开发票")
    contact = answer()
    sandbox.inject_fault("/cgi-bin/message/send", errcode=45009, count=1)
    deliver(contact)
    make_retry_due()
    deliver(contact)
    with schema_context("alpha"):
        row = OutboundMessage.objects.get()
    message_page = f"/t/alpha/admin/conversations/inboundmessage/{inbound.pk}/change/"

    page = admin_client.get(message_page).content.decode()

    timeline = page[page.index('id="trace-timeline"'):page.index('id="trace-deliveries"')]
    shown = [chunk.split('"', 1)[0] for chunk in timeline.split('data-stage="')[1:]]
    assert shown == ["received", "enqueued", "duplicate", "retrieved", "llm_call", "queued", "processed",
                     "send_attempt", "sent"]
    assert "<strong>errcode 45009</strong>" in timeline
    assert "已送达" in timeline and "发送失败，稍后重试" in timeline  # zh-hans by default
    assert timeline.count('class="since-previous">+') == len(shown) - 1
    assert f'href="/t/alpha/admin/conversations/outboundmessage/{row.pk}/change/"' in timeline
    assert f'data-outbound="{row.pk}"' in page and str(inbound.trace_id) in page

    english = admin_client.get(message_page, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "send attempt failed, retrying" in english and "Since previous" in english

    reply_page = admin_client.get(f"/t/alpha/admin/conversations/outboundmessage/{row.pk}/change/").content.decode()
    assert f'href="/t/alpha/admin/conversations/inboundmessage/{inbound.pk}/change/#trace"' in reply_page
    assert reply_page.count('data-stage="') == len(shown)  # the same trace, shown with the reply


def test_another_tenants_admin_does_not_show_alphas_message(world, tenant_b):
    with schema_context("alpha"):
        inbound = InboundMessageFactory(app=world)
        TraceEventFactory(inbound=inbound, stage="received")
    response = staff_client("beta").get(f"/t/beta/admin/conversations/inboundmessage/{inbound.pk}/change/")
    assert response.status_code == 302 and str(inbound.trace_id) not in response.content.decode()
