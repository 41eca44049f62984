"""Encrypted callbacks sent the way WeCom sends them: message/event XML, envelope, signature, redelivery.

WeCom drops the connection after 5 s without a response and re-sends; any non-200 is a failure too
(docs/WECOM_PROTOCOL.md section 5). How often it retries is ambiguous, so we resend the IDENTICAL request (same
query string and body) up to `max_retries` more times, which is what MsgId de-duplication must survive.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from defusedxml import ElementTree as SafeElementTree

from wecom_sandbox.crypto import CallbackCrypto, CryptoError

# -- plaintext builders ---------------------------------------------------------------------------


def message_xml(fields: dict[str, str | int]) -> bytes:
    """<xml> with one child per field: ints bare, strings in CDATA (as real payloads mostly are)."""
    parts = ["<xml>"]
    for tag, value in fields.items():
        if isinstance(value, int):
            parts.append(f"<{tag}>{value}</{tag}>")
        else:
            # "]]>" cannot appear inside CDATA; split it across two sections.
            text = str(value).replace("]]>", "]]]]><![CDATA[>")
            parts.append(f"<{tag}><![CDATA[{text}]]></{tag}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")


def new_msg_id() -> str:
    # Real MsgIds are 64-bit and exceed 2**53, which catches anyone parsing them as floats.
    return str(2**62 + secrets.randbelow(2**62))


def app_message(
    msg_type: str,
    *,
    corp_id: str,
    agent_id: int | str,
    from_user: str,
    create_time: int | None = None,
    msg_id: str | None = None,
    **fields: str | int,
) -> bytes:
    """Plaintext of a member's message to an app. `fields` by type:

    text: Content; image: PicUrl, MediaId; voice: MediaId, Format; video: MediaId, ThumbMediaId;
    location: Location_X, Location_Y, Scale, Label; link: Title, Description, Url, PicUrl.
    """
    head = {
        "ToUserName": corp_id,
        "FromUserName": from_user,
        "CreateTime": create_time or int(time.time()),
        "MsgType": msg_type,
    }
    return message_xml({**head, **fields, "MsgId": msg_id or new_msg_id(), "AgentID": int(agent_id)})


def text_message(*, corp_id, agent_id, from_user, content: str, **kwargs) -> bytes:
    return app_message(
        "text", corp_id=corp_id, agent_id=agent_id, from_user=from_user, Content=content, **kwargs
    )


def app_event(
    event: str, *, corp_id: str, agent_id: int | str, from_user: str, create_time: int | None = None, **fields
) -> bytes:
    """subscribe / unsubscribe / enter_agent (EventKey="") and other app events; events carry no MsgId."""
    if event == "enter_agent":
        fields.setdefault("EventKey", "")
    return message_xml(
        {
            "ToUserName": corp_id,
            "FromUserName": from_user,
            "CreateTime": create_time or int(time.time()),
            "MsgType": "event",
            "Event": event,
            **fields,
            "AgentID": int(agent_id),
        }
    )


def kf_event(*, corp_id: str, token: str, open_kfid: str, create_time: int | None = None) -> bytes:
    """kf_msg_or_event: no content, only "pull with this Token" (docs/WECOM_PROTOCOL.md 4.2)."""
    return message_xml(
        {
            "ToUserName": corp_id,
            "CreateTime": create_time or int(time.time()),
            "MsgType": "event",
            "Event": "kf_msg_or_event",
            "Token": token,
            "OpenKfId": open_kfid,
        }
    )


def envelope(encrypted: str, *, receive_id: str, agent_id: int | str | None = None) -> bytes:
    """The POST body around an Encrypt value, laid out like real WeCom bodies (vector A2), newlines included."""
    body = f"<xml><ToUserName><![CDATA[{receive_id}]]></ToUserName>\n<Encrypt><![CDATA[{encrypted}]]></Encrypt>\n"
    if agent_id is not None:
        body += f"<AgentID><![CDATA[{agent_id}]]></AgentID>\n"
    return (body + "</xml>").encode("utf-8")


# -- results --------------------------------------------------------------------------------------


@dataclass
class Attempt:
    number: int
    status: int | None  # None: no response (timeout or connection error)
    error: str | None
    elapsed: float
    response_body: bytes = b""


@dataclass
class CallbackResult:
    url: str  # full URL including the signed query string, identical for every attempt
    body: bytes
    plaintext: bytes
    attempts: list[Attempt] = field(default_factory=list)
    reply_plaintext: bytes | None = None  # decrypted passive reply, when the server sent one
    reply_error: str | None = None

    @property
    def delivered(self) -> bool:
        return any(a.status == 200 for a in self.attempts)

    @property
    def statuses(self) -> list[int | None]:
        return [a.status for a in self.attempts]

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "delivered": self.delivered,
            "attempts": [
                {"number": a.number, "status": a.status, "error": a.error, "elapsed": round(a.elapsed, 3)}
                for a in self.attempts
            ],
            "reply_plaintext": self.reply_plaintext.decode("utf-8", "replace")
            if self.reply_plaintext
            else None,
            "reply_error": self.reply_error,
        }


@dataclass
class UrlVerification:
    ok: bool  # 200 and the body is exactly the echostr plaintext
    status: int | None
    expected: str
    body: bytes
    elapsed: float
    error: str | None = None

    @property
    def within_deadline(self) -> bool:
        return self.elapsed <= 1.0  # WeCom requires the answer within 1 s


# -- sender ---------------------------------------------------------------------------------------


class CallbackSender:
    """POSTs encrypted callbacks for one receiver (an app, or the kf account) to one callback URL."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        agent_id: int | str | None = None,
        timeout: float = 5.0,
        max_retries: int = 3,
        retry_interval: float = 0.0,
        client: httpx.Client | None = None,
    ):
        self.url = url
        self.crypto = CallbackCrypto(token, encoding_aes_key, receive_id)
        self.agent_id = agent_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_interval = retry_interval
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- building ---------------------------------------------------------------------------------

    def prepare(self, plaintext: bytes, *, timestamp=None, nonce=None, random_prefix=None) -> CallbackResult:
        """Encrypt and sign once; the returned result (no attempts yet) pins the exact request."""
        timestamp = str(timestamp or int(time.time()))
        nonce = str(nonce or secrets.randbelow(10**10))
        encrypted = self.crypto.encrypt(plaintext, random_prefix=random_prefix)
        signature = self.crypto.sign(timestamp, nonce, encrypted)
        params = {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}
        body = envelope(encrypted, receive_id=self.crypto.receive_id, agent_id=self.agent_id)
        return CallbackResult(url=self._with_query(params), body=body, plaintext=plaintext)

    def _with_query(self, params: dict) -> str:
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}{urlencode(params)}"

    # -- sending ----------------------------------------------------------------------------------

    def send(self, plaintext: bytes, **prepare_kwargs) -> CallbackResult:
        return self.deliver(self.prepare(plaintext, **prepare_kwargs))

    def deliver(self, result: CallbackResult) -> CallbackResult:
        """Send the prepared request, re-sending it unchanged after a timeout or non-200."""
        for number in range(1, self.max_retries + 2):
            attempt = self._attempt(number, result)
            result.attempts.append(attempt)
            if attempt.status == 200:
                self._read_reply(result, attempt.response_body)
                break
            if number <= self.max_retries and self.retry_interval:
                time.sleep(self.retry_interval)
        return result

    def _attempt(self, number: int, result: CallbackResult) -> Attempt:
        started = time.monotonic()
        try:
            response = self._client.post(
                result.url,
                content=result.body,
                headers={"Content-Type": "text/xml; charset=utf-8"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            return Attempt(number, None, f"{type(exc).__name__}", time.monotonic() - started)
        return Attempt(number, response.status_code, None, time.monotonic() - started, response.content)

    def send_concurrently(self, plaintext: bytes, copies: int = 2, **prepare_kwargs) -> list[CallbackResult]:
        """Deliver the same signed request `copies` times at once, like a redelivery racing the original."""
        prepared = self.prepare(plaintext, **prepare_kwargs)
        results = [CallbackResult(prepared.url, prepared.body, prepared.plaintext) for _ in range(copies)]
        start = threading.Barrier(copies)

        def run(result: CallbackResult) -> None:
            start.wait()
            self.deliver(result)

        threads = [threading.Thread(target=run, args=(r,), daemon=True) for r in results]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    # -- conveniences -----------------------------------------------------------------------------

    def send_text(self, *, from_user: str, content: str, **kwargs) -> CallbackResult:
        return self.send(
            text_message(
                corp_id=self.crypto.receive_id,
                agent_id=self.agent_id,
                from_user=from_user,
                content=content,
                **kwargs,
            )
        )

    def send_event(self, event: str, *, from_user: str, **fields) -> CallbackResult:
        return self.send(
            app_event(
                event, corp_id=self.crypto.receive_id, agent_id=self.agent_id, from_user=from_user, **fields
            )
        )

    def send_kf_event(self, *, token: str, open_kfid: str) -> CallbackResult:
        return self.send(kf_event(corp_id=self.crypto.receive_id, token=token, open_kfid=open_kfid))

    def verify_url(self, echostr_plaintext: str | None = None) -> UrlVerification:
        """Do WeCom's GET URL verification once; ok only for an exact echo of the plaintext."""
        expected = echostr_plaintext or str(10**18 + secrets.randbelow(9 * 10**18))
        echostr = self.crypto.encrypt(expected.encode("utf-8"))
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**10))
        params = {
            "msg_signature": self.crypto.sign(timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }
        started = time.monotonic()
        try:
            response = self._client.get(self._with_query(params), timeout=self.timeout)
        except httpx.HTTPError as exc:
            return UrlVerification(False, None, expected, b"", time.monotonic() - started, type(exc).__name__)
        elapsed = time.monotonic() - started
        ok = response.status_code == 200 and response.content == expected.encode("utf-8")
        return UrlVerification(ok, response.status_code, expected, response.content, elapsed)

    # -- passive reply ----------------------------------------------------------------------------

    def _read_reply(self, result: CallbackResult, body: bytes) -> None:
        """Check a passive reply: empty (or the tolerated "success") means none was sent."""
        if body.strip() in (b"", b"success"):
            return
        try:
            root = SafeElementTree.fromstring(body, forbid_dtd=True)
            fields = {child.tag: (child.text or "").strip() for child in root}
            self.crypto.check_signature(
                fields.get("MsgSignature", ""), fields.get("TimeStamp", ""), fields.get("Nonce", ""),
                fields.get("Encrypt", ""),
            )  # fmt: skip
            result.reply_plaintext = self.crypto.decrypt(fields.get("Encrypt", ""))
        except CryptoError as exc:
            result.reply_error = f"passive reply refused: {exc}"
        except Exception as exc:  # noqa: BLE001 - any unreadable reply is reported, never raised
            result.reply_error = f"unreadable reply: {type(exc).__name__}"
