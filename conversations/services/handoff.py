"""Handing a conversation to humans: the one hook between the message path and the human side.

The message path decides *that* a conversation goes to humans and tells the customer; the human
side decides *who* takes it (a ticket, offered to an agent). The human side registers its
receivers when Django starts (tickets/apps.py); the message path never imports it, so the layers
go one way (docs/ARCHITECTURE.md).

Two receivers: the handoff itself, and, for 微信客服 accounts in WeCom servicers mode
(docs/KF_SESSIONS.md), what happens to the WeCom session afterwards (the handoff message is out,
so the session may go to WeCom's servicers; a servicer took it, passed it on, ended it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from django.core.exceptions import ImproperlyConfigured

from conversations.models import Conversation, DeskSettings, InboundMessage, Message, OutboundMessage
from conversations.services.conversations import change_state, record_message
from conversations.services.outbound import WAITING, queue_outbound
from conversations.services.webhooks import EventType, conversation_data, emit
from conversations.vocabulary import HandoffReason


@dataclass(frozen=True, kw_only=True)
class HandoffReceipt:
    """What the human side did with a handoff."""

    ticket_id: int
    offered: bool  # an agent was offered the conversation; False: nobody is online
    waiting_notice: str = ""  # joins the handoff message when nobody is online (once per wait)


class HandoffReceiver(Protocol):
    def __call__(self, *, conversation: Conversation, reason: HandoffReason, subject: str) -> HandoffReceipt: ...


_receiver: HandoffReceiver | None = None


def register_handoff_receiver(receiver: HandoffReceiver) -> None:
    """Called once at start-up by the human side."""
    global _receiver
    _receiver = receiver


def hand_off_to_human(*, conversation: Conversation, reason: HandoffReason, desk: DeskSettings,
                      inbound: InboundMessage | None = None) -> HandoffReceipt:
    """The answer pipeline hands off (customer asked, model cannot answer, repeated fallbacks).

    Inside the caller's transaction, with `conversation` locked. The caller records the handoff in
    the message's trace (with the receipt's ticket), in order with the rest of its trace.

    The handoff message goes through the outbound ledger like any other message; for
    微信客服 the delivery job moves the WeCom session to the human queue once it is sent
    (in the queue, kf/send_msg is no longer allowed).
    """
    if _receiver is None:
        raise ImproperlyConfigured("No handoff receiver is registered: is the tickets app installed?")
    if conversation.state == Conversation.State.BOT:
        change_state(conversation=conversation, to=Conversation.State.WAITING_HUMAN)
    # Answers to the customer's earlier messages, still queued, lead up to this handoff: deliver them.
    OutboundMessage.objects.filter(conversation=conversation, status__in=WAITING).update(survives_handoff=True)
    receipt = _receiver(conversation=conversation, reason=reason, subject=inbound.content[:200] if inbound else "")
    emit(event=EventType.CONVERSATION_HANDED_OFF, data=lambda: {
        **conversation_data(conversation), "reason": str(reason), "ticket_id": receipt.ticket_id,
        "in_reply_to": inbound.pk if inbound else None})
    # One message per customer message: "nobody is online" joins the handoff message.
    text = "\n".join(filter(None, [desk.handoff_message, receipt.waiting_notice]))
    message = record_message(conversation=conversation, author=Message.Author.HANDOFF, text=text)
    cause = f"inbound:{inbound.pk}" if inbound else f"handoff:{conversation.pk}:{message.pk}"
    queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                   author=Message.Author.HANDOFF, text=text, cause=cause,
                   trace_id=inbound.trace_id if inbound else None)
    return receipt


# --- WeCom servicers mode: the session events the human side follows -------------------------------

class KfSessionChange(StrEnum):
    HANDOFF_DELIVERED = "handoff_delivered"  # our handoff message is out (sent or dead): transfer now
    TAKEN = "taken"  # a servicer took the session from WeCom's pool
    TRANSFERRED = "transferred"  # passed on to another servicer
    ENDED = "ended"  # the session ended in the WeCom client
    RETAKEN = "retaken"  # a servicer took up an ended or transferred session again


# session_status_change's change_type (docs/WECOM_PROTOCOL.md 4.2: the values are UNCONFIRMED).
KF_CHANGE_TYPES = {1: KfSessionChange.TAKEN, 2: KfSessionChange.TRANSFERRED, 3: KfSessionChange.ENDED,
                   4: KfSessionChange.RETAKEN}


@dataclass(frozen=True, kw_only=True)
class KfSessionEvent:
    """Something happened to the WeCom session of a conversation of a servicers-mode account."""

    conversation: Conversation
    change: KfSessionChange
    servicer_userid: str = ""  # the servicer who has the session now (taken, transferred, re-taken)
    old_servicer_userid: str = ""
    inbound_id: int | None = None  # the pulled session_status_change row, if any


class KfSessionReceiver(Protocol):
    def __call__(self, *, event: KfSessionEvent) -> None: ...


_session_receiver: KfSessionReceiver | None = None


def register_kf_session_receiver(receiver: KfSessionReceiver) -> None:
    """Called once at start-up by the human side."""
    global _session_receiver
    _session_receiver = receiver


def notify_kf_session(*, event: KfSessionEvent) -> None:
    """Tell the human side. A pulled session_status_change calls this inside its transaction with the
    conversation locked; HANDOFF_DELIVERED comes from a job outside any transaction (the receiver
    calls WeCom, then records what WeCom said)."""
    if _session_receiver is None:
        raise ImproperlyConfigured("No 微信客服 session receiver is registered: is the tickets app installed?")
    _session_receiver(event=event)


def handoff_delivered(*, conversation_id: int) -> None:
    """The last part of a servicers-mode conversation's handoff message is sent (or dead): WeCom
    refuses kf/send_msg once the session is with its servicers, so only now may it move there."""
    conversation = Conversation.objects.select_related("contact__app").filter(pk=conversation_id).first()
    if conversation is None or not conversation.contact.app.answered_in_wecom_client:
        return
    notify_kf_session(event=KfSessionEvent(conversation=conversation, change=KfSessionChange.HANDOFF_DELIVERED))
