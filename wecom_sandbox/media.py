"""The simulated media APIs: media/upload (multipart in, media_id out) and media/get (bytes out).

The sandbox holds media per corp under a media_id for WeCom's 3 days: what our platform uploads
before sending a picture or file, and what a scripted customer "sends" (the control API stores
the bytes, then the callback or the pulled message carries the media_id). Limits and codes:
docs/WECOM_PROTOCOL.md section 4.4; those marked UNCONFIRMED there are our best reading.
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass
from pathlib import PurePath

from wecom_sandbox.api import MEDIA_TTL_SECONDS, Grant, _authorize, error, ok
from wecom_sandbox.state import Media, SandboxState

MIN_BYTES = 5  # WeCom refuses files of 5 bytes or less (UNCONFIRMED: "大于5个字节")
# Per type: the largest size and the file name extensions WeCom accepts (None: any).
LIMITS: dict[str, tuple[int, frozenset[str] | None, int]] = {
    "image": (10 * 1024 * 1024, frozenset({".jpg", ".jpeg", ".png"}), 40009),
    "voice": (2 * 1024 * 1024, frozenset({".amr"}), 40010),
    "video": (10 * 1024 * 1024, frozenset({".mp4"}), 40011),
    "file": (20 * 1024 * 1024, None, 40006),
}
INVALID_FILE_TYPE = 40005
INVALID_MEDIA_TYPE = 40004
INVALID_MEDIA_ID = 40007
UNSUPPORTED_ERRMSG = {40004: "invalid media type", 40005: "invalid file type", 40006: "invalid file size",
                      40007: "invalid media_id", 40009: "invalid image size", 40010: "invalid voice size",
                      40011: "invalid video size"}
# The largest request body media/upload reads (the biggest allowed file plus multipart overhead).
MAX_UPLOAD_BODY_BYTES = LIMITS["file"][0] + 64 * 1024
PATHS = frozenset({"media/upload", "media/get"})


@dataclass(frozen=True)
class MediaFile:
    """A media/get answer: raw bytes, not JSON."""

    content: bytes
    content_type: str
    filename: str


def check_media(media_type: str, filename: str, size: int) -> dict | None:
    """WeCom's upload rules for one file; None when it passes, else the error answer."""
    if media_type not in LIMITS:
        return _error(INVALID_MEDIA_TYPE)
    max_bytes, extensions, size_errcode = LIMITS[media_type]
    if size <= MIN_BYTES or size > max_bytes:
        return _error(size_errcode, f"{media_type} must be {MIN_BYTES + 1}..{max_bytes} bytes, got {size}")
    if extensions is not None and PurePath(filename).suffix.lower() not in extensions:
        return _error(INVALID_FILE_TYPE, f"{media_type} must be one of {sorted(extensions)}")
    return None


def store(state: SandboxState, corp_id: str, *, media_type: str, filename: str, content_type: str,
          content: bytes) -> Media:
    """Hold the bytes under a new media_id (no checks: the control API's customers send anything)."""
    with state.lock:
        item = Media(state.new_id("sbxmedia"), corp_id, media_type, filename, content_type or
                     "application/octet-stream", content, state.now())
        state.media[item.media_id] = item
        return item


def find(state: SandboxState, corp_id: str, media_id: str) -> Media | None:
    """A live media of this corp (media_ids expire after 3 days and never cross corps)."""
    with state.lock:
        item = state.media.get(media_id)
        if item is None or item.corp_id != corp_id or state.now() - item.created_at > MEDIA_TTL_SECONDS:
            return None
        return item


def handle(state: SandboxState, path: str, query: dict, raw: bytes, content_type: str) -> dict | MediaFile:
    with state.lock:
        grant = _authorize(state, query)
        if isinstance(grant, dict):
            return grant
        if state.over_rate_limit(grant.corp.corp_id, path):
            return error(45009)
    if path == "media/upload":
        return _upload(state, grant, query, raw, content_type)
    return _get(state, grant, query)


def _upload(state: SandboxState, grant: Grant, query: dict, raw: bytes, content_type: str) -> dict:
    media_type = query.get("type", "")
    if media_type not in LIMITS:
        return _error(INVALID_MEDIA_TYPE)
    part = _multipart_file(raw, content_type)
    if part is None:
        return error(47001, "multipart/form-data with a file part named media expected")
    filename, part_type, content = part
    if problem := check_media(media_type, filename, len(content)):
        return problem
    item = store(state, grant.corp.corp_id, media_type=media_type, filename=filename,
                 content_type=part_type, content=content)
    return ok(type=media_type, media_id=item.media_id, created_at=str(int(item.created_at)))


def _get(state: SandboxState, grant: Grant, query: dict) -> dict | MediaFile:
    item = find(state, grant.corp.corp_id, query.get("media_id", ""))
    if item is None:
        return _error(INVALID_MEDIA_ID)
    return MediaFile(item.content, item.content_type, item.filename)


def _multipart_file(raw: bytes, content_type: str) -> tuple[str, str, bytes] | None:
    """(filename, content type, bytes) of the form part named "media", as WeCom reads it."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "media":
            filename = part.get_filename() or ""
            return filename, part.get_content_type(), part.get_payload(decode=True) or b""
    return None


def _error(errcode: int, hint: str = "") -> dict:
    answer = error(errcode, hint)
    if errcode in UNSUPPORTED_ERRMSG:
        answer["errmsg"] = f"{UNSUPPORTED_ERRMSG[errcode]}, hint: [sandbox{': ' + hint if hint else ''}]"
    return answer
