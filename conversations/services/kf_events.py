"""微信客服 system events that need more than a record: a customer entering a session (scene, the
welcome message), kf_account_auth_change (our right to serve the accounts) and, for accounts in
WeCom servicers mode, session_status_change (a servicer took, passed on or ended the session: the
human side follows through the hook in services/handoff.py).

Each event row is handled once: the row is locked and must still be pending, and everything it
causes (contact fields, the welcome's ledger row, the app's status, the row's own status) commits
together. A redelivered job, or the same event pulled twice (same msgid, one row), does nothing.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from conversations.models import AccountStatus, Conversation, DeskSettings, InboundMessage, Message
from conversations.services.conversations import contact_for, current_conversation
from conversations.services.handoff import KF_CHANGE_TYPES, KfSessionChange, KfSessionEvent, notify_kf_session
from conversations.services.inbound import KF_AUTH_CHANGE_EVENT, KF_ENTER_SESSION_EVENT, KF_SESSION_STATUS_EVENT
from conversations.services.kf_accounts import set_account_status
from conversations.services.menus import MenuError, items_from_setting, welcome_menu
from conversations.services.outbound import queue_outbound
from conversations.services.tracing import add_trace_event
from conversations.vocabulary import Stage

# A welcome_code lives 20 s (docs/WECOM_PROTOCOL.md 4.2, send_msg_on_event): an older one would only
# produce a dead ledger row, so it is not sent at all (the trace says why).
WELCOME_CODE_TTL_SECONDS = 20


def handle_kf_event(*, inbound_id: int) -> None:
    """Act on a pending 微信客服 event row and mark it processed."""
    with transaction.atomic():
        inbound = (InboundMessage.objects.select_for_update().select_related("app")
                   .filter(pk=inbound_id, status=InboundMessage.Status.PENDING).first())
        if inbound is None:
            return
        if inbound.event == KF_ENTER_SESSION_EVENT:
            detail = _enter_session(inbound)
        elif inbound.event == KF_AUTH_CHANGE_EVENT:
            detail = _auth_change(inbound)
        elif inbound.event == KF_SESSION_STATUS_EVENT:
            detail = _session_status_change(inbound)
        else:
            detail = {"kf_event": inbound.event, "ignored": True}
        inbound.status = InboundMessage.Status.PROCESSED
        inbound.processed_at = timezone.now()
        inbound.save(update_fields=["status", "processed_at"])
        add_trace_event(inbound=inbound, stage=Stage.PROCESSED, **detail)


def _enter_session(inbound: InboundMessage) -> dict:
    """Remember where the customer came from (for routing later) and welcome them if WeCom allows it."""
    event = inbound.payload.get("event") if isinstance(inbound.payload.get("event"), dict) else {}
    contact = contact_for(inbound)
    scene, scene_param = str(event.get("scene") or "")[:64], str(event.get("scene_param") or "")[:128]
    if scene or scene_param:
        contact.scene, contact.scene_param = scene, scene_param
        contact.save(update_fields=["scene", "scene_param"])
    detail = {"kf_event": KF_ENTER_SESSION_EVENT, "contact": contact.pk, "scene": scene}
    welcome_code = str(event.get("welcome_code") or "")
    desk = DeskSettings.current()
    welcome = desk.welcome_message.strip()
    if not welcome_code:  # WeCom gives a code only when a welcome may be sent through the API
        return {**detail, "welcome": "no welcome_code"}
    if not welcome:
        return {**detail, "welcome": "no welcome message set"}
    if inbound.sent_at and timezone.now() - inbound.sent_at > timedelta(seconds=WELCOME_CODE_TTL_SECONDS):
        return {**detail, "welcome": "welcome_code expired before we saw the event"}
    try:  # a welcome with items is a menu headed by the welcome text (send_msg_on_event allows menus)
        menu = welcome_menu(welcome=welcome, items=items_from_setting(desk.welcome_menu),
                            with_human=desk.handoff_menu_enabled)
    except MenuError as exc:  # settings WeCom would refuse (saved around the admin's checks): the text alone
        menu, detail = None, {**detail, "menu_refused": str(exc)[:300]}
    queue_outbound(contact=contact, conversation=None, message=None, author=Message.Author.NOTICE,
                   text=menu.as_text() if menu else welcome, cause=f"welcome:{inbound.pk}", trace_id=inbound.trace_id,
                   event_code=welcome_code, menu=menu)
    return {**detail, "welcome": "queued menu" if menu else "queued"}


def _session_status_change(inbound: InboundMessage) -> dict:
    """WeCom servicers mode: a servicer took the session (from the pool, by transfer, again) or ended it.
    The contact's current conversation is locked (after this row, before its ticket, as everywhere) and
    the human side moves the ticket. change_type's values are UNCONFIRMED (docs/WECOM_PROTOCOL.md 4.2)."""
    event = inbound.payload.get("event") if isinstance(inbound.payload.get("event"), dict) else {}
    detail = {"kf_event": KF_SESSION_STATUS_EVENT, "change_type": event.get("change_type")}
    if not inbound.app.answered_in_wecom_client:  # pending in servicers mode only: the mode was switched off since
        return {**detail, "ignored": "not in WeCom servicers mode"}
    try:
        change = KF_CHANGE_TYPES.get(int(event.get("change_type")))
    except (TypeError, ValueError):
        change = None
    if change is None:
        return {**detail, "ignored": "unknown change_type"}
    contact = contact_for(inbound)
    if change == KfSessionChange.ENDED:  # an ended session opens nothing: only an open conversation closes
        conversation = (Conversation.objects.select_for_update().filter(contact=contact)
                        .exclude(state=Conversation.State.CLOSED).order_by("-id").first())
        if conversation is None:
            return {**detail, "ignored": "no open conversation"}
    else:
        conversation = current_conversation(contact=contact, desk=DeskSettings.current())
    servicer = str(event.get("new_servicer_userid") or "")[:64]
    notify_kf_session(event=KfSessionEvent(conversation=conversation, change=change, servicer_userid=servicer,
                                           old_servicer_userid=str(event.get("old_servicer_userid") or "")[:64],
                                           inbound_id=inbound.pk))
    return {**detail, "change": str(change), "conversation": conversation.pk, "servicer": servicer}


def _auth_change(inbound: InboundMessage) -> dict:
    """kf_account_auth_change callback: AuthAddOpenKfId / AuthDelOpenKfId name the accounts whose API
    authorisation was granted or withdrawn (field names from public SDKs; UNCONFIRMED in our sources)."""
    app = inbound.app
    added = str(inbound.payload.get("AuthAddOpenKfId") or "").strip()
    removed = str(inbound.payload.get("AuthDelOpenKfId") or "").strip()
    ours = set(app.open_kfids or [])
    if _concerns(removed, ours):
        set_account_status(app_ids=[app.pk], status=AccountStatus.UNAUTHORIZED,
                           detail=f"kf_account_auth_change: API permission withdrawn for {removed}")
        return {"kf_event": KF_AUTH_CHANGE_EVENT, "account_status": AccountStatus.UNAUTHORIZED, "open_kfid": removed}
    if _concerns(added, ours):
        set_account_status(app_ids=[app.pk], status=AccountStatus.ACTIVE,
                           detail=f"kf_account_auth_change: API permission granted for {added}")
        return {"kf_event": KF_AUTH_CHANGE_EVENT, "account_status": AccountStatus.ACTIVE, "open_kfid": added}
    return {"kf_event": KF_AUTH_CHANGE_EVENT, "account_status": "unchanged"}


def _concerns(open_kfid: str, ours: set[str]) -> bool:
    # An app that lists no accounts serves every account of the corp, so any change concerns it.
    return bool(open_kfid) and (not ours or open_kfid in ours)
