"""Races: a human taking over while an AI answer is in flight silences it; a contact being answered loses nothing.

These tests commit (other threads must see the rows), so they are not in a test transaction.
"""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.ai.breaker import reset_breaker
from conversations.ai.models import AIProvider
from conversations.models import Contact, Conversation, InboundMessage, Message, OutboundMessage
from conversations.services.answering import answer_contact, answer_pending
from conversations.services.conversations import change_state
from conversations.services.outbound import deliver_for_contact
from testing.factories import AIProviderFactory
from testing.threads import run_in_threads
from testing.waiting import wait_until
from testing.wecom import customer_says

USER = "zhangsan"


@pytest.fixture
def committed_world(committed_app, sandbox, redis_client):
    for key in redis_client.scan_iter("LIMITS*"):
        redis_client.delete(key)
    app = committed_app("alpha", agent_id=5151)
    with schema_context("alpha"):
        reset_breaker("alpha")
        provider = AIProviderFactory(base_url=sandbox.model_base_url)
    yield app
    with schema_context("alpha"):
        AIProvider.objects.filter(pk=provider.pk).delete()


@pytest.mark.live
def test_a_handoff_committed_while_the_model_is_thinking_silences_the_ai(committed_world, sandbox):
    sandbox.model_configure(latency=1.0)
    with schema_context("alpha"):
        customer_says(committed_world, "你好")
        contact = Contact.objects.get(app=committed_world, external_id=USER)

    def agent_takes_over() -> None:
        with schema_context("alpha"):
            conversation = _wait_for_conversation(contact)
            change_state(conversation=conversation, to=Conversation.State.WAITING_HUMAN)

    run_in_threads(lambda: _answer(contact.pk), agent_takes_over, timeout=20)
    with schema_context("alpha"):
        assert deliver_for_contact(contact.pk) is None
        assert OutboundMessage.objects.filter(contact=contact).count() == 0
    assert sandbox.received_texts(USER) == []


def test_a_handoff_committed_after_the_answer_was_queued_cancels_it_at_send_time(committed_world, sandbox):
    with schema_context("alpha"):
        customer_says(committed_world, "你好")
        contact = Contact.objects.get(app=committed_world, external_id=USER)
        assert answer_contact(contact, deliver=False) is None  # queued; its delivery job has not run yet
        conversation = Conversation.objects.get(contact=contact)
        change_state(conversation=conversation, to=Conversation.State.WAITING_HUMAN)
        deliver_for_contact(contact.pk)
        assert list(OutboundMessage.objects.filter(contact=contact).values_list("status", flat=True)) == [
            "cancelled"]
    assert sandbox.received_texts(USER) == []


def _answer(contact_id: int) -> None:
    with schema_context("alpha"):
        answer_contact(Contact.objects.get(pk=contact_id))


def _wait_for_conversation(contact) -> Conversation:
    """The conversation, once the answer has started (the customer's message is in its transcript)."""

    def started() -> Conversation | None:
        conversation = Conversation.objects.filter(contact=contact).first()
        return conversation if conversation and Message.objects.filter(conversation=conversation).exists() else None

    return wait_until(started, timeout=5, interval=0.02, message="the answer to start")


@pytest.mark.live
def test_a_message_arriving_while_its_contact_is_being_answered_is_answered_by_the_lock_holder(
        committed_world, sandbox):
    """No retry polling: a job that finds the contact locked stops, and the holder's next claim takes its message."""
    sandbox.model_configure(latency=1.0)
    with schema_context("alpha"):
        customer_says(committed_world, "echo:1 first")
        contact = Contact.objects.get(app=committed_world, external_id=USER)

    def second_message_arrives() -> InboundMessage:
        with schema_context("alpha"):
            _wait_for_conversation(contact)  # the holder is waiting for the model
            second = customer_says(committed_world, "echo:2 second")
            assert answer_pending() is None  # this job's contact is locked: it leaves the message to the holder
            second.refresh_from_db()
            assert second.status == InboundMessage.Status.PENDING
            return second

    _, second = run_in_threads(lambda: _answer(contact.pk), second_message_arrives, timeout=20)
    with schema_context("alpha"):
        second.refresh_from_db()
        assert second.status == InboundMessage.Status.PROCESSED
        answers = OutboundMessage.objects.filter(contact=contact).order_by("id").values_list("content", flat=True)
        assert [text.rstrip("\u200b") for text in answers] == ["1 first", "2 second"]
