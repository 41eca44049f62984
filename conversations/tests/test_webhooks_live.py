"""Webhooks end to end: a customer writes through the WeCom sandbox to the live web server, a real worker
answers and hands off, and the integrator's receiver gets every event, signed, exactly once."""

from __future__ import annotations

from collections import Counter

import pytest
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.ai.models import AIProvider
from conversations.services.webhooks import create_endpoint
from conversations.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent
from testing.factories import APP_SECRET, AIProviderFactory
from testing.vectors import CORP_ID
from testing.waiting import wait_until, wait_until_idle
from testing.webhooks import verify_signature
from testing.wecom import sender_for

pytestmark = pytest.mark.live
CUSTOMER = "webhook-customer"
QUEUES = ("inbound", "outbound", "webhooks")


@pytest.fixture
def integration(committed_app, sandbox, webhook_receiver):
    """A committed app and AI provider of alpha talking to the sandbox, and an endpoint subscribed to every
    event whose receiver is a real HTTP server; all removed afterwards."""
    receiver = webhook_receiver()
    app = committed_app("alpha", agent_id=4747)
    sandbox.create_corp(CORP_ID, apps=[{"agent_id": 4747, "secret": APP_SECRET}])
    with schema_context("alpha"):
        reset_breaker("alpha")
        events_before = set(WebhookEvent.objects.values_list("pk", flat=True))
        provider = AIProviderFactory(base_url=sandbox.model_base_url, timeout_seconds=5)
        endpoint = create_endpoint(url=receiver.url, events=list(EventType.values), description="the CRM")
    yield app, endpoint, receiver
    with schema_context("alpha"):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
        WebhookEvent.objects.exclude(pk__in=events_before).delete()
        AIProvider.objects.filter(pk=provider.pk).delete()
        reset_breaker("alpha")


@pytest.mark.timeout(150)
def test_an_answer_and_a_handoff_reach_the_integrator_signed_and_once(integration, live_server_url, sandbox,
                                                                      sandbox_server, start_worker):
    app, endpoint, receiver = integration
    worker = start_worker(*QUEUES, threads=4, TEST_WECOM_API_BASE=sandbox_server)
    sender = sender_for(app, f"{live_server_url}/t/alpha/wecom/callback/{app.callback_id}/")

    assert sender.send_text(from_user=CUSTOMER, content="echo:您的订单已发货").delivered
    wait_until(lambda: receiver.events("message.answered"), timeout=30,
               message=lambda: f"received {[r.event_type for r in receiver.events()]}\n{worker.output()[-3000:]}")
    assert sender.send_text(from_user=CUSTOMER, content="转人工").delivered
    wait_until(lambda: len(receiver.events("message.answered")) == 2 and receiver.events("ticket.created"),
               timeout=30,
               message=lambda: f"received {[r.event_type for r in receiver.events()]}\n{worker.output()[-3000:]}")
    wait_until_idle(schemas=["alpha"], queues=QUEUES)

    received = receiver.events()
    assert Counter(r.event_type for r in received) == {"message.received": 2, "message.answered": 2,
                                                       "conversation.handed_off": 1, "ticket.created": 1}
    for request in received:
        assert verify_signature(secret=endpoint.secret, headers=request.headers, body=request.body)
        assert request.json["tenant"] == "alpha" and request.json["type"] == request.event_type
    assert len({r.headers["X-WecomDesk-Event-Id"] for r in received}) == len(received)  # each event once

    by_type = {}
    for request in received:
        by_type.setdefault(request.event_type, []).append(request.json["data"])
    first, second = by_type["message.received"]
    assert (first["text"], second["text"]) == ("echo:您的订单已发货", "转人工")
    assert first["contact"] == {"external_id": CUSTOMER, "open_kfid": ""}
    answer, handoff_message = sorted(by_type["message.answered"], key=lambda data: data["message_id"])
    assert answer["text"].startswith("您的订单已发货") and answer["in_reply_to"] == first["inbound_id"]
    assert handoff_message["author"] == "handoff" and handoff_message["in_reply_to"] == second["inbound_id"]
    [handed_off] = by_type["conversation.handed_off"]
    [ticket] = by_type["ticket.created"]
    assert handed_off["ticket_id"] == ticket["ticket_id"] and handed_off["reason"] == "customer_asked"
    assert handed_off["conversation_id"] == ticket["conversation_id"] == answer["conversation_id"]
    assert ticket["contact"]["external_id"] == CUSTOMER
    with schema_context("alpha"):
        assert set(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("status", flat=True)) == {
            WebhookDelivery.Status.DELIVERED}
