"""Sending through the API on a live stack: concurrent retries of one request with the same Idempotency-Key give
exactly one message and one delivery to the WeCom sandbox; and the claim itself, raced with real concurrent
transactions, makes the second request wait for the first and replay it."""

from __future__ import annotations

import threading

import httpx
import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from conversations.idempotency import IdempotentSend
from conversations.models import ApiKey, Conversation, Message, OutboundMessage
from conversations.services.api_keys import create_api_key
from conversations.services.api_sends import IdempotencyClaim, claim_key, send_from_api
from testing.factories import APP_SECRET, ConversationFactory
from testing.threads import run_in_threads
from testing.vectors import CORP_ID
from testing.waiting import wait_until, wait_until_idle

pytestmark = pytest.mark.live
RETRIES = 6


@pytest.fixture
def alpha_key(committed_db):
    with schema_context("alpha"):
        row, key = create_api_key(name="live sends")
    yield key
    with schema_context("alpha"):
        ApiKey.objects.filter(pk=row.pk).delete()


def test_concurrent_retries_send_one_message_delivered_once(committed_app, live_server_url, alpha_key, sandbox,
                                                           sandbox_server, start_worker):
    app = committed_app("alpha", agent_id=7171)
    sandbox.create_corp(CORP_ID, apps=[{"agent_id": 7171, "secret": APP_SECRET}])
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=app, contact__external_id="zhangsan")
    worker = start_worker("outbound", TEST_WECOM_API_BASE=sandbox_server)
    url = f"{live_server_url}/t/alpha/api/conversations/{conversation.pk}/messages/"
    headers = {"Authorization": f"Api-Key {alpha_key}", "Idempotency-Key": "order-42-shipped"}
    meet = threading.Barrier(RETRIES)

    def retry():
        meet.wait(timeout=10)
        return httpx.post(url, json={"text": "您的订单已发货"}, headers=headers, timeout=20)

    responses = run_in_threads(*[retry] * RETRIES, timeout=60)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * (RETRIES - 1) + [201], [response.text for response in responses]
    assert all(response.headers.get("Idempotent-Replayed") == "true"
               for response in responses if response.status_code == 200)
    assert len({response.json()["id"] for response in responses}) == 1
    wait_until(lambda: sandbox.received_texts("zhangsan"), timeout=20, message=lambda: worker.output()[-2000:])
    wait_until_idle(schemas=["alpha"], queues=["outbound"])
    assert sandbox.received_texts("zhangsan") == ["您的订单已发货"]  # exactly once
    with schema_context("alpha"):
        assert Message.objects.filter(conversation__contact__app=app, author="api").count() == 1
        (row,) = OutboundMessage.objects.filter(contact__app=app)
        assert row.status == OutboundMessage.Status.SENT
    # A retry after the delivery still returns the message, now delivered, and sends nothing.
    late = httpx.post(url, json={"text": "您的订单已发货"}, headers=headers, timeout=20)
    assert (late.status_code, late.json()["delivery"]) == (200, "sent")
    wait_until_idle(schemas=["alpha"], queues=["outbound"])
    assert sandbox.received_texts("zhangsan") == ["您的订单已发货"]


def waiting_on_a_lock(application_name: str) -> bool:
    """Whether the backend of that name waits on a lock (here: the key's unique index) right now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction the activity view is a snapshot
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = "
                       "'Lock'", [application_name])
        return cursor.fetchone()[0] > 0


@pytest.mark.parametrize("first_commits", [True, False])
def test_a_concurrent_claim_waits_for_the_first_transaction(committed_app, first_commits):
    """The second request's INSERT of the key blocks until the first transaction ends: committed, it replays the
    first's message; rolled back (say the first was refused), it sends itself. Never two messages."""
    app = committed_app("alpha", agent_id=7272)
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=app)
    claim = IdempotencyClaim.of(caller="k1", header="race", conversation_id=conversation.pk, text="只发一次")
    first_holds_the_key = threading.Event()

    def first():
        with schema_context("alpha"), transaction.atomic():
            assert claim_key(claim) is None  # the key is ours, uncommitted
            first_holds_the_key.set()
            wait_until(lambda: waiting_on_a_lock("second-send"), timeout=10, message="the second request blocks")
            if not first_commits:
                transaction.set_rollback(True)
                return None
            sent = send_from_api(conversation_id=conversation.pk, text="只发一次")
            IdempotentSend.objects.filter(key=claim.key).update(message=sent.message)
            return sent.message.pk

    def second():
        assert first_holds_the_key.wait(timeout=10)
        with schema_context("alpha"):
            with connection.cursor() as cursor:
                cursor.execute("SET application_name = 'second-send'")
            return send_from_api(conversation_id=conversation.pk, text="只发一次", claim=claim)

    first_id, second_send = run_in_threads(first, second, timeout=30)
    assert second_send.replayed is first_commits
    if first_commits:
        assert second_send.message.pk == first_id
    with schema_context("alpha"):
        assert Message.objects.filter(conversation__contact__app=app, author="api").count() == 1
        assert IdempotentSend.objects.get(key=claim.key).message_id == second_send.message.pk
        IdempotentSend.objects.filter(key=claim.key).delete()


def test_a_send_uses_the_conversation_another_transaction_opens_at_the_same_moment(committed_app):
    """The customer's conversation is closed; while a send opens a new one, another transaction (say the
    answering round for a new customer message) opens one too. The send waits on the one-open-conversation
    constraint and then writes into the other's conversation, instead of failing."""
    app = committed_app("alpha", agent_id=7373)
    with schema_context("alpha"):
        closed = ConversationFactory(contact__app=app, state=Conversation.State.CLOSED)
    other_opened = threading.Event()

    def other():
        with schema_context("alpha"), transaction.atomic():
            opened = Conversation.objects.create(contact_id=closed.contact_id)
            other_opened.set()
            wait_until(lambda: waiting_on_a_lock("api-send"), timeout=10, message="the send waits for us")
            return opened.pk

    def send():
        assert other_opened.wait(timeout=10)
        with schema_context("alpha"):
            with connection.cursor() as cursor:
                cursor.execute("SET application_name = 'api-send'")
            return send_from_api(conversation_id=closed.pk, text="您好，还在吗？")

    opened_id, sent = run_in_threads(other, send, timeout=30)
    assert not sent.replayed and sent.message.conversation_id == opened_id
    with schema_context("alpha"):
        assert Conversation.objects.filter(contact_id=closed.contact_id).exclude(state="closed").count() == 1
