"""Reads for the agent screens, with access checks that answer "not found" for missing and forbidden alike."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.urls import reverse

from conversations.models import Conversation, Message, OutboundMessage, TraceEvent
from conversations.selectors import media_file, message_deliveries, message_media, serialize_message
from conversations.services.reply_limits import reply_allowance
from conversations.vocabulary import Stage
from kb.selectors import search_knowledge
from tickets.csat_models import Survey
from tickets.labels.selectors import labels_by_conversation
from tickets.models import AgentProfile, Ticket
from tickets.teams.position import PRIORITY_RANK

ACTIVE_TICKET = (Ticket.Status.OPEN, Ticket.Status.ASSIGNED, Ticket.Status.PENDING_CUSTOMER)
OWNED = (Conversation.State.HUMAN,)


def agent_profile(user) -> AgentProfile | None:
    """The active agent profile of `user` in the current tenant schema, or None."""
    if not (user and user.is_authenticated and user.is_active):
        return None
    return AgentProfile.objects.filter(user_id=user.pk, is_active=True).select_related("user").first()


def visible_conversations(*, profile: AgentProfile) -> QuerySet[Conversation]:
    """Supervisors see every conversation; agents the queue and their own...

    (the conversation screen and the search alike: tickets/search/)"""
    conversations = Conversation.objects.select_related("contact__app", "agent")
    if not profile.is_supervisor:
        # ...and those whose ticket they hold after handing back, to resolve or close it
        # (services._require_owner allows exactly that).
        assigned = Ticket.objects.filter(conversation=OuterRef("pk"), assignee_id=profile.user_id)
        conversations = conversations.filter(Q(agent_id=profile.user_id) |
                                             Q(state=Conversation.State.WAITING_HUMAN) |
                                             Q(Exists(assigned)))
    return conversations


def access_conversation(*, profile: AgentProfile, conversation_id) -> Conversation | None:
    """The conversation if this agent may see it (visible_conversations), else None."""
    try:
        conversation_id = int(conversation_id)
    except (TypeError, ValueError):
        return None
    return visible_conversations(profile=profile).filter(pk=conversation_id).first()


def active_ticket(conversation: Conversation) -> Ticket | None:
    return Ticket.objects.filter(conversation=conversation, status__in=ACTIVE_TICKET).first() or \
        Ticket.objects.filter(conversation=conversation).order_by("-created_at").first()


def open_load(user_ids: list[int]) -> dict[int, int]:
    """How many conversations each agent owns right now."""
    rows = (Conversation.objects.filter(agent_id__in=user_ids, state__in=OWNED)
            .values("agent_id").annotate(n=Count("id")))
    load = {user_id: 0 for user_id in user_ids}
    load.update({row["agent_id"]: row["n"] for row in rows})
    return load


def conversation_summary(conversation: Conversation) -> dict:
    last = Message.objects.filter(conversation=conversation, author=Message.Author.CUSTOMER).order_by("-id").first()
    ticket = active_ticket(conversation)
    return {
        "id": conversation.pk,
        "customer": conversation.contact.display_name or conversation.contact.external_id,
        "channel": conversation.contact.app.get_kind_display(),
        "state": conversation.state,
        "agent": conversation.agent.get_username() if conversation.agent_id else None,
        "last_message": last.text[:100] if last else "",
        "waiting_since": ticket.created_at.isoformat() if ticket else None,
        "ticket": ticket.pk if ticket else None,
        "offered_to": ticket.offered_to_id if ticket else None,
        "priority": ticket.priority if ticket else None,
        # The team queue it waits in (tickets/teams/routing.py); the queue page filters and moves by it.
        "team": _team(ticket),
        "first_response_breached": ticket.first_response_breached if ticket else False,
        # WeCom servicers mode: answered in the WeCom client, read-only here (docs/KF_SESSIONS.md).
        "servicers_mode": conversation.contact.app.answered_in_wecom_client,
        "avatar_url": conversation.contact.avatar_url,
        "labels": labels_by_conversation([conversation.pk])[conversation.pk],
    }


def waiting_queue() -> list[dict]:
    """In queue order, as they are offered: most urgent first, then the longest waiting (tickets/teams/position.py)."""
    waiting = (Conversation.objects.filter(state=Conversation.State.WAITING_HUMAN)
               .select_related("contact__app", "agent").order_by("last_message_at"))
    rows = [conversation_summary(c) for c in waiting]
    return sorted(rows, key=lambda row: (PRIORITY_RANK.get(row["priority"], len(PRIORITY_RANK)),
                                         row["waiting_since"] or ""))


def _team(ticket: Ticket | None) -> dict | None:
    return {"id": ticket.team_id, "name": ticket.team.name} if ticket and ticket.team_id else None


def owned_by(user_id: int) -> list[dict]:
    mine = (Conversation.objects.filter(agent_id=user_id, state=Conversation.State.HUMAN)
            .select_related("contact__app", "agent").order_by("-last_message_at"))
    return [conversation_summary(c) for c in mine]


def conversation_detail(conversation: Conversation) -> dict:
    """Everything the conversation screen shows: history, ticket, suggestion and knowledge."""
    messages = list(Message.objects.filter(conversation__contact=conversation.contact).order_by("id"))
    deliveries = message_deliveries([m.pk for m in messages])
    media = message_media(messages)
    ticket = active_ticket(conversation)
    last_question = next((m for m in reversed(messages) if m.author == Message.Author.CUSTOMER), None)
    return {
        **conversation_summary(conversation),
        "limits": reply_allowance(contact=conversation.contact).as_dict(),
        "messages": [serialize_message(m, deliveries, media) | {"conversation": m.conversation_id,
                                                                "media_url": _media_url(conversation, m, media)}
                     for m in messages],
        "ticket": ticket_detail(ticket) if ticket else None,
        "knowledge": _knowledge_for(last_question),
        "suggestion": _suggestion_for(last_question),
    }


def _media_url(conversation: Conversation, message: Message, media: dict[int, dict]) -> str | None:
    if media.get(message.pk, {}).get("status") != "stored":
        return None
    return reverse("agent-media", args=[conversation.pk, message.pk])


def access_media(*, profile: AgentProfile, conversation_id, message_id):
    """The stored file of a message shown on a conversation screen the agent may see, with its content
    type: (FieldFile, content type), or None for a conversation or message that is missing, not
    theirs, of another contact, or without a stored file (all alike: "not found")."""
    conversation = access_conversation(profile=profile, conversation_id=conversation_id)
    if conversation is None:
        return None
    message = Message.objects.filter(pk=message_id, conversation__contact=conversation.contact).first()
    if message is None:
        return None
    file, content_type = media_file(message)
    return (file, content_type) if file else None


def delivered_first_responses(tickets) -> dict[int, datetime]:
    """{ticket id: when the first agent reply of its conversation since the ticket opened reached the
    customer}, for the tickets whose first response is delivered (a reply WeCom refused is none)."""
    by_conversation: dict[int, list[Ticket]] = defaultdict(list)
    for ticket in tickets:
        by_conversation[ticket.conversation_id].append(ticket)
    first: dict[int, datetime] = {}
    delivered = (OutboundMessage.objects.filter(conversation_id__in=list(by_conversation),
                                                author=Message.Author.AGENT, status=OutboundMessage.Status.SENT)
                 .order_by("sent_at").values_list("conversation_id", "sent_at"))
    for conversation_id, sent_at in delivered:
        for ticket in by_conversation[conversation_id]:
            if sent_at >= ticket.created_at:
                first.setdefault(ticket.pk, sent_at)
    return first


def ticket_detail(ticket: Ticket) -> dict:
    if ticket.first_responded_at is None:  # delivered since the scheduler last recorded it?
        ticket.first_responded_at = delivered_first_responses([ticket]).get(ticket.pk)
    return {
        "id": ticket.pk, "status": ticket.status, "status_label": ticket.get_status_display(),
        "priority": ticket.priority, "reason": ticket.get_reason_display(), "tags": ticket.tags,
        "assignee": ticket.assignee.get_username() if ticket.assignee_id else None,
        "team": _team(ticket),
        "first_response_due_at": _iso(ticket.first_response_due_at),
        "first_responded_at": _iso(ticket.first_responded_at),
        "resolution_due_at": _iso(ticket.resolution_due_at),
        "first_response_breached": ticket.first_response_breached,
        "resolution_breached": ticket.resolution_breached,
        "csat": _csat(ticket),
        # An integration's events have no user: the key that acted is named in the detail ("by").
        "events": [{"kind": e.kind, "actor": e.actor.get_username() if e.actor_id else e.detail.get("by"),
                    "detail": e.detail, "at": e.created_at.isoformat()}
                   for e in ticket.events.select_related("actor")],
    }


def _csat(ticket: Ticket) -> dict | None:
    """The ticket's satisfaction survey (tickets/csat.py) for the ticket panel; None when none was due."""
    survey = Survey.objects.filter(ticket=ticket).first()
    if survey is None:
        return None
    return {"status": survey.status, "score": survey.score, "label": survey.label,
            "scale": int(survey.scale), "reason": survey.reason, "answered_at": _iso(survey.answered_at)}


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _knowledge_for(question: Message | None) -> list[dict]:
    if question is None:
        return []
    return [{"id": m.entry.pk, "question": m.entry.question, "answer": m.entry.answer, "score": round(m.score, 3)}
            for m in search_knowledge(question.text, limit=3)]


def _suggestion_for(question: Message | None) -> str:
    """What the AI would say: its draft for this message (made when a human owns the conversation),
    else the best knowledge entry."""
    if question is None:
        return ""
    if question.inbound_id:
        drafted = (TraceEvent.objects.filter(inbound_id=question.inbound_id,
                                             stage__in=[Stage.SUGGESTION, Stage.SUPPRESSED])
                   .order_by("-id").values_list("detail", flat=True).first())
        if drafted and drafted.get("suggestion"):
            return drafted["suggestion"]
    knowledge = _knowledge_for(question)
    return knowledge[0]["answer"] if knowledge else ""
