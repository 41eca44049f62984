"""Store inbound messages exactly once under their natural key, then enqueue them on commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from conversations.jobs import ask_for_answering, enqueue_media_download, enqueue_processing, force_answering
from conversations.models import InboundMessage, TraceEvent, WeComApp
from conversations.services.bulk import insert_row
from conversations.services.media import needs_media_download
from conversations.services.tracing import add_trace_event, save_trace_events, trace_event
from conversations.services.webhooks import EventType, emit, message_received
from conversations.vocabulary import Stage
from tenants.log_context import bound

# What the processing pipeline handles; anything else is stored as UNSUPPORTED.
PROCESSED_MSG_TYPES = frozenset({"text", "image", "voice", "video", "location", "link"})
# 微信客服 customers also send files (self-built app callbacks have no file type, docs/WECOM_PROTOCOL.md 4.1).
KF_PROCESSED_MSG_TYPES = PROCESSED_MSG_TYPES | {"file"}
KF_SIGNAL_EVENT = "kf_msg_or_event"
KF_ENTER_SESSION_EVENT = "enter_session"  # pulled (origin 4): scene, welcome_code
KF_AUTH_CHANGE_EVENT = "kf_account_auth_change"  # callback: our API permission on kf accounts changed
PROCESSED_EVENTS = frozenset({"enter_agent", "subscribe", "unsubscribe", KF_SIGNAL_EVENT, KF_AUTH_CHANGE_EVENT})
# A servicer took, passed on or ended a session (origin 4); followed in WeCom servicers mode only.
KF_SESSION_STATUS_EVENT = "session_status_change"
# Pulled 微信客服 system events that services/kf_events.py acts on; other events are only recorded.
KF_PROCESSED_EVENTS = frozenset({KF_ENTER_SESSION_EVENT, KF_SESSION_STATUS_EVENT})


@dataclass(frozen=True)
class Recorded:
    inbound: InboundMessage
    created: bool


def _timestamp(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def callback_natural_key(fields: dict[str, str]) -> str:
    """WeCom's own dedup rule (docs/WECOM_PROTOCOL.md §5): MsgId for messages; events by sender + CreateTime.

    The event name is part of the event key, so two different events of one
    member in the same second are both kept, while a redelivery still collides.
    kf signals carry no sender: the account (OpenKfId) and the callback Token stand in.
    """
    if fields.get("MsgId"):
        return f"msg:{fields['MsgId']}"
    event = fields.get("Event", "")
    sender = fields.get("FromUserName") or fields.get("OpenKfId", "")
    key = f"event:{sender}:{fields.get('CreateTime', '')}:{event}"
    if event == KF_SIGNAL_EVENT:
        key += f":{fields.get('Token', '')}"
    return key[:200]


def _initial_status(msg_type: str, event: str) -> str:
    supported = event in PROCESSED_EVENTS if msg_type == "event" else msg_type in PROCESSED_MSG_TYPES
    return InboundMessage.Status.PENDING if supported else InboundMessage.Status.UNSUPPORTED


def record_callback_message(*, app: WeComApp, fields: dict[str, str]) -> Recorded:
    """Store a decrypted callback; a redelivery finds the existing row and changes nothing else.

    The caller answers 200 only after this returns (the row is committed by then).
    """
    msg_type = fields.get("MsgType", "")
    event = fields.get("Event", "") if msg_type == "event" else ""
    inbound = InboundMessage(
        app=app,
        natural_key=callback_natural_key(fields),
        source=InboundMessage.Source.CALLBACK,
        msg_type=msg_type[:32],
        event=event[:64],
        sender=fields.get("FromUserName", "")[:128],
        open_kfid=fields.get("OpenKfId", "")[:64],
        content=fields.get("Content", ""),
        payload=fields,
        sent_at=_timestamp(fields.get("CreateTime")),
        status=_initial_status(msg_type, event),
    )
    with bound(trace_id=inbound.trace_id):  # its lines, and the job it enqueues (tenants/dramatiq.py)
        return _store(inbound)


def record_kf_message(*, app: WeComApp, message: dict) -> Recorded:
    """Store one message of a kf/sync_msg page (the caller's transaction also saves the cursor)."""
    msg_type = message.get("msgtype", "")
    origin = message.get("origin")
    event_body = message.get("event") if isinstance(message.get("event"), dict) else {}
    if origin == 3 and msg_type in KF_PROCESSED_MSG_TYPES:
        status = InboundMessage.Status.PENDING
    elif msg_type == "event" and _acts_on_kf_event(app, str(event_body.get("event_type", ""))):
        status = InboundMessage.Status.PENDING
    elif origin == 3:
        status = InboundMessage.Status.UNSUPPORTED
    else:  # 4 system events, 5 messages a human servicer sent from the WeCom client
        status = InboundMessage.Status.RECORDED
    text = message.get("text") if isinstance(message.get("text"), dict) else {}
    inbound = InboundMessage(
        app=app,
        natural_key=f"kf:{message['msgid']}"[:200],
        source=InboundMessage.Source.KF_PULL,
        msg_type=msg_type[:32],
        event=str(event_body.get("event_type", ""))[:64],
        sender=str(message.get("external_userid") or event_body.get("external_userid", ""))[:128],
        open_kfid=str(message.get("open_kfid") or event_body.get("open_kfid", ""))[:64],
        origin=origin if isinstance(origin, int) and 0 <= origin < 100 else None,
        content=str(text.get("content", "")),
        payload=message,
        sent_at=_timestamp(message.get("send_time")),
        status=status,
    )
    with bound(trace_id=inbound.trace_id):
        return _store(inbound, trace_stage=Stage.PULLED)


def _acts_on_kf_event(app: WeComApp, event_type: str) -> bool:
    if event_type == KF_SESSION_STATUS_EVENT:  # our own agents' sessions stay with the API: nothing to follow
        return app.answered_in_wecom_client
    return event_type in KF_PROCESSED_EVENTS


def _store(inbound: InboundMessage, *, trace_stage: Stage = Stage.RECEIVED) -> Recorded:
    try:
        with transaction.atomic():
            if inbound.status == InboundMessage.Status.PENDING:
                inbound.enqueued_at = timezone.now()
                inbound.enqueue_count = 1
            insert_row(inbound)
            events = [trace_event(inbound=inbound, stage=trace_stage, natural_key=inbound.natural_key,
                                  msg_type=inbound.msg_type, status=inbound.status)]
            if inbound.status == InboundMessage.Status.PENDING:
                events.append(_enqueue(inbound))
            if needs_media_download(inbound) and inbound.origin in (None, 3):  # customers' media only
                enqueue_media_download(inbound.pk)
            save_trace_events(events)
            if inbound.msg_type != "event" and inbound.origin in (None, 3):  # a customer's, not a servicer's
                emit(event=EventType.MESSAGE_RECEIVED, data=lambda: message_received(inbound))
    except IntegrityError:
        # A redelivery needs only the first copy's identity (its id and trace), not its row.
        existing = InboundMessage.objects.only("pk", "trace_id").get(app=inbound.app, natural_key=inbound.natural_key)
        add_trace_event(inbound=existing, stage=Stage.DUPLICATE, source=inbound.source)
        return Recorded(inbound=existing, created=False)
    return Recorded(inbound=inbound, created=True)


def _enqueue(inbound: InboundMessage) -> TraceEvent:
    """Enqueue on commit (an event its own job, a customer message the tenant's answering job); returns the
    (unsaved) trace event saying so."""
    if inbound.msg_type == "event":
        enqueue_processing(inbound.pk)
    else:
        ask_for_answering()
    return trace_event(inbound=inbound, stage=Stage.ENQUEUED, attempt=inbound.enqueue_count)


def requeue_stale_inbound(*, older_than_seconds: int, limit: int = 500) -> int:
    """The sweeper: enqueue again what is still pending long after its last enqueue (broker loss)."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    with transaction.atomic():
        stale = list(
            InboundMessage.objects.select_for_update(skip_locked=True)
            .filter(status=InboundMessage.Status.PENDING, enqueued_at__lt=cutoff)
            .order_by("id")[:limit]
        )
        return _requeue(stale)


def retry_failed_inbound(*, ids) -> int:
    """After the operator fixed the cause (secret, permission), process failed messages again."""
    with transaction.atomic():
        failed = list(InboundMessage.objects.select_for_update()
                      .filter(pk__in=ids, status=InboundMessage.Status.FAILED).order_by("id"))
        for inbound in failed:
            inbound.status = InboundMessage.Status.PENDING
            inbound.save(update_fields=["status"])
        return _requeue(failed)


def _requeue(rows: list[InboundMessage]) -> int:
    events = []
    for inbound in rows:
        inbound.enqueued_at = timezone.now()
        inbound.enqueue_count += 1
        inbound.save(update_fields=["enqueued_at", "enqueue_count"])
        if inbound.msg_type == "event":
            enqueue_processing(inbound.pk)
        events.append(trace_event(inbound=inbound, stage=Stage.ENQUEUED, attempt=inbound.enqueue_count))
    if any(inbound.msg_type != "event" for inbound in rows):
        force_answering()  # one job answers them all; the mark may still stand for the job that was lost
    save_trace_events(events)
    return len(rows)
