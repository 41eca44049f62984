"""Canned replies on the agent screens: which ones an agent may use, their text filled for a conversation,
and sending one (the edited text, then its attachment)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils.translation import gettext as _

from conversations.models import Conversation, Message
from tickets.canned.models import CannedReply, fill
from tickets.models import AgentProfile
from tickets.services import ActionRefused, reply_as_agent, send_attachment_as_agent


def available_to(profile: AgentProfile) -> QuerySet[CannedReply]:
    """The tenant's shared replies and this agent's own (never a colleague's own), enabled ones only."""
    return CannedReply.objects.filter(Q(owner__isnull=True) | Q(owner_id=profile.user_id), enabled=True)


def replies_for(*, profile: AgentProfile, conversation: Conversation) -> list[dict]:
    """What the "/" list shows, the text already filled for this customer and this agent; the agent's own
    replies first, so one of theirs comes before a shared one with the same shortcode."""
    contact = conversation.contact
    customer_name = contact.display_name or contact.external_id
    rows = available_to(profile).order_by(F("owner_id").asc(nulls_last=True), "shortcode", "id")
    return [{"id": reply.pk, "shortcode": reply.shortcode, "title": reply.title, "own": reply.owner_id is not None,
             "text": fill(reply.text, customer_name=customer_name, agent_name=profile.name),
             "attachment": ({"name": reply.attachment_name, "kind": reply.attachment_kind}
                            if reply.attachment else None)}
            for reply in rows]


def send_canned_reply(*, conversation_id: int, profile: AgentProfile, reply_id, text: str,
                      origin: str = "") -> Message:
    """The agent's (possibly edited) text of a canned reply, then its attachment: both go, or neither (a
    refusal of either, e.g. WeCom's reply limits, sends nothing). Counts one use of the reply."""
    try:
        reply = available_to(profile).filter(pk=int(reply_id)).first()
    except (TypeError, ValueError):
        reply = None
    if reply is None:
        raise ActionRefused(_("This canned reply is not available."), code="canned_reply_unavailable")
    with transaction.atomic():
        message = reply_as_agent(conversation_id=conversation_id, profile=profile, text=text, origin=origin)
        if reply.attachment:
            send_attachment_as_agent(conversation_id=conversation_id, profile=profile, file=reply.attachment,
                                     origin=origin)
        CannedReply.objects.filter(pk=reply.pk).update(usage_count=F("usage_count") + 1)
    return message
