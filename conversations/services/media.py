"""Media of customer messages (pictures, voice, video, files): downloaded from WeCom into storage.

WeCom keeps a message's media for 3 days behind its media_id (media/get); we copy it once into
Django's storage (local disk by default, S3-compatible storage when configured), under the
tenant's schema (models.media_path). A file that is too large or not of the kind its message
type allows is refused: the row keeps the reason in `media_error` and nothing is stored. The
rules for what agents send are here too, so both directions check the same limits.
"""

from __future__ import annotations

import mimetypes
from datetime import timedelta
from pathlib import PurePath

import structlog
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import models, transaction
from django.utils import timezone

from conversations.jobs import enqueue_media_download
from conversations.models import InboundMessage, Message
from conversations.realtime import conversation_changed
from conversations.services.tracing import add_trace_event
from conversations.vocabulary import Stage
from conversations.wecom.client import MediaTooLarge, WeComClient
from conversations.wecom.errors import WeComPermanentError, WeComTokenError

logger = structlog.get_logger("conversations.media")

MEDIA_MSG_TYPES = frozenset({"image", "voice", "video", "file"})
WECOM_MEDIA_LIFETIME = timedelta(days=3)  # media/get serves a media_id for 3 days
NOT_FROM_CUSTOMERS = (4, 5)  # kf origins: system events, servicers in the WeCom client
# What each message type may hold. Images are the ones browsers show inline, so only raster
# formats (never SVG, which can carry scripts); voice is amr (or silk/mp3 when asked for);
# a file may be anything: it is only ever offered as a download.
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp"})
_VOICE_TYPES = frozenset({"audio/amr", "audio/amr-wb", "audio/silk", "audio/mpeg", "audio/mp3", "voice/amr"})


# Magic numbers of the formats we accept: WeCom's Content-Type is not documented well enough to trust
# (a picture may come as application/octet-stream), and a declared image/png must really be one
# before a browser is asked to show it inline.
_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"),
               (b"BM", "image/bmp"), (b"#!AMR-WB\n", "audio/amr-wb"), (b"#!AMR\n", "audio/amr"),
               (b"#!SILK", "audio/silk"))


def sniffed_content_type(content: bytes) -> str | None:
    """The content type the bytes themselves say, for the formats above (and WEBP, MP4), else None."""
    for signature, content_type in _SIGNATURES:
        if content.startswith(signature):
            return content_type
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    if content[4:8] == b"ftyp":
        return "video/mp4"
    return None


def effective_content_type(msg_type: str, declared: str, content: bytes) -> str:
    """What we store the media as: the sniffed type when the bytes say one; otherwise what WeCom
    declared, except for pictures, which must sniff as a raster format to be shown inline."""
    sniffed = sniffed_content_type(content)
    if sniffed or msg_type == "image":
        return sniffed or ""
    return declared


def content_type_allowed(msg_type: str, content_type: str) -> bool:
    """Whether `content_type` may be the media of a `msg_type` message."""
    if msg_type == "image":
        return content_type in _IMAGE_TYPES
    if msg_type == "voice":
        return content_type in _VOICE_TYPES
    if msg_type == "video":
        return content_type.startswith("video/")
    return msg_type == "file"


def inbound_media_id(inbound: InboundMessage) -> str:
    """The media_id of a customer's picture, voice, video or file: `MediaId` in an app callback,
    `<msgtype>.media_id` in a pulled 微信客服 message."""
    payload = inbound.payload if isinstance(inbound.payload, dict) else {}
    if inbound.source == InboundMessage.Source.CALLBACK:
        return str(payload.get("MediaId") or "")
    body = payload.get(inbound.msg_type)
    return str(body.get("media_id") or "") if isinstance(body, dict) else ""


def needs_media_download(inbound: InboundMessage) -> bool:
    return inbound.msg_type in MEDIA_MSG_TYPES and bool(inbound_media_id(inbound))


def store_inbound_media(*, inbound_id: int) -> InboundMessage | None:
    """Download the media of a stored inbound message once; a stored or refused one is left alone.

    Transient WeCom errors (busy, timeouts) propagate so the job retries; anything WeCom will
    never serve (expired media_id, 40007) or that we refuse is recorded in `media_error`.
    """
    inbound = InboundMessage.objects.select_related("app").filter(pk=inbound_id).first()
    if inbound is None or inbound.media or inbound.media_error or not needs_media_download(inbound):
        return inbound
    media_id = inbound_media_id(inbound)
    limit = settings.MEDIA_MAX_BYTES
    try:
        download = WeComClient(inbound.app).get_media(media_id=media_id, max_bytes=limit)
    except MediaTooLarge as exc:
        return _refuse(inbound_id, f"too large: over {limit} bytes" + (f" ({exc.size})" if exc.size else ""))
    except (WeComPermanentError, WeComTokenError) as exc:
        return _refuse(inbound_id, f"WeCom refused media/get: errcode {exc.errcode} {exc.errmsg}"[:300])
    content_type = effective_content_type(inbound.msg_type, download.content_type, download.content)
    if not content_type_allowed(inbound.msg_type, content_type):
        return _refuse(inbound_id, f"content type {content_type or download.content_type or '(none)'} is not "
                                   f"allowed for a {inbound.msg_type} message"[:300])
    with transaction.atomic():
        row = InboundMessage.objects.select_for_update().get(pk=inbound_id)
        if row.media or row.media_error:  # another job stored it meanwhile
            return row
        row.media.save(_file_name(download.filename, content_type, inbound.msg_type),
                       ContentFile(download.content), save=False)
        row.media_content_type = content_type
        row.media_size = len(download.content)
        row.save(update_fields=["media", "media_content_type", "media_size"])
        add_trace_event(inbound=row, stage=Stage.MEDIA_STORED, size=row.media_size,
                        content_type=row.media_content_type)
        _tell_screens(row)
    return row


def requeue_missing_media(*, older_than_seconds: int, limit: int = 100) -> int:
    """The sweeper: media neither stored nor refused long after the message arrived lost its job
    (broker loss, a killed worker); enqueue it again while WeCom still keeps it (3 days). The job
    is idempotent, so a slow one enqueued twice stores the file once."""
    now = timezone.now()
    missing = (InboundMessage.objects.filter(msg_type__in=MEDIA_MSG_TYPES, media="", media_error="",
                                             received_at__lt=now - timedelta(seconds=older_than_seconds),
                                             received_at__gt=now - WECOM_MEDIA_LIFETIME)
               .exclude(origin__in=NOT_FROM_CUSTOMERS).order_by("id")[:limit])
    requeued = [inbound.pk for inbound in missing if needs_media_download(inbound)]
    for inbound_id in requeued:
        enqueue_media_download(inbound_id)
    return len(requeued)


def _tell_screens(inbound: InboundMessage) -> None:
    """Screens showing the message (a handed-off conversation) fetch its line again, now with the file."""
    for message_id, conversation_id in Message.objects.filter(inbound=inbound).values_list("pk", "conversation_id"):
        conversation_changed(conversation_id, {"type": "media", "message": message_id})


def _refuse(inbound_id: int, reason: str) -> InboundMessage:
    with transaction.atomic():
        row = InboundMessage.objects.select_for_update().get(pk=inbound_id)
        if not row.media and not row.media_error:
            row.media_error = reason[:300]
            row.save(update_fields=["media_error"])
            add_trace_event(inbound=row, stage=Stage.MEDIA_REFUSED, reason=row.media_error)
            _tell_screens(row)
    logger.warning("media.refused", inbound=inbound_id, reason=reason)
    return row


def _file_name(filename: str, content_type: str, msg_type: str) -> str:
    """A name whose suffix tells the type (media_path keeps only the suffix, never the name)."""
    if PurePath(filename).suffix:
        return filename
    guessed = mimetypes.guess_extension(content_type) or {"voice": ".amr"}.get(msg_type, "")
    return f"{msg_type}{guessed}"


# --- what agents send -----------------------------------------------------------------------------
# WeCom's media/upload limits (docs/WECOM_PROTOCOL.md 4.4): a picture is a JPG or PNG of at most
# 10 MB; anything else goes as a file of at most 20 MB; both more than 5 bytes.
IMAGE_UPLOAD_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
IMAGE_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
FILE_UPLOAD_MAX_BYTES = 20 * 1024 * 1024
UPLOAD_MIN_BYTES = 6


class AttachmentProblem(models.TextChoices):
    EMPTY = "empty", "the file is empty"
    TOO_LARGE = "too_large", "the file is larger than WeCom accepts"


def attachment_max_bytes() -> int:
    return min(FILE_UPLOAD_MAX_BYTES, settings.MEDIA_MAX_BYTES)


def attachment_msgtype(*, filename: str, size: int) -> tuple[str, AttachmentProblem | None]:
    """How an agent's attachment goes out ("image" or "file") and, when it cannot, why not."""
    if size < UPLOAD_MIN_BYTES:
        return "file", AttachmentProblem.EMPTY
    if PurePath(filename).suffix.lower() in IMAGE_UPLOAD_SUFFIXES and size <= IMAGE_UPLOAD_MAX_BYTES:
        return "image", None
    if size > attachment_max_bytes():
        return "file", AttachmentProblem.TOO_LARGE
    return "file", None
