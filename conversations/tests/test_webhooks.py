"""Webhooks out: events written in the transaction of their cause, signed deliveries to a real receiver,
retries with backoff, dead letters and re-send, disabling, the SSRF policy and tenant isolation."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from prometheus_client import REGISTRY

from conversations.models import Conversation, DeskSettings, Message, OutboundMessage
from conversations.services.conversations import close_conversation
from conversations.services.handoff import hand_off_to_human
from conversations.services.inbound import record_kf_message
from conversations.services.outbound import deliver_for_contact, queue_outbound
from conversations.services.webhooks import (
    DISABLE_AFTER_DEAD,
    MAX_ATTEMPTS,
    RETENTION_DAYS,
    RETRY_DELAYS_SECONDS,
    create_endpoint,
    deliver_webhook,
    emit,
    enable_endpoint,
    prune_old_events,
    requeue_due_deliveries,
    resend_dead_deliveries,
    retry_delay,
    rotate_secret,
    send_test_event,
    update_endpoint,
)
from conversations.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent, subscribed_events
from tenants.outbound_urls import clear_dns_cache
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import AgentProfileFactory, ContactFactory, ConversationFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from testing.webhooks import verify_signature
from testing.wecom import customer_says
from tickets.models import Ticket
from tickets.services import close_conversation as close_as_agent

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status
ALL_EVENTS = list(EventType.values)


@pytest.fixture(autouse=True)
def _empty_broker():
    flush_test_broker()
    yield
    flush_test_broker()


def endpoint_for(receiver, *, events=None, schema="alpha") -> WebhookEndpoint:
    with schema_context(schema):
        return create_endpoint(url=receiver.url, events=events or ALL_EVENTS, description="CRM")


def deliver_all(schema="alpha") -> None:
    """Run every due delivery of `schema` once, as the jobs would."""
    with schema_context(schema):
        for pk in WebhookDelivery.objects.filter(status__in=[Status.PENDING, Status.RETRYING],
                                                 next_attempt_at__lte=timezone.now()).values_list("pk", flat=True):
            deliver_webhook(delivery_id=pk)


def attempts(outcome: str) -> float:
    """wecomdesk_webhook_attempts_total of alpha for `outcome` (0 before the first)."""
    return REGISTRY.get_sample_value("wecomdesk_webhook_attempts_total", {"tenant": "alpha", "outcome": outcome}) or 0


def make_due(delivery: WebhookDelivery) -> None:
    """Move a retrying delivery's time to now: the test does not wait out the backoff."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


# -- emitting ------------------------------------------------------------------------------------------

def test_a_customer_message_emits_message_received_in_its_transaction_and_enqueues_on_commit(
        app_alpha, webhook_receiver, django_capture_on_commit_callbacks):
    endpoint = endpoint_for(webhook_receiver(), events=[EventType.MESSAGE_RECEIVED])
    with schema_context("alpha"):
        with django_capture_on_commit_callbacks(execute=True):
            inbound = customer_says(app_alpha, "我的订单到哪了？")
        event = WebhookEvent.objects.get()
        assert event.type == "message.received"
        assert event.payload == {
            "inbound_id": inbound.pk, "trace_id": str(inbound.trace_id), "app_id": app_alpha.pk,
            "contact": {"external_id": "zhangsan", "open_kfid": ""}, "msg_type": "text", "text": "我的订单到哪了？",
            "sent_at": inbound.sent_at.isoformat(), "received_at": inbound.received_at.isoformat()}
        [delivery] = WebhookDelivery.objects.all()
        assert (delivery.endpoint_id, delivery.status, delivery.attempts) == (endpoint.pk, Status.PENDING, 0)
    [job] = queued_jobs("webhooks", actor_name="conversations.deliver_webhook")
    assert (list(job.args), job.options["tenant_schema"]) == ([delivery.pk], "alpha")


def test_a_pulled_wechat_customer_message_emits_and_a_servicers_message_does_not(tenant_a, webhook_receiver):
    endpoint_for(webhook_receiver(), events=[EventType.MESSAGE_RECEIVED])
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
        for msgid, origin in (("m-customer", 3), ("m-servicer", 5)):
            record_kf_message(app=app, message={"msgid": msgid, "origin": origin, "msgtype": "text",
                                                "text": {"content": f"from {origin}"}, "open_kfid": OPEN_KFID,
                                                "external_userid": "wm-customer", "send_time": 1700000000})
        [event] = WebhookEvent.objects.all()
    assert (event.payload["text"], event.payload["contact"]) == (
        "from 3", {"external_id": "wm-customer", "open_kfid": OPEN_KFID})


def test_a_rolled_back_cause_emits_nothing(app_alpha, webhook_receiver, django_capture_on_commit_callbacks):
    endpoint_for(webhook_receiver())
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            customer_says(app_alpha, "这条不会保存")
            assert WebhookEvent.objects.count() == 1  # written with the message...
            raise RuntimeError("the cause fails after the event was written")
        assert WebhookEvent.objects.count() == 0 and WebhookDelivery.objects.count() == 0  # ...and gone with it
    assert queued_jobs("webhooks") == []
    assert all("deliver_webhook" not in repr(callback) for callback in callbacks)


def test_without_a_subscribed_endpoint_emit_writes_nothing_and_asks_the_database_nothing(
        tenant_a, webhook_receiver, django_assert_num_queries):
    with schema_context("alpha"):
        endpoint = create_endpoint(url=webhook_receiver().url, events=[EventType.TICKET_CREATED])
        subscribed_events()  # the cache is warm, as on any busy tenant
        with django_assert_num_queries(0):
            assert emit(event=EventType.MESSAGE_RECEIVED, data=lambda: pytest.fail("built a payload")) is None
        update_endpoint(endpoint=endpoint, is_active=False)  # a disabled endpoint subscribes to nothing
        assert subscribed_events() == frozenset()
        with django_assert_num_queries(0):
            assert emit(event=EventType.TICKET_CREATED, data={"x": 1}) is None
        update_endpoint(endpoint=endpoint, is_active=True)  # the change is seen at once, not after the cache expires
        assert emit(event=EventType.TICKET_CREATED, data={"x": 1}) is not None
        assert WebhookEvent.objects.count() == 1


def test_handoff_emits_conversation_handed_off_and_ticket_created(app_alpha, webhook_receiver):
    endpoint_for(webhook_receiver())
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=app_alpha, contact__external_id="zhangsan")
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
        ticket = Ticket.objects.get(conversation=conversation)
        events = {event.type: event.payload for event in WebhookEvent.objects.all()}
    assert sorted(events) == ["conversation.handed_off", "ticket.created"]
    contact = {"id": conversation.contact_id, "external_id": "zhangsan", "open_kfid": "", "app_id": app_alpha.pk}
    assert events["conversation.handed_off"] | {"started_at": None} == {
        "conversation_id": conversation.pk, "contact": contact, "state": "waiting_human", "agent_id": None,
        "started_at": None, "closed_at": None, "reason": "customer_asked", "ticket_id": ticket.pk, "in_reply_to": None}
    assert events["ticket.created"] == {
        "ticket_id": ticket.pk, "conversation_id": conversation.pk, "contact": contact, "status": "open",
        "priority": "normal", "reason": "customer_asked", "subject": "", "assignee_id": None, "tags": [],
        "created_at": ticket.created_at.isoformat()}


def test_closing_emits_conversation_closed_and_a_ticket_change_emits_ticket_updated(app_alpha, webhook_receiver):
    endpoint_for(webhook_receiver(), events=[EventType.CONVERSATION_CLOSED, EventType.TICKET_UPDATED])
    with schema_context("alpha"):
        bot_conversation = ConversationFactory(contact__app=app_alpha, contact__external_id="lisi")
        close_conversation(conversation_id=bot_conversation.pk)
        conversation = ConversationFactory(contact__app=app_alpha, contact__external_id="zhangsan")
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
        agent = AgentProfileFactory(user__username="agent1", role="supervisor")
        close_as_agent(conversation_id=conversation.pk, profile=agent)
        events = [(event.type, event.payload) for event in WebhookEvent.objects.order_by("id")]
    assert [(kind, data["conversation_id"]) for kind, data in events] == [
        ("conversation.closed", bot_conversation.pk), ("conversation.closed", conversation.pk),
        ("ticket.updated", conversation.pk)]
    assert events[0][1]["state"] == "closed" and events[0][1]["closed_at"]
    assert (events[2][1]["change"], events[2][1]["status"], events[2][1]["detail"]) == (
        "status", "closed", {"from": "open", "to": "closed"})


def test_sent_replies_emit_message_answered_and_dead_rows_delivery_dead(tenant_a, sandbox, webhook_receiver):
    endpoint_for(webhook_receiver(), events=[EventType.MESSAGE_ANSWERED, EventType.DELIVERY_DEAD])
    sandbox.set_members(CORP_ID, ["zhangsan"])  # lisi is not a member: WeCom refuses with 81013
    with schema_context("alpha"):
        answered = ContactFactory(external_id="zhangsan")
        conversation = ConversationFactory(contact=answered)
        message = Message.objects.create(conversation=conversation, author=Message.Author.AI, text="您好！" * 300)
        queue_outbound(contact=answered, conversation=conversation, message=message, author=Message.Author.AI,
                       text=message.text, cause="inbound:1")
        refused = ContactFactory(external_id="lisi")
        queue_outbound(contact=refused, conversation=None, message=None, author=Message.Author.AGENT, text="在吗",
                       cause="agent:1")
        while deliver_for_contact(answered.pk) is not None:  # two parts, paced
            OutboundMessage.objects.update(next_attempt_at=timezone.now())
        deliver_for_contact(refused.pk)
        events = [(event.type, event.payload) for event in WebhookEvent.objects.order_by("id")]
        dead = OutboundMessage.objects.get(contact=refused)
    assert [kind for kind, _ in events] == ["message.answered", "delivery.dead"]  # once per reply, not per part
    answer = events[0][1]
    assert (answer["message_id"], answer["text"], answer["parts"], answer["author"]) == (
        message.pk, message.text, 2, "ai")
    assert events[1][1] | {"error": ""} == {
        "outbound_id": dead.pk, "message_id": None, "conversation_id": None,
        "contact": {"id": refused.pk, "external_id": "lisi", "open_kfid": "", "app_id": refused.app_id},
        "author": "agent", "text": "在吗", "part": 1, "parts_total": 1, "errcode": 81013, "error": "", "attempts": 1,
        "trace_id": str(dead.trace_id)}


# -- delivering ----------------------------------------------------------------------------------------

def test_a_delivery_is_signed_as_documented_and_posted_once(tenant_a, webhook_receiver):
    receiver = webhook_receiver()
    endpoint = endpoint_for(receiver)
    with schema_context("alpha"):
        event = emit(event=EventType.TICKET_CREATED, data={"ticket_id": 7})
        [delivery] = WebhookDelivery.objects.all()
    deliver_webhook_in("alpha", delivery.pk)
    deliver_webhook_in("alpha", delivery.pk)  # a redelivered job
    [request] = receiver.events()
    assert verify_signature(secret=endpoint.secret, headers=request.headers, body=request.body)
    assert not verify_signature(secret="whsec_wrong", headers=request.headers, body=request.body)
    assert not verify_signature(secret=endpoint.secret, headers=request.headers, body=request.body + b" ")
    # A request replayed after the window is refused by the same check.
    later = int(request.headers["X-WecomDesk-Timestamp"]) + 301
    assert not verify_signature(secret=endpoint.secret, headers=request.headers, body=request.body, now=later)
    assert request.headers["X-WecomDesk-Event"] == "ticket.created"
    assert request.headers["X-WecomDesk-Event-Id"] == str(event.event_id)
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {"id": str(event.event_id), "type": "ticket.created", "tenant": "alpha",
                            "created_at": event.created_at.isoformat(), "data": {"ticket_id": 7}}
    with schema_context("alpha"):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.DELIVERED, 1, 200)
        assert delivery.delivered_at is not None


def deliver_webhook_in(schema: str, delivery_id: int) -> None:
    with schema_context(schema):
        deliver_webhook(delivery_id=delivery_id)


def test_a_failing_receiver_is_retried_with_backoff_then_delivered(tenant_a, webhook_receiver,
                                                                   django_capture_on_commit_callbacks):
    receiver = webhook_receiver(statuses=[500, 503], default_status=204)
    endpoint = endpoint_for(receiver)
    with schema_context("alpha"):
        emit(event=EventType.TICKET_UPDATED, data={"ticket_id": 7})
        delivery = WebhookDelivery.objects.get()
    flush_test_broker()
    retrying_before, delivered_before = attempts("retrying"), attempts("delivered")
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        deliver_webhook_in("alpha", delivery.pk)
    with schema_context("alpha"):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == (Status.RETRYING, 1, 500)
        assert delivery.last_error == "HTTP 500: ok"
        assert before < delivery.next_attempt_at <= timezone.now() + timedelta(seconds=RETRY_DELAYS_SECONDS[0])
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 1
    [retry] = queued_jobs("webhooks", actor_name="conversations.deliver_webhook")
    assert list(retry.args) == [delivery.pk] and retry.options.get("eta")  # on the delay queue
    with schema_context("alpha"):  # the drawn wait may be as short as MIN_RETRY_SECONDS: a slow machine passes it
        WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=1))
    deliver_webhook_in("alpha", delivery.pk)  # early: not due yet, nothing is posted
    assert len(receiver.events()) == 1
    for expected in (Status.RETRYING, Status.DELIVERED):
        with schema_context("alpha"):
            make_due(delivery)
        deliver_webhook_in("alpha", delivery.pk)
        with schema_context("alpha"):
            delivery.refresh_from_db()
        assert delivery.status == expected
    assert (delivery.attempts, delivery.last_status_code, len(receiver.events())) == (3, 204, 3)
    assert attempts("retrying") == retrying_before + 2 and attempts("delivered") == delivered_before + 1
    assert len({request.headers["X-WecomDesk-Event-Id"] for request in receiver.events()}) == 1  # one event
    with schema_context("alpha"):
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).consecutive_failures == 0  # a 2xx resets it


def test_the_backoff_is_full_jitter_under_the_schedule():
    for attempts, cap in enumerate(RETRY_DELAYS_SECONDS, start=1):
        delays = [retry_delay(attempts) for _ in range(200)]
        assert all(1 <= delay <= cap for delay in delays)
        assert max(delays) > cap / 2 and min(delays) < cap / 2  # spread over the whole range
    assert MAX_ATTEMPTS == 8 and 23 * 3600 < sum(RETRY_DELAYS_SECONDS) < 24 * 3600


def test_dead_after_the_last_attempt_and_the_endpoint_disabled_after_repeated_dead_deliveries(
        tenant_a, webhook_receiver):
    receiver = webhook_receiver(default_status=500)
    endpoint = endpoint_for(receiver)
    with schema_context("alpha"):
        for number in range(DISABLE_AFTER_DEAD):
            emit(event=EventType.TICKET_UPDATED, data={"ticket_id": number})
        deliveries = list(WebhookDelivery.objects.order_by("id"))
    for number, delivery in enumerate(deliveries, start=1):
        for _ in range(MAX_ATTEMPTS):
            with schema_context("alpha"):
                make_due(delivery)
            deliver_webhook_in("alpha", delivery.pk)
        with schema_context("alpha"):
            delivery.refresh_from_db()
            endpoint.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == (Status.DEAD, MAX_ATTEMPTS, "HTTP 500: ok")
        assert endpoint.consecutive_dead == number
        assert endpoint.is_active == (number < DISABLE_AFTER_DEAD)
    assert len(receiver.events()) == DISABLE_AFTER_DEAD * MAX_ATTEMPTS
    assert endpoint.disabled_reason == "5 deliveries in a row failed every attempt (the last: HTTP 500: ok)"
    assert endpoint.disabled_at is not None
    with schema_context("alpha"):
        assert emit(event=EventType.TICKET_UPDATED, data={}) is None  # a disabled endpoint gets nothing new
        enable_endpoint(endpoint=endpoint)
        endpoint.refresh_from_db()
        assert (endpoint.is_active, endpoint.disabled_reason, endpoint.consecutive_dead) == (True, "", 0)


def test_a_waiting_delivery_of_a_disabled_endpoint_goes_dead_without_a_call(tenant_a, webhook_receiver):
    receiver = webhook_receiver()
    endpoint = endpoint_for(receiver)
    with schema_context("alpha"):
        emit(event=EventType.TICKET_UPDATED, data={})
        update_endpoint(endpoint=endpoint, is_active=False)
        delivery = WebhookDelivery.objects.get()
    deliver_webhook_in("alpha", delivery.pk)
    with schema_context("alpha"):
        delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Status.DEAD, 0)
    assert delivery.last_error == "the endpoint is disabled: disabled by an operator"
    assert receiver.events() == []


def test_a_dead_delivery_is_resent_with_the_same_event_id_and_a_delivered_one_never(
        tenant_a, webhook_receiver, django_capture_on_commit_callbacks):
    receiver = webhook_receiver(statuses=[500] * MAX_ATTEMPTS, default_status=200)
    endpoint_for(receiver)
    with schema_context("alpha"):
        emit(event=EventType.TICKET_UPDATED, data={})
        delivery = WebhookDelivery.objects.get()
    for _ in range(MAX_ATTEMPTS):
        with schema_context("alpha"):
            make_due(delivery)
        deliver_webhook_in("alpha", delivery.pk)
    flush_test_broker()
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        assert WebhookDelivery.objects.get().status == Status.DEAD
        assert resend_dead_deliveries(ids=[delivery.pk]) == (1, [])
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.PENDING, 0)
    assert [list(job.args) for job in queued_jobs("webhooks")] == [[delivery.pk]]
    deliver_webhook_in("alpha", delivery.pk)
    with schema_context("alpha"):
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (Status.DELIVERED, 1)
        assert resend_dead_deliveries(ids=[delivery.pk]) == (0, [f"#{delivery.pk} is delivered, not dead"])
    assert len({request.headers["X-WecomDesk-Event-Id"] for request in receiver.events()}) == 1
    assert len(receiver.events()) == MAX_ATTEMPTS + 1


def test_a_redirect_is_a_failure_not_followed(tenant_a, webhook_receiver):
    receiver = webhook_receiver(statuses=[302])
    endpoint_for(receiver)
    with schema_context("alpha"):
        emit(event=EventType.TICKET_UPDATED, data={})
        delivery = WebhookDelivery.objects.get()
    deliver_webhook_in("alpha", delivery.pk)
    with schema_context("alpha"):
        delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code) == (Status.RETRYING, 302)
    assert "redirects are not followed" in delivery.last_error
    assert len(receiver.events()) == 1


def test_the_sweeper_enqueues_deliveries_whose_job_was_lost(tenant_a, webhook_receiver,
                                                           django_capture_on_commit_callbacks):
    endpoint_for(webhook_receiver())
    with schema_context("alpha"):
        emit(event=EventType.TICKET_UPDATED, data={})  # its job is never sent: lost, as with the broker
        delivery = WebhookDelivery.objects.get()
        with django_capture_on_commit_callbacks(execute=True):
            assert requeue_due_deliveries(overdue_seconds=60) == 0  # not overdue yet
            WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
            assert requeue_due_deliveries(overdue_seconds=60) == 1
            assert requeue_due_deliveries(overdue_seconds=60) == 0  # swept once per period, not every tick
    assert [list(job.args) for job in queued_jobs("webhooks")] == [[delivery.pk]]


def test_old_events_are_pruned_unless_a_delivery_still_waits(tenant_a, webhook_receiver):
    endpoint_for(webhook_receiver())
    with schema_context("alpha"):
        done, waiting, recent = (emit(event=EventType.TICKET_UPDATED, data={"n": n}) for n in range(3))
        WebhookDelivery.objects.filter(event=done).update(status=Status.DEAD)
        long_ago = timezone.now() - timedelta(days=RETENTION_DAYS + 1)
        WebhookEvent.objects.filter(pk__in=[done.pk, waiting.pk]).update(created_at=long_ago)
        assert prune_old_events() == 2  # the event and its delivery
        assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {waiting.pk, recent.pk}
        assert WebhookDelivery.objects.count() == 2


def test_test_event_and_secret_rotation(tenant_a, webhook_receiver):
    receiver = webhook_receiver()
    endpoint = endpoint_for(receiver, events=[EventType.TICKET_CREATED])
    old_secret = endpoint.secret
    with schema_context("alpha"):
        new_secret = rotate_secret(endpoint=endpoint)
        assert new_secret != old_secret and new_secret.startswith("whsec_")
        assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == new_secret  # stored (encrypted) to sign with
        event = send_test_event(endpoint=endpoint)
        delivery = WebhookDelivery.objects.get()
    deliver_webhook_in("alpha", delivery.pk)
    [request] = receiver.events()
    assert request.json["type"] == "webhook.test" and request.json["id"] == str(event.event_id)
    assert verify_signature(secret=new_secret, headers=request.headers, body=request.body)
    assert not verify_signature(secret=old_secret, headers=request.headers, body=request.body)


# -- outbound URL safety --------------------------------------------------------------------------------

def test_private_urls_are_refused_when_saved_and_when_called(tenant_a, webhook_receiver, settings):
    receiver = webhook_receiver()
    endpoint = endpoint_for(receiver)  # saved while the platform allowed private addresses
    settings.ALLOW_PRIVATE_OUTBOUND_URLS = False
    clear_dns_cache()
    with schema_context("alpha"):
        for url in (receiver.url, "http://localhost/hooks", "http://169.254.169.254/latest", "http://10.0.0.1/",
                    "http://2130706433/", "ftp://example.com/", "http://user:pw@example.com/"):
            with pytest.raises(ValidationError) as refused:
                create_endpoint(url=url, events=ALL_EVENTS)
            assert "url" in refused.value.message_dict, url
        emit(event=EventType.TICKET_UPDATED, data={})
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    deliver_webhook_in("alpha", delivery.pk)
    with schema_context("alpha"):
        delivery.refresh_from_db()
    assert delivery.status == Status.RETRYING and delivery.last_status_code is None
    assert "refused by the outbound URL policy" in delivery.last_error
    assert receiver.events() == []


def test_the_production_policy_fixture_refuses_a_loopback_endpoint(tenant_a, private_urls_refused):
    with schema_context("alpha"), pytest.raises(ValidationError) as refused:
        create_endpoint(url="http://127.0.0.1:8000/hooks", events=ALL_EVENTS)
    assert "loopback" in str(refused.value.message_dict["url"])


# -- tenants -----------------------------------------------------------------------------------------------

def test_a_tenants_events_never_reach_another_tenants_endpoints(tenant_a, tenant_b, webhook_receiver):
    alpha_receiver, beta_receiver = webhook_receiver(), webhook_receiver()
    alpha_endpoint = endpoint_for(alpha_receiver)
    with schema_context("beta"):  # the same primary key in beta: nothing may confuse them
        beta_endpoint = WebhookEndpoint(pk=alpha_endpoint.pk, url=beta_receiver.url, events=ALL_EVENTS)
        beta_endpoint.save()
    with schema_context("alpha"):
        emit(event=EventType.TICKET_CREATED, data={"ticket_id": 1})
    with schema_context("beta"):
        assert WebhookEvent.objects.count() == 0 and WebhookDelivery.objects.count() == 0
    deliver_all("alpha")
    deliver_all("beta")
    assert [request.json["tenant"] for request in alpha_receiver.events()] == ["alpha"]
    assert beta_receiver.events() == []
    with schema_context("beta"):
        assert subscribed_events() == frozenset(ALL_EVENTS)
        emit(event=EventType.TICKET_CREATED, data={"ticket_id": 2})
    deliver_all("beta")
    assert [request.json["tenant"] for request in beta_receiver.events()] == ["beta"]
    assert verify_signature(secret=beta_endpoint.secret, headers=beta_receiver.events()[0].headers,
                            body=beta_receiver.events()[0].body)
    assert len(alpha_receiver.events()) == 1


def test_each_tenant_has_its_own_cached_subscriptions(tenant_a, tenant_b, webhook_receiver, redis_client):
    endpoint_for(webhook_receiver())  # alpha subscribes to every event
    with schema_context("alpha"):
        assert subscribed_events() == frozenset(ALL_EVENTS)  # cached under alpha's key
    with schema_context("beta"):
        assert subscribed_events() == frozenset()  # beta's own answer, not alpha's cached one
        create_endpoint(url=webhook_receiver().url, events=[EventType.TICKET_CREATED])  # forgets beta's only
        assert subscribed_events() == frozenset([EventType.TICKET_CREATED])
    assert json.loads(redis_client.get("alpha:webhooks:subscribed")) == sorted(ALL_EVENTS)
    assert json.loads(redis_client.get("beta:webhooks:subscribed")) == [EventType.TICKET_CREATED]


def test_the_event_body_is_compact_utf8_json(tenant_a, webhook_receiver):
    receiver = webhook_receiver()
    endpoint_for(receiver)
    with schema_context("alpha"):
        emit(event=EventType.MESSAGE_RECEIVED, data={"text": "你好"})
    deliver_all("alpha")
    [request] = receiver.events()
    assert "你好".encode() in request.body and b", " not in request.body
    assert json.loads(request.body)["data"] == {"text": "你好"}
    uuid.UUID(request.headers["X-WecomDesk-Event-Id"])


def test_conversation_states_are_unchanged_by_emitting(app_alpha):
    """No endpoint: the message path behaves exactly as before (nothing written, nothing enqueued)."""
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=app_alpha)
        close_conversation(conversation_id=conversation.pk)
        assert Conversation.objects.get(pk=conversation.pk).state == Conversation.State.CLOSED
        assert WebhookEvent.objects.count() == 0
    assert queued_jobs("webhooks") == []
