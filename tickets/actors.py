"""Actors of the human side."""

from __future__ import annotations

from conversations.models import Conversation
from conversations.realtime import conversation_changed
from conversations.wecom.client import WeComClient
from conversations.wecom.errors import WeComError
from tickets.jobs import SYNC_KF_SESSION_STATE
from tickets.models import Ticket, TicketEvent


@SYNC_KF_SESSION_STATE.actor(max_retries=5)
def sync_kf_session_state(conversation_id: int, ticket_id: int, state: int, servicer: str) -> None:
    """Move the 微信客服 session (service_state/trans). WeCom refusing it is shown, not ignored."""
    conversation = Conversation.objects.select_related("contact__app").filter(pk=conversation_id).first()
    ticket = Ticket.objects.filter(pk=ticket_id).first()
    if conversation is None or ticket is None:
        return
    contact = conversation.contact
    try:
        WeComClient(contact.app).kf_transfer(open_kfid=contact.open_kfid, external_userid=contact.external_id,
                                             service_state=state, servicer_userid=servicer)
    except WeComError as exc:
        if exc.transient:
            raise  # retried with backoff
        TicketEvent.objects.create(ticket=ticket, kind="kf_state_failed",
                                   detail={"state": state, "errcode": exc.errcode, "reason": exc.errmsg[:200]})
        conversation_changed(conversation_id, {
            "type": "error", "message": f"WeCom refused the 微信客服 session change to state {state}: "
                                        f"errcode {exc.errcode} {exc.errmsg[:120]}"})
        return
    TicketEvent.objects.create(ticket=ticket, kind="kf_state", detail={"state": state, "servicer": servicer})
