"""Fixtures of the human side: alpha's app and conversations the AI handed off.

Agents are made with testing.factories.AgentProfileFactory (inside the tenant's schema_context).
"""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings, WeComApp
from conversations.services.handoff import hand_off_to_human
from testing.factories import ConversationFactory, WeComAppFactory
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
