"""Inactivity auto-close: a conversation an agent owns, where the customer stopped answering, gets a warning
and, if the customer still says nothing, is closed the way an agent closes it (ticket closed, the closing
message; on 微信客服 the WeCom session ended first). Settings: DeskSettings.inactivity_* (limits in
conversations/services/inactivity.py); docs/KF_SESSIONS.md, "Inactivity auto-close".

Which conversations: state `human` only, and only while the ball is in the customer's court (the latest
message is ours). A customer waiting for an agent (`waiting_human`, a ticket waiting for the morning) is never
closed for their own silence; bot conversations keep their silent idle close (conversation_idle_minutes,
applied when the customer next writes: there is nobody to warn them and nothing to close on the human side).

Silence counts from the conversation's latest message. The warning is a message too; the conversation keeps
when it was given (`inactivity_warned_at`, the sweep's clock) and the id of the then latest message (the warning,
or the message it could not follow), and the warning stands while that is still the latest message. Any later
message (the customer's, or an agent's) starts a new silence.

Idempotent: each conversation is settled under its row lock (skip_locked: a second scheduler passes it by),
with the conditions read again under the lock; the warning's ledger rows are keyed by the message it follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from django.db import connection, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from conversations.models import Conversation, DeskSettings, Message, OutboundMessage, WeComApp
from conversations.realtime import conversation_changed
from conversations.services.conversations import record_message
from conversations.services.inactivity import WINDOW_MARGIN
from conversations.services.outbound import queue_outbound, split_text
from conversations.services.reply_limits import KF_REPLY_WINDOW, reply_allowance
from tickets.metrics import INACTIVITY_ACTIONS
from tickets.services import Integration, _active_ticket, _event, close_conversation

logger = structlog.get_logger("tickets.inactivity")
AUTO_CLOSE = Integration(label="auto-close:inactivity")  # the timeline's "by" for the close
BATCH = 200  # conversations settled per sweep; the rest wait for the next minute
CUSTOMER = Message.Author.CUSTOMER
PULL_SLACK = timedelta(hours=2)


@dataclass
class SweepResult:
    warned: list[int] = field(default_factory=list)  # conversation ids
    closed: list[int] = field(default_factory=list)


def sweep_inactive(*, now: datetime | None = None) -> SweepResult:
    """Warn and close what is due in the current tenant (the scheduler's job, every minute)."""
    desk = DeskSettings.current()
    result = SweepResult()
    if not desk.inactivity_close:
        return result
    now = now or timezone.now()
    warn_after = timedelta(minutes=desk.inactivity_warn_minutes)
    close_after = timedelta(minutes=desk.inactivity_close_minutes)
    latest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-id")
    # The partial index conversation_human_idle holds just the conversations agents own; the subqueries read
    # each one's latest messages through the message table's conversation index.
    due = (Conversation.objects.filter(state=Conversation.State.HUMAN)
           .annotate(last_author=Subquery(latest.values("author")[:1]),
                     customer_at=Subquery(latest.filter(author=CUSTOMER).values("created_at")[:1]))
           .exclude(last_author=CUSTOMER)
           .filter(Q(last_message_at__lte=now - warn_after)
                   | Q(inactivity_warned_at__isnull=False, inactivity_warned_at__lte=now - close_after)
                   # 微信客服: the window may close before the usual warning time (settle() reads the exact
                   # window from the customer's inbound message, which WeCom may have sent well before we stored it)
                   | Q(customer_at__lte=now - (KF_REPLY_WINDOW - close_after - WINDOW_MARGIN - PULL_SLACK)))
           .order_by("last_message_at").values_list("pk", flat=True)[:BATCH])
    for conversation_id in due:
        outcome = settle(conversation_id=conversation_id, desk=desk, now=now)
        if outcome == "warned":
            result.warned.append(conversation_id)
        elif outcome == "closed":
            result.closed.append(conversation_id)
    return result


def settle(*, conversation_id: int, desk: DeskSettings, now: datetime) -> str | None:
    """Warn or close one conversation if it is due: "warned", "closed" or None (not due, or busy)."""
    warn_after = timedelta(minutes=desk.inactivity_warn_minutes)
    close_after = timedelta(minutes=desk.inactivity_close_minutes)
    with transaction.atomic():
        conversation = (Conversation.objects.select_for_update(skip_locked=True, of=("self",))
                        .select_related("contact__app")
                        .filter(pk=conversation_id, state=Conversation.State.HUMAN).first())
        if conversation is None:  # closed or handed back meanwhile, or another scheduler has it now
            return None
        if conversation.contact.app.answered_in_wecom_client:
            return None  # WeCom servicers mode: WeCom's servicers hold the session, WeCom ends it
        last = Message.objects.filter(conversation=conversation).order_by("-id").values_list("pk", "author").first()
        if last is None or last[1] == CUSTOMER:
            return None  # the agent owes the customer an answer, not the other way round
        warned_at = conversation.inactivity_warned_at
        if warned_at is not None and conversation.inactivity_warned_message_id == last[0]:
            if now - warned_at < close_after:
                return None
            return _close(conversation, reason="silent_after_warning")
        window_end = _window_end(conversation, now)
        if window_end is not None and now >= window_end - WINDOW_MARGIN:
            # Too late to warn (the sweep was down, or the agent wrote at the window's edge): close now.
            return _close(conversation, reason="window_closing")
        warn_at = conversation.last_message_at + warn_after
        if window_end is not None:  # the close must still fit in the window: warn earlier if need be
            warn_at = min(warn_at, window_end - close_after - WINDOW_MARGIN)
        if now < warn_at:
            return None
        return _warn(conversation, desk=desk, after_message_id=last[0], now=now)


def _window_end(conversation: Conversation, now: datetime) -> datetime | None:
    """微信客服: when WeCom stops accepting replies (48 h after the customer's last message)."""
    if conversation.contact.app.kind != WeComApp.Kind.KF:
        return None
    return reply_allowance(contact=conversation.contact, now=now).window_ends_at or now


def _warn(conversation: Conversation, *, desk: DeskSettings, after_message_id: int, now: datetime) -> str:
    text = desk.inactivity_warning.strip()
    allowance = reply_allowance(contact=conversation.contact, parts=len(split_text(text)), now=now)
    ticket = _active_ticket(conversation)
    latest_id = after_message_id
    if allowance.refusal is None:
        message = record_message(conversation=conversation, author=Message.Author.NOTICE, text=text)
        cause = f"inactivity:{conversation.pk}:{after_message_id}"
        queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                       author=Message.Author.NOTICE, text=text, cause=cause)
        latest_id = message.pk
        # A notice is guarded like a bot answer (cancelled while humans own the conversation); this one is
        # sent on the human side's behalf.
        OutboundMessage.objects.filter(idempotency_key__startswith=f"{cause}:").update(survives_handoff=True)
    # Not sendable (微信客服: the customer's 5 replies used up): the close still waits its minutes after now.
    conversation.inactivity_warned_at, conversation.inactivity_warned_message_id = now, latest_id
    conversation.save(update_fields=["inactivity_warned_at", "inactivity_warned_message_id"])
    _event(ticket, None, "inactivity_warned", sent=allowance.refusal is None,
           refusal=allowance.refusal.value if allowance.refusal else "")
    conversation_changed(conversation.pk, {"type": "ticket"})  # the timeline on open screens
    INACTIVITY_ACTIONS.labels(tenant=connection.schema_name, action="warned").inc()
    logger.info("inactivity.warned", conversation=conversation.pk, ticket=ticket.pk,
                sent=allowance.refusal is None, refusal=str(allowance.refusal or ""))
    return "warned"


def _close(conversation: Conversation, *, reason: str) -> str:
    ticket = _active_ticket(conversation)
    _event(ticket, None, "inactivity_closed", reason=reason)
    close_conversation(conversation_id=conversation.pk, profile=AUTO_CLOSE)
    INACTIVITY_ACTIONS.labels(tenant=connection.schema_name, action="closed").inc()
    logger.info("inactivity.closed", conversation=conversation.pk, ticket=ticket.pk, reason=reason)
    return "closed"
