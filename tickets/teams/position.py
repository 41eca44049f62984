"""A waiting customer's place in their team's queue, and the notices that tell them ("您前面还有 N 位客户，请稍候。").

The queue of a team (or of the tickets without a team) is its open tickets whose conversation waits for a human,
most urgent first, then oldest first; a customer's place is the number of tickets ahead of theirs. Servicers-mode
conversations (WeCom's own pool: docs/KF_SESSIONS.md) are in no queue of ours.

When a customer is told (docs/AGENTS.md, "Queue position"), sparingly, because on 微信客服 every notice is one of
the 5 replies WeCom allows per customer message:
1. with the handoff message, when the ticket is queued (no agent could be offered it): the same message, so it
   costs no extra reply (`handoff_notice`);
2. afterwards by the scheduler's sweep (`tell_queue_positions`), only when the place dropped by the tenant's step
   since the customer was last told, or reached 1; at most once per the tenant's interval; never the customer's
   last reply left (an agent needs it); never outside business hours (nobody moves then).
The ledger rows are keyed by ticket and place, so a second scheduler or a retry never tells a place twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from django.db import transaction
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from conversations.models import Conversation, Message, OutboundMessage
from conversations.realtime import conversation_changed
from conversations.services.conversations import record_message
from conversations.services.outbound import queue_outbound, split_text
from conversations.services.reply_limits import reply_allowance
from tickets.business_hours_services import current_schedule
from tickets.models import Ticket, TicketEvent, TicketSettings
from tickets.webhooks import emit_ticket_event

logger = structlog.get_logger("tickets.queue_position")
PRIORITY_RANK = {Ticket.Priority.URGENT: 0, Ticket.Priority.HIGH: 1, Ticket.Priority.NORMAL: 2,
                 Ticket.Priority.LOW: 3}
# A notice must leave the customer at least this many of WeCom's replies: the agent who takes them needs one.
REPLIES_KEPT_FOR_AGENTS = 1


def rank_expression() -> Case:
    return Case(*(When(priority=priority, then=Value(rank)) for priority, rank in PRIORITY_RANK.items()),
                default=Value(len(PRIORITY_RANK)), output_field=IntegerField())


def in_queue_order(tickets: QuerySet[Ticket]) -> QuerySet[Ticket]:
    return tickets.annotate(queue_rank=rank_expression()).order_by("queue_rank", "created_at", "id")


def waiting_tickets() -> QuerySet[Ticket]:
    """Every ticket in a queue of ours, in queue order (per team: filter by team)."""
    return in_queue_order(
        Ticket.objects.filter(status=Ticket.Status.OPEN, conversation__state=Conversation.State.WAITING_HUMAN)
        .exclude(conversation__contact__app__kind="kf", conversation__contact__app__servicers_mode=True))


def queue_position(ticket: Ticket) -> int:
    """How many tickets are ahead of `ticket` in its team's queue."""
    rank = PRIORITY_RANK.get(ticket.priority, len(PRIORITY_RANK))
    ahead = (Q(queue_rank__lt=rank) | Q(queue_rank=rank, created_at__lt=ticket.created_at)
             | Q(queue_rank=rank, created_at=ticket.created_at, id__lt=ticket.pk))
    same_team = Q(team_id=ticket.team_id) if ticket.team_id else Q(team__isnull=True)
    return waiting_tickets().filter(same_team).filter(ahead).exclude(pk=ticket.pk).count()


def position_text(template: str, position: int) -> str:
    return template.replace("{position}", str(position))


def handoff_notice(*, ticket: Ticket, settings: TicketSettings | None = None) -> str:
    """The place, for the handoff message of a ticket that was queued ("" when nobody is ahead or notices are
    off); recorded as told, since it goes out with that message."""
    settings = settings or TicketSettings.current()
    if not settings.queue_position_notices or _answered_in_wecom_client(ticket):
        return ""
    position = queue_position(ticket)
    _told(ticket, position, timezone.now())
    return position_text(settings.queue_position_message, position) if position > 0 else ""


@dataclass
class NoticeRound:
    told: dict[int, int] = field(default_factory=dict)  # ticket id -> place told
    kept_back: dict[int, str] = field(default_factory=dict)  # ticket id -> why not (the reply allowance)


def tell_queue_positions(*, now: datetime | None = None) -> NoticeRound:
    """The sweep: tell the customers whose place moved meaningfully (the scheduler, per tenant)."""
    now = now or timezone.now()
    result = NoticeRound()
    settings = TicketSettings.current()
    if not settings.queue_position_notices or not current_schedule().is_open(now):
        return result
    queued = waiting_tickets().filter(offered_to__isnull=True).values_list("pk", flat=True)
    for ticket_id in list(queued):
        with transaction.atomic():
            _settle(ticket_id, settings=settings, now=now, result=result)
    return result


def _settle(ticket_id: int, *, settings: TicketSettings, now: datetime, result: NoticeRound) -> None:
    # A second scheduler passes a ticket being settled by (skip_locked); the conditions are read again under it.
    ticket = (Ticket.objects.select_for_update(skip_locked=True, of=("self",))
              .select_related("conversation__contact__app").filter(pk=ticket_id, status=Ticket.Status.OPEN,
                                                                   offered_to__isnull=True).first())
    if ticket is None or ticket.conversation.state != Conversation.State.WAITING_HUMAN:
        return
    position = queue_position(ticket)
    if not _worth_telling(ticket, position, settings=settings, now=now):
        return
    conversation = ticket.conversation
    text = position_text(settings.queue_position_message, position)
    parts = len(split_text(text))
    allowance = reply_allowance(contact=conversation.contact, parts=parts + REPLIES_KEPT_FOR_AGENTS, now=now)
    if allowance.refusal is not None or (allowance.per_minute_left is not None and allowance.per_minute_left < parts):
        result.kept_back[ticket.pk] = str(allowance.refusal or "per_minute")
        logger.info("queue_position.kept_back", ticket=ticket.pk, position=position,
                    refusal=result.kept_back[ticket.pk])
        return  # told later, if the customer writes again (a new allowance) and the place still matters
    message = record_message(conversation=conversation, author=Message.Author.NOTICE, text=text)
    cause = f"queue:{ticket.pk}:{position}"
    queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                   author=Message.Author.NOTICE, text=text, cause=cause)
    # A notice is guarded like a bot answer (cancelled while humans own the conversation); this one is sent on
    # the human side's behalf, to a customer who waits for them.
    OutboundMessage.objects.filter(idempotency_key__startswith=f"{cause}:").update(survives_handoff=True)
    _told(ticket, position, now)
    detail = {"position": position, "team": ticket.team.name if ticket.team_id else None}
    TicketEvent.objects.create(ticket=ticket, kind="queue_position", detail=detail)
    emit_ticket_event(ticket=ticket, kind="queue_position", detail=detail)
    conversation_changed(conversation.pk, {"type": "ticket"})
    result.told[ticket.pk] = position
    logger.info("queue_position.told", ticket=ticket.pk, position=position)


def _worth_telling(ticket: Ticket, position: int, *, settings: TicketSettings, now: datetime) -> bool:
    """Meaningful (first time queued with someone ahead, dropped by the step, reached 1) and not too soon."""
    if position < 1 or _answered_in_wecom_client(ticket):
        return False
    last = ticket.queue_position_told
    if last is not None:
        moved = last - position >= max(settings.queue_position_step, 1) or (position == 1 and last > 1)
        if not moved:
            return False
    told_at = ticket.queue_position_told_at
    return told_at is None or now - told_at >= timedelta(minutes=settings.queue_position_interval_minutes)


def _told(ticket: Ticket, position: int, now: datetime) -> None:
    ticket.queue_position_told, ticket.queue_position_told_at = position, now
    Ticket.objects.filter(pk=ticket.pk).update(queue_position_told=position, queue_position_told_at=now)


def _answered_in_wecom_client(ticket: Ticket) -> bool:
    return ticket.conversation.contact.app.answered_in_wecom_client
