"""Fixtures of the human side: agents of tenant alpha (and beta) and a handed-off conversation."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation, DeskSettings
from conversations.services.handoff import hand_off_to_human
from conversations.tests.conftest import make_app, sandbox, sandbox_server  # noqa: F401  (shared fixtures)
from tickets.models import AgentProfile, Ticket


def make_agent(schema: str, username: str, *, role: str = AgentProfile.Role.AGENT, cap: int = 5) -> AgentProfile:
    with schema_context(schema):
        user = get_user_model().objects.create_user(username=username, password="Agent-password-1", is_staff=True)
        return AgentProfile.objects.create(user=user, role=role, max_concurrent=cap, display_name=username)


def handed_off(app, user: str = "zhangsan") -> Conversation:
    """A conversation the AI handed off (waiting_human, with its ticket)."""
    contact = Contact.objects.create(app=app, external_id=user)
    conversation = Conversation.objects.create(contact=contact)
    hand_off_to_human(conversation=conversation, reason=Ticket.Reason.CUSTOMER_ASKED, desk=DeskSettings.current())
    return conversation


@pytest.fixture
def alpha_app(tenant_a):
    with schema_context("alpha"):
        return make_app("alpha")
