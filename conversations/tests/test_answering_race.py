"""Invariant 6 under races: a human taking over while an AI answer is in flight silences it.

These tests commit (other threads must see the rows), so they are not in a test transaction.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.ai.models import AIProvider
from conversations.models import Contact, Conversation, Message, OutboundMessage
from conversations.services.answering import answer_contact
from conversations.services.conversations import change_state
from conversations.services.outbound import deliver_for_contact
from conversations.tests.conftest import make_app, purge_app
from conversations.tests.test_answering import USER, say


@pytest.fixture
def committed_world(committed_db, sandbox, redis_client):
    for key in redis_client.scan_iter("LIMITS*"):
        redis_client.delete(key)
    with schema_context("alpha"):
        reset_breaker("alpha")
        app = make_app("alpha", agent_id=5151)
        provider = AIProvider.objects.create(base_url=sandbox.model_base_url, model="sandbox-chat", timeout_seconds=5)
    yield app
    purge_app("alpha", app)
    with schema_context("alpha"):
        AIProvider.objects.filter(pk=provider.pk).delete()


@pytest.mark.live
def test_a_handoff_committed_while_the_model_is_thinking_silences_the_ai(committed_world, sandbox):
    sandbox.model_configure(latency=1.0)
    with schema_context("alpha"):
        say(committed_world, "你好")
        contact = Contact.objects.get(app=committed_world, external_id=USER)
    worker = threading.Thread(target=lambda: _answer_in_thread(contact.pk))
    worker.start()
    with schema_context("alpha"):
        conversation = _wait_for_conversation(contact)
        change_state(conversation=conversation, to=Conversation.State.WAITING_HUMAN)  # an agent takes it
    worker.join(10)
    with schema_context("alpha"):
        assert deliver_for_contact(contact.pk) is None
        assert OutboundMessage.objects.filter(contact=contact).count() == 0
    assert sandbox.received_texts(USER) == []


def test_a_handoff_committed_after_the_answer_was_queued_cancels_it_at_send_time(committed_world, sandbox):
    with schema_context("alpha"):
        say(committed_world, "你好")
        contact = Contact.objects.get(app=committed_world, external_id=USER)
        assert answer_contact(contact, deliver=False) is None  # queued; its delivery job has not run yet
        conversation = Conversation.objects.get(contact=contact)
        change_state(conversation=conversation, to=Conversation.State.WAITING_HUMAN)
        deliver_for_contact(contact.pk)
        assert list(OutboundMessage.objects.filter(contact=contact).values_list("status", flat=True)) == [
            "cancelled"]
    assert sandbox.received_texts(USER) == []


def _answer_in_thread(contact_id: int) -> None:
    try:
        with schema_context("alpha"):
            answer_contact(Contact.objects.get(pk=contact_id))
    finally:
        connection.close()


def _wait_for_conversation(contact) -> Conversation:
    for _ in range(100):
        conversation = Conversation.objects.filter(contact=contact).first()
        if conversation and Message.objects.filter(conversation=conversation).exists():
            return conversation
        time.sleep(0.02)
    raise AssertionError("the answer never started")
