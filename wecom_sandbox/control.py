"""The /sandbox/ control API: set up corps, script customers and faults, and read what was delivered.

Handlers take (state, query, body) and return (http_status, json_payload). Bad input is 400
{"detail": ...}; tests and the demo drive the sandbox only through these endpoints.
"""

from __future__ import annotations

import base64
import binascii
import threading

from wecom_sandbox import api, media
from wecom_sandbox.callbacks import CallbackSender, app_event, app_message, kf_event
from wecom_sandbox.state import App, CallbackTarget, Corp, Fault, KfAccount, SandboxState


class BadRequest(Exception):
    pass


def _require(body: dict, *names: str) -> list:
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise BadRequest(f"missing field(s): {', '.join(missing)}")
    return [body[name] for name in names]


def _corp(state: SandboxState, corp_id: str) -> Corp:
    corp = state.corps.get(corp_id)
    if corp is None:
        raise BadRequest(f"unknown corp {corp_id!r}")
    return corp


def _callback_target(raw: dict | None) -> CallbackTarget | None:
    if not raw:
        return None
    url, token, key = _require(raw, "url", "token", "encoding_aes_key")
    return CallbackTarget(url, token, key)


def _flag(value, default: bool) -> bool:
    if value is None:
        return default
    return str(value).lower() not in ("0", "false", "no", "")


# -- setup ---------------------------------------------------------------------------------------


def health(state, query, body):
    return 200, {"status": "ok", "now": state.now()}


def reset(state, query, body):
    state.reset()
    return 200, {"status": "reset"}


def put_corp(state, query, body):
    """Create or replace a corp: {"corp_id", "apps": [...], "kf_accounts": [...], "members": [...]}."""
    (corp_id,) = _require(body, "corp_id")
    corp = Corp(corp_id=corp_id, members=[str(m) for m in body.get("members") or []])
    for raw in body.get("apps") or []:
        agent_id, secret = _require(raw, "agent_id", "secret")
        corp.apps[int(agent_id)] = App(int(agent_id), secret, _callback_target(raw.get("callback")),
                                       created_before_2022_06=_flag(raw.get("created_before_2022_06"), False))
    for raw in body.get("kf_accounts") or []:
        open_kfid, secret = _require(raw, "open_kfid", "secret")
        corp.kf_accounts[open_kfid] = KfAccount(
            open_kfid, secret, raw.get("name", ""), _callback_target(raw.get("callback")),
            servicers={str(userid): True for userid in raw.get("servicers") or []},
        )
    state.put_corp(corp)
    return 200, corp.summary()


def get_corp(state, query, body):
    """One corp's summary (?corp_id=...), or without corp_id every corp's: what a chat client can talk to."""
    with state.lock:
        if "corp_id" not in query:
            return 200, {"corps": [corp.summary() for corp in state.corps.values()]}
        return 200, _corp(state, query["corp_id"]).summary()


def set_members(state, query, body):
    (corp_id,) = _require(body, "corp_id")
    with state.lock:
        corp = _corp(state, corp_id)
        # An empty list means "accept any userid", the sandbox's default.
        corp.members = [str(m) for m in body.get("members") or []]
        return 200, corp.summary()


def advance_clock(state, query, body):
    (seconds,) = _require(body, "seconds")
    return 200, {"now": state.advance(float(seconds))}


# -- faults --------------------------------------------------------------------------------------


def add_fault(state, query, body):
    """{"path": "message/send", "corp_id"?, "errcode"?, "http_status"?, "delay"?, "count": 1}."""
    (path,) = _require(body, "path")
    path = str(path).removeprefix("/").removeprefix("cgi-bin/")
    if path not in api.PATHS | media.PATHS:
        raise BadRequest(f"unknown api path {path!r}; one of {sorted(api.PATHS | media.PATHS)}")
    fault = Fault(
        path=path,
        corp_id=body.get("corp_id") or None,
        remaining=int(body.get("count", 1)),
        errcode=None if body.get("errcode") is None else int(body["errcode"]),
        http_status=None if body.get("http_status") is None else int(body["http_status"]),
        delay=float(body.get("delay") or 0),
    )
    state.add_fault(fault)
    return 200, {"fault": fault.to_dict()}


def list_faults(state, query, body):
    with state.lock:
        return 200, {"faults": [f.to_dict() for f in state.faults]}


def clear_faults(state, query, body):
    with state.lock:
        state.faults.clear()
    return 200, {"faults": []}


def invalidate_tokens(state, query, body):
    return 200, {"invalidated": state.revoke_tokens(body.get("corp_id") or None)}


def set_rate_limit(state, query, body):
    """{"corp_id", "path", "limit": N or null to remove, "window": seconds (60)}; excess answers 45009."""
    corp_id, path = _require(body, "corp_id", "path")
    limit = body.get("limit")
    state.set_rate_limit(corp_id, path, None if limit is None else int(limit), float(body.get("window", 60)))
    return 200, {"corp_id": corp_id, "path": path, "limit": limit}


# -- observations --------------------------------------------------------------------------------


def list_deliveries(state, query, body):
    """Filters: corp_id, user (recipient, case-insensitive), sender, channel, delivered (1/0)."""
    user = (query.get("user") or "").lower()
    delivered = query.get("delivered")
    with state.lock:
        rows = [
            d.to_dict()
            for d in state.deliveries
            if query.get("corp_id") in (None, d.corp_id)
            and (not user or d.recipient.lower() == user)
            and query.get("sender") in (None, d.sender)
            and query.get("channel") in (None, d.channel)
            and (delivered is None or _flag(delivered, True) == d.delivered)
        ]
    return 200, {"deliveries": rows}


def list_calls(state, query, body):
    with state.lock:
        rows = [c for c in state.calls if query.get("path") in (None, c["path"])
                and query.get("corp_id") in (None, c["corp_id"])]  # fmt: skip
    return 200, {"calls": rows}


def list_callbacks(state, query, body):
    with state.lock:
        return 200, {"callbacks": list(state.callbacks)}


# -- kf customers --------------------------------------------------------------------------------


def queue_kf_messages(state, query, body):
    """Customers write to a kf account; returns the callback Token to pull with.

    Items: {"external_userid", "msgtype": "text", "text": {"content"}, "origin": 3|4|5, ...},
    {"msgtype": "event", "event": {"event_type": "enter_session", "external_userid", ...}}, or
    {"page_break": true} to end a sync_msg page there (has_more=1, possibly with no messages).
    With the account's callback configured and notify (default true), the kf_msg_or_event
    callback is sent; wait=false sends it in the background.
    """
    corp_id, open_kfid = _require(body, "corp_id", "open_kfid")
    with state.lock:
        corp = _corp(state, corp_id)
        if open_kfid not in corp.kf_accounts:
            raise BadRequest(f"unknown open_kfid {open_kfid!r}")
        now = state.now()
        msgids, codes = [], {}
        for raw in body.get("messages") or []:
            item = _kf_item(state, corp, open_kfid, dict(raw), now, codes)
            corp.kf_queue.append(item)
            if item.get("msgid"):
                msgids.append(item["msgid"])
        token = state.new_id("ENCsbx")
        corp.kf_tokens[token] = now + api.KF_TOKEN_TTL_SECONDS
        account = corp.kf_accounts[open_kfid]
        plaintext = kf_event(corp_id=corp_id, token=token, open_kfid=open_kfid, create_time=int(now))
    response = {"token": token, "open_kfid": open_kfid, "msgids": msgids, "welcome_codes": codes}
    if account.callback and _flag(body.get("notify"), True):
        response["callback"] = _send_callback(
            state, account.callback, corp_id, None, plaintext, _flag(body.get("wait"), True), body
        )
    return 200, response


def _kf_item(state, corp, open_kfid, item, now, codes) -> dict:
    if item.get("page_break"):
        return {"page_break": True, "open_kfid": item.get("open_kfid", open_kfid)}
    item.setdefault("msgid", state.new_id("sbxin"))
    item.setdefault("open_kfid", open_kfid)
    item.setdefault("send_time", int(now))
    if item.get("msgtype") == "event":
        event = item.setdefault("event", {})
        event.setdefault("open_kfid", open_kfid)
        item.setdefault("origin", 4)
        item["external_userid"] = event.get("external_userid", "")
        if event.get("event_type") == "enter_session" and item["external_userid"]:
            corp.kf_contacted[item["external_userid"]] = now  # kf/customer/batchget answers for them now
        if event.get("event_type") == "enter_session" and event.get("welcome_code", "") is None:
            del event["welcome_code"]  # WeCom omits it when no welcome may be sent through the API
        elif event.get("event_type") == "enter_session" and "welcome_code" not in event:
            external = event.get("external_userid", "")
            # Welcome codes are single use and live 20 s (docs/WECOM_PROTOCOL.md 4.2).
            event["welcome_code"] = api.add_kf_code(
                state, corp, open_kfid, external, ttl=api.KF_WELCOME_CODE_TTL_SECONDS, purpose="welcome"
            )
            codes[external] = event["welcome_code"]
        return item
    if not item.get("external_userid") or not item.get("msgtype"):
        raise BadRequest("kf messages need external_userid and msgtype")
    item.setdefault("origin", 3)
    if item["origin"] == 3:
        api.customer_wrote(corp, open_kfid, item["external_userid"], now)
    return item


def click_kf_menu(state, query, body):
    """A customer clicks an item of a menu they received: WeCom turns it into their text message,
    the item's content as text and its id as `text.menu_id` (docs/WECOM_PROTOCOL.md 4.2). Only the
    click items of a menu actually delivered to them can be clicked (the latest menu holding the id).
    Same answer as kf/messages."""
    corp_id, open_kfid, external_userid, menu_id = _require(body, "corp_id", "open_kfid", "external_userid", "menu_id")
    with state.lock:
        menus = [d for d in state.deliveries if d.corp_id == corp_id and d.channel == "kf" and d.delivered
                 and d.msgtype == "msgmenu" and d.sender == open_kfid and d.recipient == external_userid]
    item = next((found for d in reversed(menus) if (found := api.menu_click_item(d.payload, str(menu_id)))), None)
    if item is None:
        raise BadRequest(f"no menu delivered to {external_userid!r} has a click item {menu_id!r}")
    message = {"external_userid": external_userid, "msgtype": "text",
               "text": {"content": item["content"], "menu_id": item["id"]}}
    return queue_kf_messages(state, query, {**body, "messages": [message]})


def set_kf_customers(state, query, body):
    """Customers' WeChat profiles for kf/customer/batchget: {"corp_id", "customers": [{"external_userid",
    "nickname", "avatar", "gender", "unionid"}]} (merged; batchget still answers only for customers who wrote
    or entered a session in the last 48 hours)."""
    corp_id, customers = _require(body, "corp_id", "customers")
    if not isinstance(customers, list) or not all(isinstance(c, dict) and c.get("external_userid")
                                                  for c in customers):
        raise BadRequest("customers: a list of objects with an external_userid")
    with state.lock:
        corp = _corp(state, corp_id)
        for customer in customers:
            corp.kf_customers[str(customer["external_userid"])] = dict(customer)
        return 200, {"customers": sorted(corp.kf_customers)}


def set_member_profiles(state, query, body):
    """Members' profiles for user/get: {"corp_id", "profiles": [{"userid", "name", "avatar", "gender",
    "mobile", "email", "position"}]} (merged). Apps created before 2022-06 get the avatar and the other private
    fields; newer ones only the name and position, as WeCom does."""
    corp_id, profiles = _require(body, "corp_id", "profiles")
    if not isinstance(profiles, list) or not all(isinstance(p, dict) and p.get("userid") for p in profiles):
        raise BadRequest("profiles: a list of objects with a userid")
    with state.lock:
        corp = _corp(state, corp_id)
        for profile in profiles:
            corp.member_profiles[str(profile["userid"])] = dict(profile)
        return 200, {"profiles": sorted(corp.member_profiles)}


def get_kf_session(state, query, body):
    with state.lock:
        corp = _corp(state, query.get("corp_id", ""))
        session = corp.kf_sessions.get((query.get("open_kfid", ""), query.get("external_userid", "")))
        if session is None:
            return 200, {"service_state": 4, "servicer_userid": "", "exists": False}
        return 200, {**session.to_dict(), "exists": True}


def set_kf_servicers(state, query, body):
    """The account's servicers: {"corp_id", "open_kfid", "servicers": {"userid": receiving (bool)}}."""
    corp_id, open_kfid, servicers = _require(body, "corp_id", "open_kfid", "servicers")
    if not isinstance(servicers, dict):
        raise BadRequest("servicers must be an object of userid -> receiving (true/false)")
    with state.lock:
        account = _corp(state, corp_id).kf_accounts.get(open_kfid)
        if account is None:
            raise BadRequest(f"unknown open_kfid {open_kfid!r}")
        account.servicers = {str(userid): bool(receiving) for userid, receiving in servicers.items()}
        return 200, {"servicers": dict(account.servicers)}


def set_kf_session(state, query, body):
    """Force a session's state (and optionally last_customer_message_at) for a test's "given"."""
    corp_id, open_kfid, external_userid = _require(body, "corp_id", "open_kfid", "external_userid")
    with state.lock:
        session = _corp(state, corp_id).session(open_kfid, external_userid)
        for name in (
            "service_state",
            "servicer_userid",
            "last_customer_message_at",
            "sends_since_customer_message",
        ):
            if name in body:
                setattr(session, name, body[name])
        return 200, session.to_dict()


# -- media ---------------------------------------------------------------------------------------


def put_media(state, query, body):
    """A customer's picture, voice, video or file: {"corp_id", "type", "filename", "content_type",
    "content_base64"} held under a new media_id, which the customer's message then carries (app:
    fields {"MediaId": ...}; kf: {"msgtype": "image", "image": {"media_id": ...}})."""
    corp_id, media_type, filename, encoded = _require(body, "corp_id", "type", "filename", "content_base64")
    with state.lock:
        _corp(state, corp_id)
    try:
        content = base64.b64decode(str(encoded), validate=True)
    except binascii.Error as exc:
        raise BadRequest(f"content_base64 is not base64: {exc}") from exc
    item = media.store(state, corp_id, media_type=str(media_type), filename=str(filename),
                       content_type=str(body.get("content_type") or ""), content=content)
    return 200, item.summary()


def get_media(state, query, body):
    """What the sandbox holds under ?media_id= (e.g. what our platform uploaded and sent a customer)."""
    with state.lock:
        item = state.media.get(query.get("media_id", ""))
        if item is None:
            return 404, {"detail": f"no media {query.get('media_id')!r}"}
        return 200, {**item.summary(), "content_base64": base64.b64encode(item.content).decode("ascii")}


# -- app members ---------------------------------------------------------------------------------


def send_app_message(state, query, body):
    """A member writes to (or acts on) an app; the sandbox POSTs the encrypted callback.

    {"corp_id", "agent_id", "from_user", "msgtype": "text", "content": "hi"} or msgtype "event"
    with "event": "subscribe" | "unsubscribe" | "enter_agent"; other WeCom fields (MediaId,
    PicUrl, Location_X, ...) pass through under "fields". wait=false sends in the background.
    """
    corp_id, agent_id, from_user, msgtype = _require(body, "corp_id", "agent_id", "from_user", "msgtype")
    with state.lock:
        app = _corp(state, corp_id).apps.get(int(agent_id))
        if app is None or app.callback is None:
            raise BadRequest("unknown app, or the app has no callback configured")
        common = {
            "corp_id": corp_id,
            "agent_id": agent_id,
            "from_user": from_user,
            "create_time": int(state.now()),
        }
    extra = dict(body.get("fields") or {})
    if msgtype == "event":
        plaintext = app_event(body.get("event") or "subscribe", **common, **extra)
    else:
        if msgtype == "text":
            extra["Content"] = body.get("content", "")
        plaintext = app_message(msgtype, msg_id=body.get("msg_id"), **common, **extra)
    result = _send_callback(
        state, app.callback, corp_id, agent_id, plaintext, _flag(body.get("wait"), True), body
    )
    return 200, {"plaintext": plaintext.decode("utf-8"), "callback": result}


def _send_callback(state, target, corp_id, agent_id, plaintext, wait, body) -> dict:
    sender = CallbackSender(
        url=target.url,
        token=target.token,
        encoding_aes_key=target.encoding_aes_key,
        receive_id=corp_id,
        agent_id=agent_id,
        timeout=float(body.get("callback_timeout", 5.0)),
        max_retries=int(body.get("callback_retries", 3)),
    )

    def run() -> dict:
        with sender:
            outcome = sender.send(plaintext).to_dict()
        with state.lock:
            state.callbacks.append({"corp_id": corp_id, "at": state.now(), **outcome})
        return outcome

    if wait:
        return run()
    threading.Thread(target=run, daemon=True).start()
    return {"scheduled": True}


ROUTES = {
    ("GET", "health"): health,
    ("POST", "reset"): reset,
    ("POST", "corps"): put_corp,
    ("GET", "corps"): get_corp,
    ("POST", "members"): set_members,
    ("POST", "clock/advance"): advance_clock,
    ("POST", "faults"): add_fault,
    ("GET", "faults"): list_faults,
    ("POST", "faults/clear"): clear_faults,
    ("POST", "tokens/invalidate"): invalidate_tokens,
    ("POST", "rate_limits"): set_rate_limit,
    ("GET", "deliveries"): list_deliveries,
    ("GET", "calls"): list_calls,
    ("GET", "callbacks"): list_callbacks,
    ("POST", "kf/messages"): queue_kf_messages,
    ("POST", "kf/menu_clicks"): click_kf_menu,
    ("GET", "kf/sessions"): get_kf_session,
    ("POST", "kf/sessions"): set_kf_session,
    ("POST", "kf/servicers"): set_kf_servicers,
    ("POST", "kf/customers"): set_kf_customers,
    ("POST", "member_profiles"): set_member_profiles,
    ("POST", "apps/messages"): send_app_message,
    ("POST", "media"): put_media,
    ("GET", "media"): get_media,
}
