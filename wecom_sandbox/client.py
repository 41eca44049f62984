"""Python handle on a running WeCom sandbox: its /sandbox/ control API, and starting one in a thread."""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence

import httpx

from wecom_sandbox.server import SandboxServer, create_server
from wecom_sandbox.state import SandboxState


class SandboxError(Exception):
    """The control API refused a request (400/404); `detail` says why."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def start_sandbox(
    host: str = "127.0.0.1", port: int = 0, state: SandboxState | None = None
) -> tuple[SandboxServer, str]:
    """Serve a sandbox from a daemon thread (port 0 = any free port); returns (server, base_url).

    Call server.stop() when done.
    """
    server = create_server(host, port, state)
    # A short poll interval keeps stop() (and so test teardown) fast.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="wecom-sandbox", daemon=True
    )
    thread.start()
    return server, server.base_url


class SandboxClient:
    """Thin wrapper over the control endpoints; every method returns the decoded JSON."""

    def __init__(self, base_url: str, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method: str, path: str, *, json: dict | None = None, params: dict | None = None) -> dict:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        response = self._http.request(method, f"/sandbox/{path}", json=json, params=params)
        if response.status_code != 200:
            raise SandboxError(response.status_code, response.json().get("detail", response.text))
        return response.json()

    # -- setup --------------------------------------------------------------------------------------

    def health(self) -> dict:
        return self._call("GET", "health")

    def reset(self) -> dict:
        return self._call("POST", "reset")

    def create_corp(
        self,
        corp_id: str,
        *,
        apps: Sequence[dict] = (),
        kf_accounts: Sequence[dict] = (),
        members: Sequence[str] = (),
    ) -> dict:
        """Create or replace a corp.

        apps: [{"agent_id": 1000002, "secret": "...", "callback": {"url", "token", "encoding_aes_key"}}]
            ("created_before_2022_06": true: user/get still returns avatars and other private fields to it)
        kf_accounts: [{"open_kfid": "wk...", "secret": "...", "name": "...", "callback": {...}}]
        members: userids accepted by message/send; empty accepts anyone.
        """
        body = {
            "corp_id": corp_id,
            "apps": list(apps),
            "kf_accounts": list(kf_accounts),
            "members": list(members),
        }
        return self._call("POST", "corps", json=body)

    def get_corp(self, corp_id: str) -> dict:
        return self._call("GET", "corps", params={"corp_id": corp_id})

    def corps(self) -> list[dict]:
        """Every corp's summary: corp_id, apps and kf_accounts (each saying whether it has a callback), members."""
        return self._call("GET", "corps")["corps"]

    def set_members(self, corp_id: str, members: list[str]) -> dict:
        return self._call("POST", "members", json={"corp_id": corp_id, "members": list(members)})

    def set_member_profiles(self, corp_id: str, profiles: list[dict]) -> dict:
        """Members' profiles for user/get ({"userid", "name", "avatar", ...}); see control.set_member_profiles."""
        return self._call("POST", "member_profiles", json={"corp_id": corp_id, "profiles": list(profiles)})

    def set_kf_customers(self, corp_id: str, customers: list[dict]) -> dict:
        """WeChat customers' profiles for kf/customer/batchget ({"external_userid", "nickname", "avatar", ...})."""
        return self._call("POST", "kf/customers", json={"corp_id": corp_id, "customers": list(customers)})

    def advance_clock(self, seconds: float) -> float:
        return self._call("POST", "clock/advance", json={"seconds": seconds})["now"]

    # -- faults and limits -------------------------------------------------------------------------

    def inject_fault(
        self,
        path: str,
        *,
        corp_id: str | None = None,
        errcode: int | None = None,
        http_status: int | None = None,
        delay: float = 0.0,
        count: int = 1,
    ) -> dict:
        """The next `count` calls to /cgi-bin/<path> (of corp_id, or any corp) misbehave.

        errcode answers HTTP 200 with that errcode (-1, 45009, 45033, 42001, 40014...);
        http_status answers that status (500, 502...); delay sleeps first (alone: then answers normally).
        """
        body = {
            "path": path,
            "corp_id": corp_id,
            "errcode": errcode,
            "http_status": http_status,
            "delay": delay,
            "count": count,
        }
        return self._call("POST", "faults", json=body)["fault"]

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._call("POST", "faults/clear")

    def invalidate_tokens(self, corp_id: str | None = None) -> int:
        """Revoke every live access_token (of one corp); they then answer 40014."""
        return self._call("POST", "tokens/invalidate", json={"corp_id": corp_id})["invalidated"]

    def set_rate_limit(self, corp_id: str, path: str, limit: int | None, *, window: float = 60) -> dict:
        return self._call(
            "POST", "rate_limits", json={"corp_id": corp_id, "path": path, "limit": limit, "window": window}
        )

    # -- observations ------------------------------------------------------------------------------

    def deliveries(
        self,
        *,
        corp_id: str | None = None,
        user: str | None = None,
        sender: str | None = None,
        channel: str | None = None,
        delivered: bool | None = None,
    ) -> list[dict]:
        """Recorded outbound messages, oldest first; delivered=True is what recipients actually got."""
        params = {"corp_id": corp_id, "user": user, "sender": sender, "channel": channel}
        if delivered is not None:
            params["delivered"] = "1" if delivered else "0"
        return self._call("GET", "deliveries", params=params)["deliveries"]

    def received_texts(self, user: str, *, corp_id: str | None = None) -> list[str]:
        """The texts `user` actually received, in order (drops and duplicates excluded; pictures, files and
        menus are in received_media / received_menus)."""
        return [d["content"] for d in self.deliveries(corp_id=corp_id, user=user, delivered=True)
                if d.get("msgtype", "text") == "text"]

    def calls(self, *, path: str | None = None, corp_id: str | None = None) -> list[dict]:
        return self._call("GET", "calls", params={"path": path, "corp_id": corp_id})["calls"]

    def callbacks(self) -> list[dict]:
        return self._call("GET", "callbacks")["callbacks"]

    # -- customers and members ---------------------------------------------------------------------

    def queue_kf_messages(
        self,
        corp_id: str,
        open_kfid: str,
        messages: list[dict],
        *,
        notify: bool = True,
        wait: bool = True,
        callback_timeout: float = 5.0,
    ) -> dict:
        """Customers write; returns {"token", "open_kfid", "msgids", "welcome_codes", "callback"?}."""
        body = {
            "corp_id": corp_id,
            "open_kfid": open_kfid,
            "messages": messages,
            "notify": notify,
            "wait": wait,
            "callback_timeout": callback_timeout,
        }
        return self._call("POST", "kf/messages", json=body)

    def queue_kf_text(
        self, corp_id: str, open_kfid: str, external_userid: str, content: str, **kwargs
    ) -> dict:
        message = {"external_userid": external_userid, "msgtype": "text", "text": {"content": content}}
        return self.queue_kf_messages(corp_id, open_kfid, [message], **kwargs)

    def customer_clicks(self, corp_id: str, open_kfid: str, external_userid: str, menu_id: str, **kwargs) -> dict:
        """The customer clicks item `menu_id` of a menu they received: a text (the item's content) with
        `text.menu_id`, to pull. Refused (400) when no menu delivered to them has that item."""
        body = {"corp_id": corp_id, "open_kfid": open_kfid, "external_userid": external_userid, "menu_id": menu_id,
                "notify": kwargs.pop("notify", True), "wait": kwargs.pop("wait", True),
                "callback_timeout": kwargs.pop("callback_timeout", 5.0)}
        return self._call("POST", "kf/menu_clicks", json=body)

    def received_menus(self, user: str, *, corp_id: str | None = None) -> list[dict]:
        """The menus `user` actually received (kf/send_msg and send_msg_on_event), in order:
        {"head", "items": [{"id", "content"}] (click items), "tail", "msgid"}."""
        return [{"head": d["payload"].get("head_content", ""), "tail": d["payload"].get("tail_content", ""),
                 "items": [item["click"] for item in d["payload"].get("list", []) if item.get("type") == "click"],
                 "msgid": d["msgid"]}
                for d in self.deliveries(corp_id=corp_id, user=user, delivered=True) if d["msgtype"] == "msgmenu"]

    def customer_enters_session(
        self,
        corp_id: str,
        open_kfid: str,
        external_userid: str,
        *,
        scene: str = "",
        scene_param: str = "",
        welcome: bool = True,
        **kwargs,
    ) -> dict:
        """A WeChat user opens the chat: an enter_session event (origin 4) to pull; with welcome, it
        carries a fresh welcome_code (also in the answer's "welcome_codes"), else none, as WeCom
        sends when no welcome may be sent through the API."""
        event = {"event_type": "enter_session", "external_userid": external_userid}
        if scene or scene_param:
            event.update(scene=scene, scene_param=scene_param)
        if not welcome:
            event["welcome_code"] = None
        return self.queue_kf_messages(corp_id, open_kfid, [{"msgtype": "event", "event": event}], **kwargs)

    def kf_session(self, corp_id: str, open_kfid: str, external_userid: str) -> dict:
        params = {"corp_id": corp_id, "open_kfid": open_kfid, "external_userid": external_userid}
        return self._call("GET", "kf/sessions", params=params)

    def set_kf_servicers(self, corp_id: str, open_kfid: str, servicers: dict[str, bool]) -> dict:
        """The account's servicers and whether each is receiving; only they may be given a session (3)."""
        body = {"corp_id": corp_id, "open_kfid": open_kfid, "servicers": servicers}
        return self._call("POST", "kf/servicers", json=body)

    def set_kf_session(self, corp_id: str, open_kfid: str, external_userid: str, **fields) -> dict:
        """Force service_state / servicer_userid / last_customer_message_at / sends_since_customer_message."""
        body = {"corp_id": corp_id, "open_kfid": open_kfid, "external_userid": external_userid, **fields}
        return self._call("POST", "kf/sessions", json=body)

    def send_app_message(
        self,
        corp_id: str,
        agent_id: int,
        from_user: str,
        *,
        msgtype: str = "text",
        content: str = "",
        event: str | None = None,
        fields: dict | None = None,
        wait: bool = True,
        callback_timeout: float = 5.0,
    ) -> dict:
        """A member writes to the app; the sandbox POSTs the encrypted callback to the app's callback URL."""
        body = {
            "corp_id": corp_id,
            "agent_id": agent_id,
            "from_user": from_user,
            "msgtype": msgtype,
            "content": content,
            "event": event,
            "fields": fields or {},
            "wait": wait,
            "callback_timeout": callback_timeout,
        }
        return self._call("POST", "apps/messages", json=body)

    # -- media: customers' pictures and files, and what our platform uploaded --------------------

    def put_media(self, corp_id: str, *, media_type: str, filename: str, content: bytes,
                  content_type: str = "") -> dict:
        """Hold a customer's file under a new media_id: {"media_id", "type", "filename", "size", ...}."""
        body = {"corp_id": corp_id, "type": media_type, "filename": filename, "content_type": content_type,
                "content_base64": base64.b64encode(content).decode("ascii")}
        return self._call("POST", "media", json=body)

    def media_content(self, media_id: str) -> tuple[bytes, dict]:
        """The bytes the sandbox holds under `media_id`, and their summary (type, filename, content_type)."""
        item = self._call("GET", "media", params={"media_id": media_id})
        return base64.b64decode(item.pop("content_base64")), item

    def send_app_media(self, corp_id: str, agent_id: int, from_user: str, *, media_type: str, filename: str,
                       content: bytes, content_type: str = "", **kwargs) -> dict:
        """A member sends a picture (voice, video) to the app: the callback carries its MediaId."""
        item = self.put_media(corp_id, media_type=media_type, filename=filename, content=content,
                              content_type=content_type)
        fields = {"MediaId": item["media_id"]}
        if media_type == "voice":
            fields["Format"] = "amr"
        result = self.send_app_message(corp_id, agent_id, from_user, msgtype=media_type, fields=fields, **kwargs)
        return {**result, "media_id": item["media_id"]}

    def queue_kf_media(self, corp_id: str, open_kfid: str, external_userid: str, *, media_type: str,
                       filename: str, content: bytes, content_type: str = "", **kwargs) -> dict:
        """A WeChat customer sends a picture, voice, video or file to a 微信客服 account (pulled later)."""
        item = self.put_media(corp_id, media_type=media_type, filename=filename, content=content,
                              content_type=content_type)
        message = {"external_userid": external_userid, "msgtype": media_type,
                   media_type: {"media_id": item["media_id"]}}
        return {**self.queue_kf_messages(corp_id, open_kfid, [message], **kwargs), "media_id": item["media_id"]}

    def received_media(self, user: str, *, corp_id: str | None = None) -> list[dict]:
        """Pictures, voice, video and files `user` actually received, in order: msgtype, media_id,
        filename, content_type and the bytes ("content")."""
        received = []
        for delivery in self.deliveries(corp_id=corp_id, user=user, delivered=True):
            if delivery["msgtype"] in ("image", "voice", "video", "file"):
                content, item = self.media_content(delivery["payload"]["media_id"])
                received.append({"msgtype": delivery["msgtype"], "channel": delivery["channel"],
                                 **item, "content": content})
        return received

    # -- the fake model (OpenAI-compatible, under /v1/) --------------------------------------------

    @property
    def model_base_url(self) -> str:
        """What an AI provider's base URL should be to use the fake model."""
        return f"{self.base_url}/v1"

    def model_configure(self, **settings) -> dict:
        """Change fake-model settings, keeping the others; returns the whole config.

        available (False: calls fail), down_mode ("503" or "disconnect"), api_keys (list of accepted
        bearer keys; None accepts any call), latency (s), failure_ratio (0..1), failure_kind,
        failure_status, seed (of the failure ratio), models (listed by /v1/models).
        """
        return self._call("POST", "model/config", json=settings)

    def model_config(self) -> dict:
        return self._call("GET", "model/config")

    def model_fail_next(
        self,
        count: int = 1,
        *,
        kind: str = "http_error",
        status: int = 500,
        delay: float = 0.0,
        api_key: str | None = None,
    ) -> dict:
        """The next `count` chat calls (carrying bearer `api_key`, or any) misbehave.

        kind: http_error (with `status`: 500, 429 + Retry-After, 503...), invalid_json (200 with a
        broken body), no_choices (200 without choices), disconnect (connection dropped), delay (only
        waits `delay` s, then answers normally). `delay` also applies before the other kinds.
        """
        body = {"kind": kind, "status": status, "count": count, "delay": delay, "api_key": api_key}
        return self._call("POST", "model/faults", json=body)["fault"]

    def model_faults(self) -> list[dict]:
        return self._call("GET", "model/faults")["faults"]

    def model_clear_faults(self) -> None:
        self._call("POST", "model/faults/clear")

    def model_calls(self, *, api_key: str | None = None, outcome: str | None = None) -> list[dict]:
        """Recorded /v1/ calls, oldest first: method, path, api_key, model, messages, max_tokens,
        temperature, status, outcome ("answered", "down", "unauthorized", "fault:<kind>[:status]"...),
        reply, delay."""
        return self._call("GET", "model/calls", params={"api_key": api_key, "outcome": outcome})["calls"]

    def model_reset(self) -> None:
        """Default settings, no faults, no calls (a sandbox reset() does this too)."""
        self._call("POST", "model/reset")
