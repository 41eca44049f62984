"""The outbound ledger: every message we send is a row first, then delivered once, in order, per contact.

Delivery walks a contact's rows strictly in id order under a per-contact advisory
lock: a row that must wait (retry backoff, member pacing) holds back the rows behind
it, so a customer never sees answer 2 before answer 1. A row found `sending` while
we hold the lock was left by a crashed sender; it is sent again with the identical
request, which WeCom's own duplicate protection turns into a no-op if the first
call got through (message/send `enable_duplicate_check`, kf/send_msg `msgid`).
"""

from __future__ import annotations

import hashlib
import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from limits import parse

from conversations.metrics import DEAD_LETTERS, SENDS
from conversations.models import Contact, Conversation, Message, OutboundMessage, WeComApp
from conversations.services.locks import contact_lock
from conversations.services.rate_limits import _limiter
from conversations.services.tracing import add_trace_event
from conversations.wecom.client import WeComClient
from conversations.wecom.errors import WeComError, WeComPermanentError
from tenants.dramatiq import enqueue_on_commit

logger = logging.getLogger("conversations.outbound")
Status = OutboundMessage.Status
MAX_TEXT_BYTES = 2048
WAITING = (Status.PENDING, Status.RETRYING, Status.SENDING)
# Invisible in WeChat; makes a legitimately repeated text distinct for WeCom's duplicate check.
ZERO_WIDTH_SPACE = "\u200b"


class DeliveryRefused(ValueError):
    pass


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Split into parts of at most `limit` UTF-8 bytes, preferring line and sentence ends."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest.encode()) > limit:
        cut = len(rest.encode()[:limit].decode(errors="ignore"))
        window = rest[:cut]
        for separator in ("\n", "。", "！", "？", ". ", "! ", "? ", "；", "，", " "):
            position = window.rfind(separator)
            if position >= cut // 2:
                cut = position + len(separator)
                break
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest or not parts:
        parts.append(rest)
    return parts


def _distinct_for_duplicate_check(contact: Contact, text: str) -> str:
    """Append zero-width spaces so a text repeated to the same member inside WeCom's duplicate-check
    window is still delivered, while retries of one row stay byte-identical (it is stored)."""
    if contact.app.kind != WeComApp.Kind.APP:
        return text
    since = timezone.now() - timedelta(seconds=settings.WECOM_DUPLICATE_CHECK_SECONDS)
    earlier = OutboundMessage.objects.filter(contact=contact, created_at__gte=since,
                                             content__startswith=text).values_list("content", flat=True)
    repeats = sum(1 for content in earlier if content.rstrip(ZERO_WIDTH_SPACE) == text)
    return text + ZERO_WIDTH_SPACE * repeats


def queue_outbound(*, contact: Contact, conversation: Conversation | None, message, author: str, text: str,
                   cause: str, trace_id=None) -> list[OutboundMessage]:
    """Create the ledger rows of one message (inside the caller's transaction) and deliver on commit.

    `cause` names what this message answers (e.g. "inbound:42"); the same cause
    never creates a second set of rows.
    """
    parts = split_text(text)
    rows = []
    for number, part in enumerate(parts, start=1):
        row, _ = OutboundMessage.objects.get_or_create(
            idempotency_key=f"{cause}:{number}",
            defaults=dict(contact=contact, conversation=conversation, message=message, author=author,
                          part=number, parts_total=len(parts), trace_id=trace_id,
                          content=_distinct_for_duplicate_check(contact, part)),
        )
        rows.append(row)
    from conversations.actors import deliver_outbound

    enqueue_on_commit(deliver_outbound, contact.pk)
    return rows


def kf_msgid(row: OutboundMessage) -> str:
    """Stable per row, at most 32 characters of [0-9a-zA-Z_-], as kf/send_msg requires."""
    digest = hashlib.sha256(f"{connection.schema_name}:{row.idempotency_key}".encode()).hexdigest()
    return "wd" + digest[:30]


def _backoff(attempts: int) -> float:
    delay = min(settings.OUTBOUND_RETRY_BASE_SECONDS * 2 ** (attempts - 1), settings.OUTBOUND_RETRY_MAX_SECONDS)
    return delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security


def deliver_for_contact(contact_id: int) -> float | None:
    """Send the contact's waiting rows in order. Returns seconds until it should run again, or None."""
    with contact_lock(contact_id, "send") as acquired:
        if not acquired:
            return 0.5  # another worker is delivering; look again shortly
        while True:
            row = (OutboundMessage.objects.select_related("contact__app", "conversation")
                   .filter(contact_id=contact_id, status__in=WAITING).order_by("id").first())
            if row is None:
                return None
            wait = _must_wait(row)
            if wait is not None:
                return wait
            wait = _attempt(row)
            if wait is not None:
                return wait


def _human_owns(conversation_id: int) -> bool:
    """Invariant 6 at send time. FOR SHARE holds off a concurrent handoff until this send is
    recorded, so either the handoff committed first (and we cancel) or the answer went out first."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT state FROM {Conversation._meta.db_table} WHERE id = %s FOR SHARE",  # noqa: S608
                       [conversation_id])
        found = cursor.fetchone()
    return bool(found) and found[0] in (Conversation.State.WAITING_HUMAN, Conversation.State.HUMAN)


def _must_wait(row: OutboundMessage) -> float | None:
    now = timezone.now()
    if row.status == Status.RETRYING and row.next_attempt_at and row.next_attempt_at > now:
        return (row.next_attempt_at - now).total_seconds()
    # WeCom silently drops the 31st message a minute to one member: wait for the window instead.
    window_start = now - timedelta(seconds=60)
    recent = list(OutboundMessage.objects.filter(contact_id=row.contact_id, status=Status.SENT,
                                                 sent_at__gt=window_start)
                  .order_by("-sent_at").values_list("sent_at", flat=True)[:settings.OUTBOUND_MEMBER_PER_MINUTE])
    if len(recent) >= settings.OUTBOUND_MEMBER_PER_MINUTE:
        return max((recent[-1] + timedelta(seconds=60) - now).total_seconds(), 0.1)
    if not _limiter().hit(parse(settings.OUTBOUND_APP_RATE_LIMIT), connection.schema_name, "app",
                          str(row.contact.app_id)):
        return 1.0
    return None


def _attempt(row: OutboundMessage) -> float | None:
    # Committed before the call: a crash during it leaves the row "sending", which the next
    # delivery re-sends (WeCom's duplicate protection absorbs the repeat).
    row.status = Status.SENDING
    row.attempts += 1
    row.save(update_fields=["status", "attempts", "updated_at"])
    with transaction.atomic():
        if row.from_bot and not row.survives_handoff and row.conversation_id and _human_owns(row.conversation_id):
            _finish(row, Status.CANCELLED, stage="send_cancelled", reason="a human owns the conversation")
            return None
        try:
            response = _send(row)
        except WeComError as exc:
            SENDS.labels(tenant=connection.schema_name, errcode=str(exc.errcode)).inc()
            return _failed(row, exc)
        SENDS.labels(tenant=connection.schema_name, errcode="0").inc()
        row.wecom_msgid = str(response.get("msgid", ""))[:128]
        row.sent_at = timezone.now()
        _finish(row, Status.SENT, stage="sent", attempts=row.attempts, msgid=row.wecom_msgid)
    if row.author == Message.Author.HANDOFF and row.contact.app.kind == WeComApp.Kind.KF:
        _move_kf_session_to_queue(row)
    return None


KF_STATE_QUEUE = 2


def _move_kf_session_to_queue(row: OutboundMessage) -> None:
    """微信客服: after the handoff message is out, the WeCom session joins the human queue (state 2)."""
    contact = row.contact
    try:
        WeComClient(contact.app).kf_transfer(open_kfid=contact.open_kfid, external_userid=contact.external_id,
                                             service_state=KF_STATE_QUEUE)
        outcome = {"kf_state": KF_STATE_QUEUE}
    except WeComError as exc:  # shown in the trace; the conversation is handed off on our side regardless
        outcome = {"errcode": exc.errcode, "reason": exc.errmsg[:200]}
    if row.trace_id:
        add_trace_event(inbound=None, trace_id=row.trace_id, stage="kf_session", **outcome)


def _send(row: OutboundMessage) -> dict:
    contact = row.contact
    client = WeComClient(contact.app)
    if contact.app.kind == WeComApp.Kind.KF:
        return client.kf_send_text(open_kfid=contact.open_kfid, external_userid=contact.external_id,
                                   content=row.content, msgid=kf_msgid(row))
    return client.send_text(touser=contact.external_id, content=row.content,
                            duplicate_check_seconds=settings.WECOM_DUPLICATE_CHECK_SECONDS)


def _failed(row: OutboundMessage, exc: WeComError) -> float | None:
    row.last_errcode = exc.errcode
    row.last_error = exc.errmsg[:300]
    permanent = isinstance(exc, WeComPermanentError)
    if permanent or row.attempts >= settings.OUTBOUND_MAX_ATTEMPTS:
        DEAD_LETTERS.labels(tenant=connection.schema_name).inc()
        _finish(row, Status.DEAD, stage="dead", errcode=exc.errcode, reason=row.last_error,
                attempts=row.attempts)
        return None
    delay = _backoff(row.attempts)
    row.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    _finish(row, Status.RETRYING, stage="send_attempt", errcode=exc.errcode, reason=row.last_error,
            attempts=row.attempts, retry_in=round(delay, 2))
    return delay


def _finish(row: OutboundMessage, status: str, *, stage: str, **detail) -> None:
    row.status = status
    row.save()
    if row.message_id and row.conversation_id:  # the delivery state shown next to the message
        from tickets.realtime import conversation_changed
        from tickets.selectors import serialize_message

        conversation_changed(row.conversation_id, {"type": "delivery", "message": row.message_id,
                                                   "delivery": serialize_message(row.message)["delivery"]})
    if row.trace_id:
        add_trace_event(inbound=None, trace_id=row.trace_id, stage=stage, outbound=row.pk, part=row.part,
                        **detail)


def resend_dead_letters(*, ids) -> tuple[int, list[str]]:
    """Re-queue dead rows; refuse rows that are not dead (a delivered message is never sent again)."""
    resent, refused = 0, []
    with transaction.atomic():
        for row in OutboundMessage.objects.select_for_update().filter(pk__in=ids).order_by("id"):
            if row.status != Status.DEAD:
                refused.append(f"#{row.pk} is {row.status}, not dead")
                continue
            row.status = Status.PENDING
            row.attempts = 0
            row.next_attempt_at = None
            row.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])
            if row.trace_id:
                add_trace_event(inbound=None, trace_id=row.trace_id, stage="resend", outbound=row.pk)
            from conversations.actors import deliver_outbound

            enqueue_on_commit(deliver_outbound, row.contact_id)
            resent += 1
    return resent, refused


def contacts_with_stalled_outbound(*, older_than_seconds: int, limit: int = 500) -> list[int]:
    """Contacts whose waiting rows nobody is working on (their delivery job was lost)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(OutboundMessage.objects.filter(status__in=WAITING, updated_at__lt=cutoff)
                .exclude(status=Status.RETRYING, next_attempt_at__gt=cutoff)
                .values_list("contact_id", flat=True).distinct()[:limit])
