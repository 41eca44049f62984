"""Fixtures of the human side: alpha's app and conversations the AI handed off.

Agents are made with testing.factories.AgentProfileFactory (inside the tenant's schema_context).
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings, InboundMessage, WeComApp
from conversations.services.handoff import hand_off_to_human
from conversations.services.outbound import deliver_for_contact
from testing.factories import ConversationFactory, InboundMessageFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID
from tickets.models import Ticket


@pytest.fixture
def alpha_app(tenant_a) -> WeComApp:
    with schema_context("alpha"):
        return WeComAppFactory()


@pytest.fixture
def handed_off():
    """handed_off(app, user="zhangsan"): a conversation the AI handed off (waiting_human, with its ticket),
    made in the current schema through the handoff itself."""

    def hand_off(app: WeComApp, user: str = "zhangsan") -> Conversation:
        conversation = ConversationFactory(contact__app=app, contact__external_id=user)
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED,
                          desk=DeskSettings.current())
        return conversation

    return hand_off


@pytest.fixture
def kf_handed_off(tenant_a, sandbox):
    """kf_handed_off(customer, text): a 微信客服 customer wrote `text` (the WeCom session is open in the
    sandbox, the message stored as ours) and the AI handed off; the handoff message is delivered.
    Made in alpha's schema, which the caller is in."""

    def hand_off(customer: str, text: str = "我要找人工") -> Conversation:
        sandbox.queue_kf_text(CORP_ID, OPEN_KFID, customer, text, notify=False)  # opens the WeCom session
        conversation = ConversationFactory(contact__app=WeComAppFactory(kind="kf"), contact__external_id=customer)
        contact = conversation.contact
        InboundMessageFactory(app=contact.app, sender=customer, open_kfid=contact.open_kfid, origin=3,
                              content=text, sent_at=timezone.now(), status=InboundMessage.Status.PROCESSED)
        hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
        deliver_for_contact(contact.pk)  # the handoff message
        return conversation

    return hand_off
