"""Handing a conversation to humans: state, ticket (which offers it to an agent), the handoff message."""

from __future__ import annotations

from conversations.models import Conversation, DeskSettings, InboundMessage, Message, OutboundMessage
from conversations.services.conversations import change_state, record_message
from conversations.services.outbound import WAITING, queue_outbound
from conversations.services.tracing import add_trace_event
from tickets.services import open_ticket_for_handoff, waiting_notice


def hand_off_to_human(*, conversation: Conversation, reason: str, desk: DeskSettings,
                      inbound: InboundMessage | None = None):
    """The answer pipeline hands off (customer asked, model cannot answer, repeated fallbacks).

    Inside the caller's transaction, with `conversation` locked. Returns the ticket.

    The handoff message goes through the outbound ledger like any other message; for
    微信客服 the delivery job moves the WeCom session to the human queue once it is sent
    (in the queue, kf/send_msg is no longer allowed).
    """
    if conversation.state == Conversation.State.BOT:
        change_state(conversation=conversation, to=Conversation.State.WAITING_HUMAN)
    # Answers to the customer's earlier messages, still queued, lead up to this handoff: deliver them.
    OutboundMessage.objects.filter(conversation=conversation, status__in=WAITING).update(survives_handoff=True)
    subject = inbound.content[:200] if inbound else ""
    ticket, offered = open_ticket_for_handoff(conversation=conversation, reason=reason, subject=subject)
    # One message per customer message: "nobody is online" joins the handoff message.
    text = desk.handoff_message if offered else "\n".join(filter(None, [desk.handoff_message,
                                                                      waiting_notice(conversation)]))
    message = record_message(conversation=conversation, author=Message.Author.HANDOFF, text=text)
    cause = f"inbound:{inbound.pk}" if inbound else f"handoff:{conversation.pk}:{message.pk}"
    queue_outbound(contact=conversation.contact, conversation=conversation, message=message,
                   author=Message.Author.HANDOFF, text=text, cause=cause,
                   trace_id=inbound.trace_id if inbound else None)
    if inbound:
        add_trace_event(inbound=inbound, stage="handoff", reason=reason, ticket=ticket.pk)
    return ticket
