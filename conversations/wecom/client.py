"""WeCom API client: per-app access tokens cached in Redis with single-flight refresh, typed errors.

One gettoken per app per expiry, however many threads and processes send at once:
the token lives in Redis under the tenant's schema; whoever finds it missing takes a
Redis lock and fetches it, the others wait for the lock and read the fresh token.
A process keeps the token it read until Redis would have dropped it, so a send costs
no Redis round trip for it. A token refused with 40001/40014/42001 is dropped (here,
and in Redis only if it is still the one we used) and the call is retried once with
a new one.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import unquote

import httpx
import structlog
from django.conf import settings
from redis.exceptions import LockError

from conversations.metrics import TOKEN_FETCHES
from conversations.wecom.errors import (
    TOKEN_ERRCODES,
    WeComError,
    WeComTokenError,
    WeComTransientError,
    error_for,
)
from tenants.keys import current_schema, redis_key
from tenants.redis import redis_client

logger = structlog.get_logger("conversations.wecom")
# Refresh this long before WeCom's stated expiry, so no call carries a token that dies in flight.
TOKEN_EXPIRY_MARGIN_SECONDS = 300
TOKEN_LOCK_TIMEOUT_SECONDS = 15


@cache
def _http() -> httpx.Client:
    # One pooled client per process: connection reuse across all apps and threads.
    timeout = httpx.Timeout(settings.WECOM_HTTP_TIMEOUT_SECONDS, connect=5.0)
    return httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))


# This process's copies: (token key, corp id) -> (token, time.monotonic() at which Redis drops it).
_held: dict[tuple[str, str], tuple[str, float]] = {}


def forget_held_tokens() -> None:
    """Drop this process's copies (tests: each starts with the tokens in Redis only)."""
    _held.clear()


_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def _local_lock(key: str) -> threading.Lock:
    with _local_locks_guard:
        return _local_locks.setdefault(key, threading.Lock())


class MediaTooLarge(Exception):
    """media/get announced or streamed more bytes than the caller accepts (nothing is kept)."""

    def __init__(self, size: int | None, limit: int):
        super().__init__(f"media larger than {limit} bytes" + (f" ({size})" if size is not None else ""))
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class MediaDownload:
    """The bytes of a media/get answer with what WeCom said about them."""

    content: bytes
    content_type: str
    filename: str


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)")
_FILENAME = re.compile(r'filename\s*=\s*"?([^";]+)"?')


def _disposition_filename(header: str) -> str:
    """The file name of a Content-Disposition header (RFC 5987 form first), without any path."""
    match = _FILENAME_STAR.search(header)
    name = unquote(match.group(1)) if match else ""
    if not name and (match := _FILENAME.search(header)):
        name = match.group(1)
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip()


class WeComClient:
    """Calls the WeCom API on behalf of one WeComApp of the current tenant."""

    def __init__(self, app, *, schema: str | None = None):
        self.app = app
        self.schema = schema or current_schema()
        self.base_url = settings.WECOM_API_BASE.rstrip("/")
        self._token_key = redis_key("wecom", "token", app.pk, schema=schema)
        self._lock_key = redis_key("wecom", "token-lock", app.pk, schema=schema)
        self._held_key = (self._token_key, app.corp_id)  # this process's copy (_held)

    # --- access token -----------------------------------------------------------
    def access_token(self) -> str:
        held = _held.get(self._held_key)
        if held and time.monotonic() < held[1]:
            return held[0]
        if cached := self._cached_token():
            return cached
        # In-process first (threads of one worker), then across processes.
        with _local_lock(self._token_key):
            if cached := self._cached_token():
                return cached
            try:
                with redis_client().lock(self._lock_key, timeout=TOKEN_LOCK_TIMEOUT_SECONDS,
                                         blocking_timeout=TOKEN_LOCK_TIMEOUT_SECONDS):
                    return self._cached_token() or self._fetch_token()
            except LockError as exc:
                raise WeComTransientError(None, "token lock timeout", path="gettoken") from exc

    def _cached_token(self) -> str | None:
        """The token in Redis, which this process then keeps for as long as Redis will."""
        pipe = redis_client().pipeline(transaction=False)
        pipe.get(self._token_key)
        pipe.pttl(self._token_key)
        token, ttl_ms = pipe.execute()
        if not token:
            return None
        token = token.decode()
        if ttl_ms > 0:
            _held[self._held_key] = (token, time.monotonic() + ttl_ms / 1000)
        return token

    def _fetch_token(self) -> str:
        try:
            body = self._request("GET", "/cgi-bin/gettoken",
                                 params={"corpid": self.app.corp_id, "corpsecret": self.app.secret})
        except WeComError as exc:  # unreachable, timeout, HTTP error: errcode None
            TOKEN_FETCHES.labels(tenant=self.schema, errcode=str(exc.errcode)).inc()
            raise
        errcode = body.get("errcode", 0)
        TOKEN_FETCHES.labels(tenant=self.schema, errcode=str(errcode)).inc()
        if errcode != 0:
            error = error_for(errcode, body.get("errmsg", ""), path="gettoken")
            raise error if error.transient else WeComTokenError(errcode, body.get("errmsg", ""), path="gettoken")
        token = body["access_token"]
        ttl = max(int(body.get("expires_in", 7200)) - TOKEN_EXPIRY_MARGIN_SECONDS, 60)
        redis_client().set(self._token_key, token, ex=ttl)
        _held[self._held_key] = (token, time.monotonic() + ttl)
        logger.info("wecom.token_refreshed", app=self.app.pk, ttl=ttl)
        return token

    def forget_token(self, token: str) -> None:
        """Drop the cached token, unless another thread already replaced it (atomic compare-and-delete)."""
        if _held.get(self._held_key, ("",))[0] == token:
            _held.pop(self._held_key, None)
        redis_client().eval(_DELETE_IF_EQUAL, 1, self._token_key, token)

    # --- calls ---------------------------------------------------------------------
    def call(self, path: str, payload: dict[str, Any] | None = None, *, method: str = "POST",
             query: dict[str, str] | None = None) -> dict:
        """Call `path` with the app's token (and `query`, for GET calls); refresh the token once if WeCom
        refuses it."""
        for attempt in (1, 2):
            token = self.access_token()
            body = self._request(method, path, params={**(query or {}), "access_token": token}, json=payload)
            errcode = body.get("errcode", 0)
            if errcode == 0:
                return body
            if errcode in TOKEN_ERRCODES and attempt == 1:
                self.forget_token(token)
                continue
            raise error_for(errcode, body.get("errmsg", ""), path=path)
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, *, params: dict, json: dict | None = None) -> dict:
        try:
            response = _http().request(method, self.base_url + path, params=params, json=json)
        except httpx.TimeoutException as exc:
            raise WeComTransientError(None, f"timeout: {type(exc).__name__}", path=path) from exc
        except httpx.HTTPError as exc:
            raise WeComTransientError(None, f"unreachable: {type(exc).__name__}", path=path) from exc
        if response.status_code >= 500:
            raise WeComTransientError(None, f"HTTP {response.status_code}", path=path)
        if response.status_code != 200:
            raise WeComError(None, f"HTTP {response.status_code}", path=path)
        try:
            return response.json()
        except ValueError as exc:
            raise WeComTransientError(None, "response is not JSON", path=path) from exc

    # --- media: bytes instead of JSON ---------------------------------------------------
    def get_media(self, *, media_id: str, max_bytes: int) -> MediaDownload:
        """media/get: the file's bytes, or a JSON errcode. Streams and stops past `max_bytes`
        (MediaTooLarge), so a huge file never sits in memory."""
        path = "/cgi-bin/media/get"
        for attempt in (1, 2):
            token = self.access_token()
            try:
                with _http().stream("GET", self.base_url + path,
                                    params={"access_token": token, "media_id": media_id}) as response:
                    self._check_status(response, path)
                    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    if content_type in ("application/json", "text/plain"):
                        body = self._json_of(response.read(), path)
                    else:
                        return MediaDownload(
                            content=self._read_limited(response, max_bytes), content_type=content_type,
                            filename=_disposition_filename(response.headers.get("Content-Disposition", "")))
            except httpx.TimeoutException as exc:
                raise WeComTransientError(None, f"timeout: {type(exc).__name__}", path=path) from exc
            except httpx.HTTPError as exc:
                raise WeComTransientError(None, f"unreachable: {type(exc).__name__}", path=path) from exc
            errcode = body.get("errcode", 0)
            if errcode in TOKEN_ERRCODES and attempt == 1:
                self.forget_token(token)
                continue
            raise error_for(errcode, body.get("errmsg", ""), path=path)
        raise AssertionError("unreachable")

    def upload_media(self, *, media_type: str, filename: str, content: bytes, content_type: str) -> str:
        """media/upload (multipart, field "media"): the media_id, valid for 3 days."""
        path = "/cgi-bin/media/upload"
        for attempt in (1, 2):
            token = self.access_token()
            try:
                response = _http().post(self.base_url + path, params={"access_token": token, "type": media_type},
                                        files={"media": (filename, content, content_type)})
            except httpx.TimeoutException as exc:
                raise WeComTransientError(None, f"timeout: {type(exc).__name__}", path=path) from exc
            except httpx.HTTPError as exc:
                raise WeComTransientError(None, f"unreachable: {type(exc).__name__}", path=path) from exc
            self._check_status(response, path)
            body = self._json_of(response.content, path)
            errcode = body.get("errcode", 0)
            if errcode == 0:
                return str(body["media_id"])
            if errcode in TOKEN_ERRCODES and attempt == 1:
                self.forget_token(token)
                continue
            raise error_for(errcode, body.get("errmsg", ""), path=path)
        raise AssertionError("unreachable")

    @staticmethod
    def _check_status(response: httpx.Response, path: str) -> None:
        if response.status_code >= 500:
            raise WeComTransientError(None, f"HTTP {response.status_code}", path=path)
        if response.status_code != 200:
            raise WeComError(None, f"HTTP {response.status_code}", path=path)

    @staticmethod
    def _json_of(raw: bytes, path: str) -> dict:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise WeComTransientError(None, "response is not JSON", path=path) from exc
        if not isinstance(body, dict):
            raise WeComTransientError(None, "response is not a JSON object", path=path)
        return body

    @staticmethod
    def _read_limited(response: httpx.Response, max_bytes: int) -> bytes:
        announced = response.headers.get("Content-Length")
        if announced and announced.isdigit() and int(announced) > max_bytes:
            raise MediaTooLarge(int(announced), max_bytes)
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise MediaTooLarge(None, max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    # --- typed endpoints --------------------------------------------------------------
    def kf_sync_msg(self, *, open_kfid: str, cursor: str = "", token: str = "", limit: int = 1000) -> dict:
        payload: dict[str, Any] = {"open_kfid": open_kfid, "limit": limit}
        if cursor:
            payload["cursor"] = cursor
        if token:
            payload["token"] = token
        return self.call("/cgi-bin/kf/sync_msg", payload)

    def send_text(self, *, touser: str, content: str, duplicate_check_seconds: int = 1800) -> dict:
        return self.call("/cgi-bin/message/send", {
            "touser": touser, "msgtype": "text", "agentid": self.app.agent_id,
            "text": {"content": content},
            "enable_duplicate_check": 1, "duplicate_check_interval": duplicate_check_seconds,
        })

    def send_media(self, *, touser: str, msgtype: str, media_id: str,
                   duplicate_check_seconds: int = 1800) -> dict:
        """message/send of an image, voice, video or file already uploaded (media/upload)."""
        return self.call("/cgi-bin/message/send", {
            "touser": touser, "msgtype": msgtype, "agentid": self.app.agent_id,
            msgtype: {"media_id": media_id},
            "enable_duplicate_check": 1, "duplicate_check_interval": duplicate_check_seconds,
        })

    def kf_send_media(self, *, open_kfid: str, external_userid: str, msgtype: str, media_id: str,
                      msgid: str) -> dict:
        return self.call("/cgi-bin/kf/send_msg", {
            "touser": external_userid, "open_kfid": open_kfid, "msgid": msgid,
            "msgtype": msgtype, msgtype: {"media_id": media_id},
        })

    def kf_send_text(self, *, open_kfid: str, external_userid: str, content: str, msgid: str) -> dict:
        return self.call("/cgi-bin/kf/send_msg", {
            "touser": external_userid, "open_kfid": open_kfid, "msgid": msgid,
            "msgtype": "text", "text": {"content": content},
        })

    def kf_send_text_on_event(self, *, code: str, content: str, msgid: str) -> dict:
        """A 微信客服 event message (welcome on enter_session, closing on ending the session): allowed
        once per code, within the code's life (20 s for welcome and closing codes)."""
        return self.call("/cgi-bin/kf/send_msg_on_event", {
            "code": code, "msgid": msgid, "msgtype": "text", "text": {"content": content},
        })

    def kf_send_menu(self, *, open_kfid: str, external_userid: str, menu: dict, msgid: str) -> dict:
        """A 微信客服 menu (msgmenu): `menu` is its {head_content, list, tail_content} object."""
        return self.call("/cgi-bin/kf/send_msg", {
            "touser": external_userid, "open_kfid": open_kfid, "msgid": msgid, "msgtype": "msgmenu", "msgmenu": menu,
        })

    def kf_send_menu_on_event(self, *, code: str, menu: dict, msgid: str) -> dict:
        """A menu as the event message (allowed for the welcome and the session end, not the others)."""
        return self.call("/cgi-bin/kf/send_msg_on_event", {
            "code": code, "msgid": msgid, "msgtype": "msgmenu", "msgmenu": menu,
        })

    def kf_customer_batchget(self, *, external_userids: list[str]) -> dict:
        """微信客服 customers' nickname, avatar, gender, unionid: 1 to 100 ids a call, answered only for
        customers who wrote or entered a session in the last 48 hours (the others in invalid_external_userid)."""
        return self.call("/cgi-bin/kf/customer/batchget",
                         {"external_userid_list": external_userids, "need_enter_session_context": 0})

    def user_get(self, *, userid: str) -> dict:
        """A member of the corp as this self-built app sees it: name always; avatar, gender, mobile and email
        only for apps created before 2022-06-20 (newer apps get them through OAuth only)."""
        return self.call("/cgi-bin/user/get", method="GET", query={"userid": userid})

    def kf_service_state(self, *, open_kfid: str, external_userid: str) -> dict:
        return self.call("/cgi-bin/kf/service_state/get",
                         {"open_kfid": open_kfid, "external_userid": external_userid})

    def kf_transfer(self, *, open_kfid: str, external_userid: str, service_state: int,
                    servicer_userid: str = "") -> dict:
        payload = {"open_kfid": open_kfid, "external_userid": external_userid, "service_state": service_state}
        if servicer_userid:
            payload["servicer_userid"] = servicer_userid
        return self.call("/cgi-bin/kf/service_state/trans", payload)
