"""The outbound ledger: every message we send is a row first, then delivered once, in order, per contact.

Delivery walks each contact's rows strictly in id order under a per-contact advisory
lock: a row that must wait (retry backoff, member pacing) holds back the rows behind
it, so a customer never sees answer 2 before answer 1. Many contacts are delivered
together in rounds (the first waiting row of each), their WeCom calls side by side.
A row found `sending` while we hold the lock was left by a crashed sender; it is sent
again with the identical request, which WeCom's own duplicate protection turns into a
no-op if the first call got through (message/send `enable_duplicate_check`, kf/send_msg
`msgid`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import random
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import PurePath

import structlog
from django.conf import settings
from django.core.files.base import File
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from limits import parse

from conversations.jobs import enqueue_delivery, enqueue_kf_handoff_delivered
from conversations.metrics import DEAD_LETTERS, SENDS, observe_first_replies
from conversations.models import (
    Contact,
    Conversation,
    InboundMessage,
    Message,
    OutboundMessage,
    TraceEvent,
    WeComApp,
)
from conversations.realtime import conversation_changed
from conversations.selectors import delivery_summary, message_deliveries
from conversations.services.bulk import save_fields
from conversations.services.kf_accounts import ACCOUNT_MANAGED_IN_CLIENT, mark_managed_in_client
from conversations.services.locks import ContactLocks, LockPurpose
from conversations.services.menus import HEAD_TAIL_MAX_BYTES, MSGMENU, Menu, MenuItem, menu_from_json
from conversations.services.tracing import delivery_event, own_trace_id, save_trace_events
from conversations.services.webhooks import emit_outbound_outcomes
from conversations.vocabulary import Stage
from conversations.wecom.client import WeComClient
from conversations.wecom.errors import WeComError, WeComPermanentError
from tenants.concurrency import map_in_tenant
from tenants.log_context import bound
from tenants.redis import rate_limiter
from tenants.telemetry import message_span

logger = structlog.get_logger("conversations.outbound")
Status = OutboundMessage.Status
MAX_TEXT_BYTES = 2048
WAITING = (Status.PENDING, Status.RETRYING, Status.SENDING)
# Invisible in WeChat; makes a legitimately repeated text distinct for WeCom's duplicate check.
ZERO_WIDTH_SPACE = "\u200b"
BUSY_RETRY_SECONDS = 0.5
INVALID_MEDIA_ID = 40007  # media/upload's media_id expired (3 days) or unknown


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


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """One message to send: `cause` names what it answers (e.g. "inbound:42"); the same cause
    never creates a second set of ledger rows."""

    contact: Contact
    conversation: Conversation | None
    message: Message | None
    author: Message.Author
    text: str
    cause: str
    trace_id: uuid.UUID | None = None
    event_code: str = ""  # 微信客服 welcome or closing message: sent with this event code
    # A menu (services/menus.py): one msgmenu row on 微信客服; elsewhere `text` (its rendering) is sent.
    menu: Menu | None = None
    # 微信客服 only: click items under the text's last part, which then goes out as a msgmenu headed by it
    # (the 👍/👎 of services/answer_feedback.py). Ignored elsewhere.
    items: tuple[MenuItem, ...] = ()


def queue_outbound(*, contact: Contact, conversation: Conversation | None, message: Message | None,
                   author: Message.Author, text: str, cause: str, trace_id: uuid.UUID | None = None,
                   event_code: str = "", menu: Menu | None = None) -> list[OutboundMessage]:
    """Create the ledger rows of one message (inside the caller's transaction); deliver on commit."""
    rows = queue_outbound_many([Outgoing(contact=contact, conversation=conversation, message=message,
                                         author=author, text=text, cause=cause, trace_id=trace_id,
                                         event_code=event_code, menu=menu)])
    enqueue_delivery(contact.pk)
    return rows


def queue_outbound_media(*, contact: Contact, conversation: Conversation | None, message: Message | None,
                         author: Message.Author, msgtype: str, file: File, name: str, cause: str) -> OutboundMessage:
    """The ledger row of a picture or file (inside the caller's transaction): the file is stored now
    and uploaded to WeCom when the row is sent (media/upload, then message/send or kf/send_msg)."""
    row = OutboundMessage(idempotency_key=f"{cause}:1", contact=contact, conversation=conversation, message=message,
                          author=author, content=name[:500], msgtype=msgtype, trace_id=own_trace_id())
    row.media.save(name, file, save=False)
    row.save()
    enqueue_delivery(contact.pk)
    return row


def queue_outbound_many(outgoing: list[Outgoing]) -> list[OutboundMessage]:
    """The ledger rows of many messages in one INSERT; the caller delivers them after commit.

    A row answering a customer message carries that message's trace id and points at it (`inbound`,
    resolved here once for the batch), so each of its delivery stages joins the message's trace
    without a lookup; any other message gets a trace id of its own, shared by its parts."""
    rows = []
    inbound_ids = _inbound_ids([item.trace_id for item in outgoing if item.trace_id])
    for item in outgoing:
        if item.trace_id is None:
            item = replace(item, trace_id=own_trace_id())
        if item.menu is not None and item.contact.app.kind == WeComApp.Kind.KF:
            # One message, never split: menus.build_menu kept it within WeCom's limits.
            rows.append(OutboundMessage(idempotency_key=f"{item.cause}:1", contact=item.contact,
                                        conversation=item.conversation, message=item.message, author=item.author,
                                        trace_id=item.trace_id, content=item.menu.as_json(), msgtype=MSGMENU,
                                        event_code=item.event_code))
            continue
        parts = split_text(item.text)
        with_items = bool(item.items and parts) and item.contact.app.kind == WeComApp.Kind.KF
        if with_items and len(parts[-1].encode()) > HEAD_TAIL_MAX_BYTES:  # a menu's head holds less than a text
            parts[-1:] = split_text(parts[-1], HEAD_TAIL_MAX_BYTES)
        rows += [OutboundMessage(idempotency_key=f"{item.cause}:{number}", contact=item.contact,
                                 conversation=item.conversation, message=item.message, author=item.author,
                                 part=number, parts_total=len(parts), trace_id=item.trace_id, content=part,
                                 event_code=item.event_code)
                 for number, part in enumerate(parts, start=1)]
        if with_items:
            last = rows[-1]
            last.content, last.msgtype = Menu(head=last.content, items=item.items).as_json(), MSGMENU
    for row in rows:
        row.inbound_id = inbound_ids.get(row.trace_id)
    _distinct_for_duplicate_check(rows)
    return OutboundMessage.objects.bulk_create(rows, ignore_conflicts=True)


def _inbound_ids(trace_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """{trace id: inbound message id} for the trace ids that belong to an inbound message (one query)."""
    if not trace_ids:
        return {}
    return dict(InboundMessage.objects.filter(trace_id__in=set(trace_ids)).values_list("trace_id", "pk"))


def _distinct_for_duplicate_check(rows: list[OutboundMessage]) -> None:
    """Append zero-width spaces so a text repeated to the same member inside WeCom's duplicate-check
    window is still delivered, while retries of one row stay byte-identical (it is stored).
    Self-built apps only: 微信客服 sends carry their own msgid.

    WeCom's window runs back from when a text is delivered, to when the earlier identical text was
    *delivered*, not when its row was created: a row that went out late (a long retry chain, a
    re-send) counts from its delivery. These rows go out after every row of the contact still
    waiting, so those count too; so do dead rows attempted within the window (a timeout may have
    been delivered after all). Cancelled rows never went out.
    """
    rows = [row for row in rows if row.contact.app.kind == WeComApp.Kind.APP]
    if not rows:
        return
    since = timezone.now() - timedelta(seconds=settings.WECOM_DUPLICATE_CHECK_SECONDS)
    earlier = Counter()
    with connection.cursor() as cursor:  # (contact, text) pairs as arrays, as in recent_contexts
        cursor.execute(
            f"SELECT o.contact_id, o.content FROM {OutboundMessage._meta.db_table} o"  # noqa: S608 - model table
            " JOIN unnest(%s::bigint[], %s::text[]) AS t(contact_id, text)"
            "  ON o.contact_id = t.contact_id AND left(o.content, length(t.text)) = t.text"
            " WHERE o.status = ANY(%s) OR (o.status = %s AND o.sent_at >= %s)"
            "  OR (o.status = %s AND o.attempts > 0 AND o.updated_at >= %s)",
            [[row.contact.pk for row in rows], [row.content for row in rows], list(WAITING),
             Status.SENT, since, Status.DEAD, since])
        for contact_id, content in cursor.fetchall():
            earlier[contact_id, content.rstrip(ZERO_WIDTH_SPACE)] += 1
    for row in rows:
        key = row.contact.pk, row.content
        row.content += ZERO_WIDTH_SPACE * earlier[key]
        earlier[key] += 1  # the same text twice in this batch (identical parts of one long answer)


def kf_msgid(row: OutboundMessage) -> str:
    """Stable per row, at most 32 characters of [0-9a-zA-Z_-], as kf/send_msg requires."""
    digest = hashlib.sha256(f"{connection.schema_name}:{row.idempotency_key}".encode()).hexdigest()
    return "wd" + digest[:30]


def _backoff(attempts: int) -> float:
    delay = min(settings.OUTBOUND_RETRY_BASE_SECONDS * 2 ** (attempts - 1), settings.OUTBOUND_RETRY_MAX_SECONDS)
    return delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security


def deliver_for_contact(contact_id: int) -> float | None:
    """Send the contact's waiting rows in order. Returns seconds until it should run again, or None."""
    return deliver_contacts([contact_id]).get(contact_id)


def deliver_contacts(contact_ids) -> dict[int, float]:
    """Send the waiting rows of these contacts, each contact's in order, many contacts per round.

    Returns {contact id: seconds until its delivery should run again} for the contacts
    whose next row has to wait (backoff, pacing, app rate limit, another worker on it).
    """
    with ContactLocks(LockPurpose.SEND) as locks:
        locked, busy = locks.try_acquire(contact_ids)
        waits = dict.fromkeys(busy, BUSY_RETRY_SECONDS)
        active = set(locked)
        while active:
            rows = _next_rows(active)
            active = {row.contact_id for row in rows}
            ready = []
            for row, wait in zip(rows, _waits(rows), strict=True):
                if wait is None:
                    ready.append(row)
                else:
                    waits[row.contact_id] = wait
                    active.discard(row.contact_id)
            for row, wait in _attempt(ready).items():
                waits[row.contact_id] = wait
                active.discard(row.contact_id)
    return waits


def _next_rows(contact_ids) -> list[OutboundMessage]:
    """The first waiting row of each contact, with its contact and app (each app read and decrypted once)."""
    rows = list(OutboundMessage.objects.select_related("contact")
                .filter(contact_id__in=contact_ids, status__in=WAITING)
                .order_by("contact_id", "id").distinct("contact_id"))
    apps = WeComApp.objects.in_bulk({row.contact.app_id for row in rows})
    for row in rows:
        row.contact.app = apps[row.contact.app_id]
    return rows


def _waits(rows: list[OutboundMessage]) -> list[float | None]:
    """For each row, seconds it must still wait, or None to send it now."""
    now = timezone.now()
    # WeCom silently drops the 31st message a minute to one member: wait for the window instead.
    window_start = now - timedelta(seconds=60)
    pace = settings.OUTBOUND_MEMBER_PER_MINUTE
    crowded = set(OutboundMessage.objects.filter(contact_id__in=[row.contact_id for row in rows],
                                                 status=Status.SENT, sent_at__gt=window_start)
                  .values("contact_id").annotate(sent=Count("id")).filter(sent__gte=pace)
                  .values_list("contact_id", flat=True))
    waits: list[float | None] = []
    for row in rows:
        if row.status == Status.RETRYING and row.next_attempt_at and row.next_attempt_at > now:
            waits.append((row.next_attempt_at - now).total_seconds())
        elif row.contact_id in crowded:
            waits.append(_until_pace_frees(row.contact_id, window_start, now))
        else:
            waits.append(None)
    admitted = _admitted_by_app_limit([row for row, wait in zip(rows, waits, strict=True) if wait is None])
    return [1.0 if wait is None and row not in admitted else wait for row, wait in zip(rows, waits, strict=True)]


def _admitted_by_app_limit(rows: list[OutboundMessage]) -> set[OutboundMessage]:
    """The rows the app's send rate admits now. One hit per app for all its rows (a Lua call each, per row
    before), and row by row only when the whole lot would not fit."""
    limit = parse(settings.OUTBOUND_APP_RATE_LIMIT)
    limiter = rate_limiter()
    by_app: dict[int, list[OutboundMessage]] = {}
    for row in rows:
        by_app.setdefault(row.contact.app_id, []).append(row)
    admitted: set[OutboundMessage] = set()
    for app_id, app_rows in by_app.items():
        identifiers = (connection.schema_name, "app", str(app_id))
        if limiter.hit(limit, *identifiers, cost=len(app_rows)):
            admitted.update(app_rows)
        else:
            admitted.update(row for row in app_rows if limiter.hit(limit, *identifiers))
    return admitted


def _until_pace_frees(contact_id: int, window_start, now) -> float:
    recent = list(OutboundMessage.objects.filter(contact_id=contact_id, status=Status.SENT,
                                                 sent_at__gt=window_start)
                  .order_by("-sent_at").values_list("sent_at", flat=True)[:settings.OUTBOUND_MEMBER_PER_MINUTE])
    return max((recent[-1] + timedelta(seconds=60) - now).total_seconds(), 0.1)


def _human_owned(conversation_ids: list[int]) -> set[int]:
    """Invariant 6 at send time. FOR SHARE holds off a concurrent handoff until this send is
    recorded, so either the handoff committed first (and we cancel) or the answer went out first."""
    if not conversation_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, state FROM {Conversation._meta.db_table} WHERE id = ANY(%s) "  # noqa: S608
                       "ORDER BY id FOR SHARE", [conversation_ids])
        found = cursor.fetchall()
    return {pk for pk, state in found if state in (Conversation.State.WAITING_HUMAN, Conversation.State.HUMAN)}


def _guarded(row: OutboundMessage) -> bool:
    return row.from_bot and not row.survives_handoff and bool(row.conversation_id)


def _attempt(rows: list[OutboundMessage]) -> dict[OutboundMessage, float]:
    """Send the rows (one per contact) side by side; returns the rows that now wait, with the delay."""
    if not rows:
        return {}
    # Committed before the calls: a crash during one leaves its row "sending", which the next
    # delivery re-sends (WeCom's duplicate protection absorbs the repeat). The attempt is counted
    # with WeCom's answer, not here: a crash of ours must not bring a row closer to dead.
    OutboundMessage.objects.filter(pk__in=[row.pk for row in rows]).update(status=Status.SENDING,
                                                                          updated_at=timezone.now())
    waits, events = {}, []
    with transaction.atomic():
        overtaken = _human_owned([row.conversation_id for row in rows if _guarded(row)])
        cancelled = [row for row in rows if _guarded(row) and row.conversation_id in overtaken]
        sending = [row for row in rows if row not in cancelled]
        for row in cancelled:
            events.append(_record_outcome(row, Status.CANCELLED, stage=Stage.SEND_CANCELLED,
                                          reason="a human owns the conversation"))
        requests = [(row, kf_msgid(row)) for row in sending]
        for row, outcome in zip(sending, map_in_tenant(_send, requests), strict=True):
            row.attempts += 1
            if isinstance(outcome, WeComError):
                SENDS.labels(tenant=connection.schema_name, errcode=str(outcome.errcode)).inc()
                wait, event = _failed(row, outcome)
                events.append(event)
                if wait is not None:
                    waits[row] = wait
                continue
            SENDS.labels(tenant=connection.schema_name, errcode="0").inc()
            row.wecom_msgid = str(outcome.get("msgid", ""))[:128]
            row.sent_at = timezone.now()
            events.append(_record_outcome(row, Status.SENT, stage=Stage.SENT, attempts=row.attempts,
                                          msgid=row.wecom_msgid))
        save_fields(rows, ["status", "attempts", "last_errcode", "last_error", "next_attempt_at", "wecom_msgid",
                           "sent_at", "updated_at", "media_id"])
        save_trace_events(events)
        emit_outbound_outcomes(rows)  # message.answered, delivery.dead: with the rows' new status
        observe_first_replies(row for row in sending if row.status == Status.SENT)
        for row in rows:
            if _ends_servicers_handoff(row):
                enqueue_kf_handoff_delivered(row.conversation_id)
    return waits


def _ends_servicers_handoff(row: OutboundMessage) -> bool:
    """The last part of a handoff message of a WeCom-servicers-mode account is done with (sent, or dead:
    the customer must reach a human either way). Only now may the session leave the API
    (docs/KF_SESSIONS.md): in states 2 and 3 WeCom refuses kf/send_msg."""
    return (row.author == Message.Author.HANDOFF and row.status in (Status.SENT, Status.DEAD)
            and row.part == row.parts_total and bool(row.conversation_id)
            and row.contact.app.answered_in_wecom_client)


def _send(request: tuple[OutboundMessage, str]) -> dict | WeComError:
    """One WeCom call (on a pool thread): the response, or the error it ended in."""
    row, msgid = request
    with (message_span("conversations.send_outbound", trace_id=row.trace_id, outbound_id=row.pk),
          bound(trace_id=row.trace_id, outbound=row.pk)):  # this row's lines: its trace, not the job's
        return _call_wecom(row, msgid)


def _call_wecom(row: OutboundMessage, msgid: str) -> dict | WeComError:
    contact = row.contact
    client = WeComClient(contact.app)
    try:
        if row.msgtype == MSGMENU:
            menu = menu_from_json(row.content).wecom_payload()
            if row.event_code:
                return client.kf_send_menu_on_event(code=row.event_code, menu=menu, msgid=msgid)
            return client.kf_send_menu(open_kfid=contact.open_kfid, external_userid=contact.external_id, menu=menu,
                                       msgid=msgid)
        if row.msgtype != "text":
            return _send_media(client, row, msgid)
        if row.event_code:
            return client.kf_send_text_on_event(code=row.event_code, content=row.content, msgid=msgid)
        if contact.app.kind == WeComApp.Kind.KF:
            return client.kf_send_text(open_kfid=contact.open_kfid, external_userid=contact.external_id,
                                       content=row.content, msgid=msgid)
        return client.send_text(touser=contact.external_id, content=row.content,
                                duplicate_check_seconds=settings.WECOM_DUPLICATE_CHECK_SECONDS)
    except WeComError as exc:
        return exc


def _send_media(client: WeComClient, row: OutboundMessage, msgid: str) -> dict:
    """Upload the row's file once (WeCom keeps it 3 days under media_id, kept on the row), then send
    it; a media_id WeCom no longer knows (40007: a re-sent dead letter) is uploaded again, once."""
    uploaded_now = not row.media_id
    if uploaded_now:
        _upload(client, row)
    try:
        return _send_uploaded(client, row, msgid)
    except WeComPermanentError as exc:
        if exc.errcode != INVALID_MEDIA_ID or uploaded_now:
            raise
    _upload(client, row)
    return _send_uploaded(client, row, msgid)


def _upload(client: WeComClient, row: OutboundMessage) -> None:
    with row.media.open("rb") as stored:
        content = stored.read()
    name = PurePath(row.media.name).name
    row.media_id = client.upload_media(media_type=row.msgtype, filename=row.content or name, content=content,
                                       content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")


def _send_uploaded(client: WeComClient, row: OutboundMessage, msgid: str) -> dict:
    contact = row.contact
    if contact.app.kind == WeComApp.Kind.KF:
        return client.kf_send_media(open_kfid=contact.open_kfid, external_userid=contact.external_id,
                                    msgtype=row.msgtype, media_id=row.media_id, msgid=msgid)
    return client.send_media(touser=contact.external_id, msgtype=row.msgtype, media_id=row.media_id,
                             duplicate_check_seconds=settings.WECOM_DUPLICATE_CHECK_SECONDS)


def _failed(row: OutboundMessage, exc: WeComError) -> tuple[float | None, TraceEvent | None]:
    row.last_errcode = exc.errcode
    row.last_error = exc.errmsg[:300]
    permanent = isinstance(exc, WeComPermanentError)
    if exc.errcode == ACCOUNT_MANAGED_IN_CLIENT:  # the operator sees why on the app in the admin
        mark_managed_in_client(app_id=row.contact.app_id, errmsg=row.last_error)
    if permanent or row.attempts >= settings.OUTBOUND_MAX_ATTEMPTS:
        DEAD_LETTERS.labels(tenant=connection.schema_name).inc()
        return None, _record_outcome(row, Status.DEAD, stage=Stage.DEAD, errcode=exc.errcode, reason=row.last_error,
                             attempts=row.attempts)
    delay = _backoff(row.attempts)
    row.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    return delay, _record_outcome(row, Status.RETRYING, stage=Stage.SEND_ATTEMPT, errcode=exc.errcode,
                                  reason=row.last_error, attempts=row.attempts, retry_in=round(delay, 2))


def _record_outcome(row: OutboundMessage, status: OutboundMessage.Status, *, stage: Stage,
                    **detail) -> TraceEvent | None:
    """Set the row's new status (saved by the caller); screens see it on commit. Returns its trace event."""
    row.status = status
    row.updated_at = timezone.now()
    if row.message_id and row.conversation_id:  # the delivery state shown next to the message
        conversation_changed(row.conversation_id, lambda: {
            "type": "delivery", "message": row.message_id,
            "delivery": delivery_summary(message_deliveries([row.message_id]).get(row.message_id, []))})
    return delivery_event(row, stage=stage, **detail)


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
            save_trace_events([delivery_event(row, stage=Stage.RESEND)])
            enqueue_delivery(row.contact_id)
            resent += 1
    return resent, refused


def contacts_with_stalled_outbound(*, older_than_seconds: int, limit: int = 500) -> list[int]:
    """Contacts whose waiting rows nobody is working on (their delivery job was lost)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    # order_by: Meta.ordering (id) would otherwise join the DISTINCT and repeat a contact per row.
    return list(OutboundMessage.objects.filter(status__in=WAITING, updated_at__lt=cutoff)
                .exclude(status=Status.RETRYING, next_attempt_at__gt=cutoff)
                .order_by("contact_id").values_list("contact_id", flat=True).distinct()[:limit])
