"""The profile panel of the conversation screen: the contact's WeCom profile (name, avatar, cached by
conversations/services/profiles.py), custom attributes and notes, and its other conversations, each linked only
when the agent may open it (the same access check as the screen's)."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.urls import reverse

from conversations.models import Conversation, Message
from tickets.labels.selectors import labels_by_conversation
from tickets.models import AgentProfile
from tickets.selectors import access_conversation

PAST_CONVERSATIONS = 20
FIRST_LINE_LENGTH = 100


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def profile_panel(*, profile: AgentProfile, conversation: Conversation) -> dict:
    contact = conversation.contact
    return {
        "contact": contact.pk,
        "name": contact.display_name or contact.external_id,
        "external_id": contact.external_id,
        "avatar_url": contact.avatar_url,
        "channel": contact.app.get_kind_display(),
        "app": contact.app.name,
        "notes": contact.notes,
        "attributes": contact.attributes or {},
        "fetched_at": _iso(contact.profile_fetched_at),
        "checked_at": _iso(contact.profile_checked_at),
        "error": contact.profile_error,
        "past": past_conversations(profile=profile, conversation=conversation),
    }


def past_conversations(*, profile: AgentProfile, conversation: Conversation) -> list[dict]:
    """The contact's other conversations, newest first: when, state, labels, the customer's first line."""
    first_line = (Message.objects.filter(conversation=OuterRef("pk"), author=Message.Author.CUSTOMER)
                  .order_by("id").values("text")[:1])
    rows = list(Conversation.objects.filter(contact_id=conversation.contact_id).exclude(pk=conversation.pk)
                .annotate(first_line=Subquery(first_line)).order_by("-started_at", "-id")[:PAST_CONVERSATIONS])
    labels = labels_by_conversation([row.pk for row in rows])
    return [{
        "id": row.pk,
        "started_at": _iso(row.started_at),
        "closed_at": _iso(row.closed_at),
        "state": row.state,
        "labels": labels[row.pk],
        "first_line": (row.first_line or "")[:FIRST_LINE_LENGTH],
        # At most PAST_CONVERSATIONS checks, through the one rule the screen itself applies.
        "url": (reverse("agent-conversation", args=[row.pk])
                if access_conversation(profile=profile, conversation_id=row.pk) else None),
    } for row in rows]
