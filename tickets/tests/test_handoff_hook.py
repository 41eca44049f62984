"""The one hook between the message path and the human side: tickets registers its receiver at
start-up; the message path hands off through it and never imports tickets."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings, Message, OutboundMessage
from conversations.services import handoff
from conversations.vocabulary import HandoffReason
from testing.factories import AgentProfileFactory, ConversationFactory
from tickets import presence
from tickets.models import Ticket
from tickets.services import receive_handoff

pytestmark = pytest.mark.django_db


def test_tickets_registers_its_receiver_at_start_up():
    assert handoff._receiver is receive_handoff


def test_every_reason_the_pipeline_gives_is_a_ticket_reason():
    assert set(HandoffReason.values) <= set(Ticket.Reason.values)


def test_a_handoff_opens_a_ticket_and_says_so_in_its_receipt(alpha_app):
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=alpha_app)
        receipt = handoff.hand_off_to_human(conversation=conversation, reason=HandoffReason.AI_CANNOT_ANSWER,
                                            desk=DeskSettings.current())

        ticket = Ticket.objects.get(conversation=conversation)
        assert (receipt.ticket_id, receipt.offered, ticket.reason) == (ticket.pk, False, "ai_cannot_answer")
        # Nobody is online: the customer hears the handoff message and, once, that we will answer soon.
        [message] = Message.objects.filter(conversation=conversation, author=Message.Author.HANDOFF)
        assert receipt.waiting_notice and message.text.endswith(receipt.waiting_notice)
        assert conversation.state == Conversation.State.WAITING_HUMAN


@pytest.fixture
def online_agent(alpha_app):
    with schema_context("alpha"):
        agent = AgentProfileFactory()
    presence.touch(schema="alpha", user_id=agent.user_id, socket="test-socket")
    yield agent
    presence.drop(schema="alpha", user_id=agent.user_id, socket="test-socket")


def test_an_online_agent_is_offered_the_conversation_and_no_waiting_notice_is_sent(alpha_app, online_agent):
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=alpha_app)
        receipt = handoff.hand_off_to_human(conversation=conversation, reason=HandoffReason.CUSTOMER_ASKED,
                                            desk=DeskSettings.current())

        assert (receipt.offered, receipt.waiting_notice) == (True, "")
        assert Ticket.objects.get(pk=receipt.ticket_id).offered_to_id == online_agent.user_id
        [message] = Message.objects.filter(conversation=conversation, author=Message.Author.HANDOFF)
        assert message.text == DeskSettings.current().handoff_message


def test_without_a_receiver_the_handoff_is_refused_and_changes_nothing(alpha_app, monkeypatch):
    monkeypatch.setattr(handoff, "_receiver", None)
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=alpha_app)
        with pytest.raises(ImproperlyConfigured, match="handoff receiver"):
            handoff.hand_off_to_human(conversation=conversation, reason=HandoffReason.CUSTOMER_ASKED,
                                      desk=DeskSettings.current())
        conversation.refresh_from_db()
        assert conversation.state == Conversation.State.BOT
        assert not Ticket.objects.exists() and not OutboundMessage.objects.exists()
