"""Reads of the message path shared with the screens: a transcript line with its delivery state and
its picture, voice, video or file."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterable

from conversations.models import InboundMessage, Message, OutboundMessage

Status = OutboundMessage.Status
# A message sent in several parts shows the least advanced part's state.
_LEAST_ADVANCED_FIRST = (Status.DEAD, Status.CANCELLED, Status.RETRYING, Status.SENDING, Status.PENDING)


def message_deliveries(message_ids: Iterable[int]) -> dict[int, list[str]]:
    """{message id: the statuses of its ledger rows, by part} for many messages in one query."""
    deliveries: dict[int, list[str]] = {}
    for message_id, status in (OutboundMessage.objects.filter(message_id__in=list(message_ids)).order_by("part")
                               .values_list("message_id", "status")):
        deliveries.setdefault(message_id, []).append(status)
    return deliveries


def serialize_message(message: Message, deliveries: dict[int, list[str]] | None = None,
                      media: dict[int, dict] | None = None) -> dict:
    """A transcript line as the screens show it. `deliveries` (`media`) given, even empty: the caller
    already loaded every part (message_deliveries, message_media); otherwise this message's are read."""
    if deliveries is None:
        deliveries = message_deliveries([message.pk])
    if media is None:
        media = message_media([message])
    statuses = deliveries.get(message.pk, [])
    return {"id": message.pk, "author": message.author, "author_label": message.get_author_display(),
            "text": message.text, "created_at": message.created_at.isoformat(),
            "delivery": delivery_summary(statuses), "media": media.get(message.pk)}


MEDIA_KINDS = frozenset({"image", "voice", "video", "file"})


def message_media(messages: Iterable[Message]) -> dict[int, dict]:
    """{message id: its picture, voice, video or file} for the messages that have one: a customer's
    (downloaded from WeCom: `stored`, `pending` or `refused` with the reason) or an agent's attachment.
    Two queries at most, for any number of messages."""
    messages = list(messages)
    found: dict[int, dict] = {}
    inbound_ids = {m.inbound_id: m.pk for m in messages if m.inbound_id}
    for row in (InboundMessage.objects.filter(pk__in=list(inbound_ids), msg_type__in=MEDIA_KINDS)
                .only("msg_type", "media", "media_content_type", "media_size", "media_error")):
        status = "stored" if row.media else "refused" if row.media_error else "pending"
        found[inbound_ids[row.pk]] = {"kind": row.msg_type, "status": status, "content_type": row.media_content_type,
                                      "size": row.media_size, "error": row.media_error, "name": ""}
    others = [m.pk for m in messages if not m.inbound_id]
    for row in (OutboundMessage.objects.filter(message_id__in=others, msgtype__in=MEDIA_KINDS).exclude(media="")
                .only("message_id", "msgtype", "media", "content")):
        found[row.message_id] = {"kind": row.msgtype, "status": "stored", "content_type": "", "size": None,
                                 "error": "", "name": row.content}
    return found


def media_file(message: Message):
    """The stored file of a transcript line (FieldFile) and its content type, or (None, "")."""
    if message.inbound_id:
        inbound = InboundMessage.objects.filter(pk=message.inbound_id, msg_type__in=MEDIA_KINDS).exclude(media="") \
            .only("media", "media_content_type").first()
        return (inbound.media, inbound.media_content_type) if inbound else (None, "")
    part = OutboundMessage.objects.filter(message=message, msgtype__in=MEDIA_KINDS).exclude(media="") \
        .only("media").first()
    return (part.media, mimetypes.guess_type(part.media.name)[0] or "") if part else (None, "")


def delivery_summary(statuses: list[str]) -> str | None:
    """One word for a message's parts: the least advanced part wins; None when nothing is sent."""
    if not statuses:
        return None
    return next((status.value for status in _LEAST_ADVANCED_FIRST if status in statuses), Status.SENT.value)
