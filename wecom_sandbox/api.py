"""The simulated WeCom /cgi-bin/ APIs (gettoken, message/send, kf/*) and the rules WeCom enforces on them.

Facts come from docs/WECOM_PROTOCOL.md sections 4.2 and 6. Where WeCom's exact error code is
undocumented (an unknown kf code, a malformed cursor) we answer 40058 "invalid parameter".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from wecom_sandbox.state import Corp, KfCode, KfSession, SandboxState

CONTENT_LIMIT_BYTES = 2048
MEMBER_MESSAGES_PER_MINUTE = 30
KF_SENDS_PER_CUSTOMER_MESSAGE = 5
KF_REPLY_WINDOW_SECONDS = 48 * 3600
KF_TOKEN_TTL_SECONDS = 600
# send_msg_on_event codes: the welcome_code and the session-end msg_code live 20 s; the pool and
# servicer msg_codes 48 h (docs/WECOM_PROTOCOL.md 4.2, send_msg_on_event).
KF_WELCOME_CODE_TTL_SECONDS = 20
KF_END_CODE_TTL_SECONDS = 20
DUPLICATE_CHECK_DEFAULT_SECONDS = 1800
DUPLICATE_CHECK_MAX_SECONDS = 4 * 3600

APP_MSGTYPES = {
    "text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown",
    "miniprogram_notice", "template_card",
}  # fmt: skip
KF_MSGTYPES = {"text", "image", "voice", "video", "file", "link", "miniprogram", "msgmenu", "location"}
# service_state transitions WeCom allows (docs/WECOM_PROTOCOL.md 4.2); 4 (ended) is terminal until the customer writes.
KF_TRANSITIONS = {0: {1, 2, 3, 4}, 1: {1, 2, 3, 4}, 2: {2, 3, 4}, 3: {3, 4}, 4: set()}
KF_MSGID_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,32}")
# msgmenu limits (docs/WECOM_PROTOCOL.md 4.2): head/tail 1024 bytes, 10 items, click id 64 bytes,
# item content 128 bytes.
MENU_MAX_ITEMS = 10
MENU_HEAD_TAIL_BYTES = 1024
MENU_ITEM_ID_BYTES = 64
MENU_ITEM_CONTENT_BYTES = 128
MENU_ITEM_FIELDS = {
    "click": ("id", "content"), "view": ("url", "content"), "miniprogram": ("appid", "pagepath", "content"),
}

ERRMSG = {
    -1: "system busy",
    40001: "invalid credential, access_token is invalid or not latest",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40056: "invalid agentid",
    40007: "invalid media_id",
    40058: "invalid parameter",
    41009: "missing userid",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    42001: "access_token expired",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "reach max api daily quota limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    60111: "userid not found",
    81013: "user & party & tag all invalid",
    95000: "invalid open_kfid",
    95001: "send msg count limit",
    95002: "send msg time limit",
    95004: "open_kfid not exist",
    95007: "invalid msg token",
    95008: "invalid msgmenu",
    95011: "kf account is managed in the WeCom client",
    95013: "session is ended",
    95014: "user is not servicer",
    95016: "invalid service state transition",
    95018: "invalid session status",
}


def error(errcode: int, hint: str = "") -> dict:
    # Real errmsg values carry a hint suffix; clients must key on errcode only.
    return {
        "errcode": errcode,
        "errmsg": f"{ERRMSG.get(errcode, 'error')}, hint: [sandbox{': ' + hint if hint else ''}]",
    }


def ok(**fields) -> dict:
    return {"errcode": 0, "errmsg": "ok", **fields}


@dataclass(frozen=True)
class Grant:
    """Who an access_token speaks for: an app (agent_id) or the corp's 微信客服 credential."""

    corp: Corp
    kind: str
    agent_id: int | None


def corp_of_request(state: SandboxState, path: str, query: dict) -> str | None:
    """Best-effort corp of a call before authentication, so per-corp faults can match it."""
    with state.lock:
        if path == "gettoken":
            return query.get("corpid") or None
        token = state.tokens.get(query.get("access_token", ""))
        return token.corp_id if token else None


def handle(state: SandboxState, path: str, query: dict, body: dict | None) -> dict:
    """Answer one /cgi-bin/<path> call; `body` is None when the request JSON was unreadable."""
    with state.lock:
        if path == "gettoken":
            return gettoken(state, query)
        grant = _authorize(state, query)
        if isinstance(grant, dict):
            return grant
        if state.over_rate_limit(grant.corp.corp_id, path):
            return error(45009)
        if body is None:
            return error(47001, "Warning: wrong json format.")
        if path in QUERY_ROUTES:  # GET calls: their parameters are in the query string
            return QUERY_ROUTES[path](state, grant, query)
        if path in MEDIA_SEND_PATHS and (problem := _check_media_id(state, grant.corp, body)):
            return problem
        return ROUTES[path](state, grant, body)


# A picture, voice, video or file is sent by the media_id of an upload (media/upload, 3 days).
MEDIA_SEND_PATHS = frozenset({"message/send", "kf/send_msg"})
MEDIA_MSGTYPES = frozenset({"image", "voice", "video", "file"})
MEDIA_TTL_SECONDS = 3 * 24 * 3600


def _check_media_id(state: SandboxState, corp: Corp, body: dict) -> dict | None:
    msgtype = body.get("msgtype")
    if msgtype not in MEDIA_MSGTYPES:
        return None
    media_id = str((body.get(msgtype) or {}).get("media_id") or "") if isinstance(body.get(msgtype), dict) else ""
    item = state.media.get(media_id)
    if item is None or item.corp_id != corp.corp_id or state.now() - item.created_at > MEDIA_TTL_SECONDS:
        return error(40007, f"unknown or expired media_id {media_id!r}")
    return None


def _authorize(state: SandboxState, query: dict) -> Grant | dict:
    value = query.get("access_token")
    if not value:
        return error(41001)
    token = state.tokens.get(value)
    if token is None or token.revoked:
        return error(40014)
    if token.expires_at <= state.now():
        return error(42001)
    corp = state.corps[token.corp_id]
    credential = corp.credential(token.secret)
    if credential is None:
        return error(40014)
    kind, agent_id = credential
    return Grant(corp, kind, agent_id)


# -- gettoken ------------------------------------------------------------------------------------


def gettoken(state: SandboxState, query: dict) -> dict:
    corp_id, secret = query.get("corpid"), query.get("corpsecret")
    if not corp_id:
        return error(41002)
    if not secret:
        return error(41004)
    corp = state.corps.get(corp_id)
    if corp is None:
        return error(40013)
    if state.over_rate_limit(corp_id, "gettoken"):
        return error(45009)
    if corp.credential(secret) is None:
        return error(40001)
    token = state.issue_token(corp_id, secret)
    return ok(access_token=token.value, expires_in=max(1, round(token.expires_at - state.now())))


# -- message/send --------------------------------------------------------------------------------


def message_send(state: SandboxState, grant: Grant, body: dict) -> dict:
    corp = grant.corp
    if grant.kind != "app" or _as_int(body.get("agentid")) != grant.agent_id:
        return error(40056, "agentid does not match the access_token's app")
    msgtype = body.get("msgtype")
    if msgtype not in APP_MSGTYPES or not isinstance(body.get(msgtype), dict):
        return error(40008)
    payload = dict(body[msgtype])
    content = ""
    if msgtype in ("text", "markdown"):
        content = str(payload.get("content") or "")
        if not content:
            return error(44004)
        # WeCom truncates rather than rejects long app messages.
        content = payload["content"] = truncate_utf8(content, CONTENT_LIMIT_BYTES)

    recipients, invalid_users = _resolve_members(corp, str(body.get("touser") or ""))
    invalid = {
        "invaliduser": "|".join(invalid_users),
        "invalidparty": str(body.get("toparty") or ""),  # the sandbox has no departments or tags
        "invalidtag": str(body.get("totag") or ""),
    }
    if not recipients:
        return {**error(81013), **invalid}

    now = state.now()
    duplicate_key = None
    if _as_int(body.get("enable_duplicate_check")):
        interval = _as_int(body.get("duplicate_check_interval")) or DUPLICATE_CHECK_DEFAULT_SECONDS
        interval = min(interval, DUPLICATE_CHECK_MAX_SECONDS)
        duplicate_key = (grant.agent_id, json.dumps(body, sort_keys=True, ensure_ascii=False))
        previous = corp.duplicate_requests.get(duplicate_key)
        if previous and now - previous[1] < interval:
            for recipient in recipients:
                _record_app(state, grant, recipient, msgtype, content, payload, previous[0], duplicate=True)
            return ok(**invalid, msgid=previous[0])

    msgid = state.new_id("sbxmsg")
    for recipient in recipients:
        window = corp.member_windows[(grant.agent_id, recipient.lower())]
        while window and window[0] <= now - 60:
            window.popleft()
        # WeCom drops the 31st message a minute to one member without telling the sender.
        dropped = len(window) >= MEMBER_MESSAGES_PER_MINUTE
        if not dropped:
            window.append(now)
        _record_app(state, grant, recipient, msgtype, content, payload, msgid, dropped=dropped)
    if duplicate_key:
        corp.duplicate_requests[duplicate_key] = (msgid, now)
    return ok(**invalid, msgid=msgid)


def _resolve_members(corp: Corp, touser: str) -> tuple[list[str], list[str]]:
    wanted = [u.strip() for u in touser.split("|") if u.strip()]
    if "@all" in wanted:
        wanted = list(corp.members) or ["@all"]
    recipients, invalid = [], []
    for userid in dict.fromkeys(wanted):
        member = corp.find_member(userid)
        if member is None:
            invalid.append(userid.lower())
        elif member not in recipients:
            recipients.append(member)
    return recipients, invalid


def _record_app(state, grant, recipient, msgtype, content, payload, msgid, *, duplicate=False, dropped=False):
    state.record_delivery(
        corp_id=grant.corp.corp_id,
        channel="app",
        sender=str(grant.agent_id),
        recipient=recipient,
        msgtype=msgtype,
        content=content,
        payload=payload,
        msgid=msgid,
        delivered=not (duplicate or dropped),
        duplicate=duplicate,
        dropped=dropped,
    )


# -- kf ------------------------------------------------------------------------------------------


def kf_sync_msg(state: SandboxState, grant: Grant, body: dict) -> dict:
    corp = grant.corp
    if problem := _require_kf(grant):
        return problem
    token = body.get("token")
    if token and corp.kf_tokens.get(token, 0) <= state.now():
        return error(95007)
    open_kfid = body.get("open_kfid") or None
    if open_kfid and open_kfid not in corp.kf_accounts:
        return error(95004)
    position = parse_cursor(body.get("cursor") or "", len(corp.kf_queue))
    if position is None:
        return error(40058, "invalid cursor")
    limit = _as_int(body.get("limit")) or 1000
    if limit < 0:
        return error(40058, "invalid limit")
    limit = min(limit, 1000)

    messages, has_more = [], 0
    while position < len(corp.kf_queue):
        item = corp.kf_queue[position]
        if open_kfid and item.get("open_kfid", open_kfid) != open_kfid:
            position += 1
            continue
        if item.get("page_break"):
            # A scripted page end: WeCom may answer has_more=1 with few or no messages.
            position += 1
            has_more = 1
            break
        if len(messages) == limit:
            has_more = 1
            break
        messages.append(public_kf_item(item))
        position += 1
    return ok(next_cursor=f"CUR{position}", has_more=has_more, msg_list=messages)


def parse_cursor(cursor: str, queue_length: int) -> int | None:
    if not cursor:
        return 0
    match = re.fullmatch(r"CUR(\d{1,9})", cursor)
    if not match or int(match.group(1)) > queue_length:
        return None
    return int(match.group(1))


def public_kf_item(item: dict) -> dict:
    """The msg_list entry as WeCom returns it: events carry open_kfid/external_userid inside `event`."""
    visible = {k: v for k, v in item.items() if k != "page_break"}
    if visible.get("msgtype") == "event":
        visible.pop("open_kfid", None)
        visible.pop("external_userid", None)
    return visible


def kf_send_msg(state: SandboxState, grant: Grant, body: dict) -> dict:
    corp = grant.corp
    if problem := _require_kf(grant) or _check_open_kfid(corp, body.get("open_kfid")):
        return problem
    open_kfid, touser = body["open_kfid"], str(body.get("touser") or "")
    if not touser:
        return error(40058, "touser missing")
    msgid = body.get("msgid")
    if msgid is not None and not KF_MSGID_PATTERN.fullmatch(str(msgid)):
        return error(40058, "msgid must be 1-32 of [0-9a-zA-Z_-]")
    problem, msgtype, content = _check_kf_content(body)
    if problem:
        return problem
    if msgid and (open_kfid, msgid) in corp.kf_sent_msgids:
        # Checked before the session rules so an at-least-once sender's retry is a harmless no-op.
        _record_kf(state, corp, open_kfid, touser, body, msgtype, content, msgid, duplicate=True)
        return ok(msgid=msgid)

    session = corp.kf_sessions.get((open_kfid, touser)) or KfSession(open_kfid, touser)
    if session.service_state not in (0, 1):
        return error(95018)
    last = session.last_customer_message_at
    if last is None or state.now() - last > KF_REPLY_WINDOW_SECONDS:
        return error(95002)
    if session.sends_since_customer_message >= KF_SENDS_PER_CUSTOMER_MESSAGE:
        return error(95001)
    session.sends_since_customer_message += 1
    msgid = msgid or state.new_id("sbxkf")
    corp.kf_sent_msgids.add((open_kfid, msgid))
    _record_kf(state, corp, open_kfid, touser, body, msgtype, content, msgid)
    return ok(msgid=msgid)


def kf_send_msg_on_event(state: SandboxState, grant: Grant, body: dict) -> dict:
    corp = grant.corp
    if problem := _require_kf(grant):
        return problem
    code = corp.kf_codes.get(str(body.get("code") or ""))
    if code is None or code.expires_at <= state.now():
        # WeCom's errcode for a used or expired code is not in docs/WECOM_PROTOCOL.md (UNCONFIRMED):
        # we answer the generic 40058 "invalid parameter", as for any undocumented case here.
        return error(40058, "invalid, used or expired code")
    problem, msgtype, content = _check_kf_content(body, allowed={"text", "msgmenu"})
    if problem:
        return problem
    del corp.kf_codes[code.code]  # single use
    msgid = str(body.get("msgid") or state.new_id("sbxkf"))
    corp.kf_sent_msgids.add((code.open_kfid, msgid))
    _record_kf(state, corp, code.open_kfid, code.external_userid, body, msgtype, content, msgid)
    return ok(msgid=msgid)


def kf_service_state_get(state: SandboxState, grant: Grant, body: dict) -> dict:
    corp = grant.corp
    if problem := _require_kf(grant) or _check_open_kfid(corp, body.get("open_kfid")):
        return problem
    session = corp.kf_sessions.get((body["open_kfid"], str(body.get("external_userid") or "")))
    if session is None:
        return ok(service_state=4, servicer_userid="")
    return ok(service_state=session.service_state, servicer_userid=session.servicer_userid)


def kf_service_state_trans(state: SandboxState, grant: Grant, body: dict) -> dict:
    corp = grant.corp
    if problem := _require_kf(grant) or _check_open_kfid(corp, body.get("open_kfid")):
        return problem
    external_userid = str(body.get("external_userid") or "")
    target = _as_int(body.get("service_state"))
    if not external_userid or target not in KF_TRANSITIONS:
        return error(40058)
    session = corp.session(body["open_kfid"], external_userid)
    if target not in KF_TRANSITIONS[session.service_state]:
        return error(95016)
    servicer = str(body.get("servicer_userid") or "")
    if target == 3:
        servicers = corp.kf_accounts[body["open_kfid"]].servicers
        if servicer not in servicers:  # also an empty servicer_userid
            return error(95014, "servicer_userid is not a servicer of this account")
        if not servicers[servicer]:
            return error(95019, "the servicer is not receiving")
    changed = target != session.service_state
    session.service_state = target
    session.servicer_userid = servicer if target == 3 else ""
    if not changed or target == 1:
        return ok()
    # Entering the pool, a servicer or the end yields a code for one event message (docs/WECOM_PROTOCOL.md 4.2).
    ttl = KF_END_CODE_TTL_SECONDS if target == 4 else KF_REPLY_WINDOW_SECONDS
    code = add_kf_code(state, corp, session.open_kfid, external_userid, ttl=ttl, purpose=f"state_{target}")
    return ok(msg_code=code)


def add_kf_code(
    state: SandboxState, corp: Corp, open_kfid: str, external_userid: str, *, ttl, purpose
) -> str:
    code = state.new_id("sbxcode")
    corp.kf_codes[code] = KfCode(code, open_kfid, external_userid, state.now() + ttl, purpose)
    return code


def customer_wrote(corp: Corp, open_kfid: str, external_userid: str, at: float) -> None:
    """A WeChat customer's message: reopens an ended session and restarts the 5-message/48 h allowance."""
    corp.kf_contacted[external_userid] = at
    session = corp.session(open_kfid, external_userid)
    if session.service_state == 4:
        session.service_state = 0
        session.servicer_userid = ""
    session.last_customer_message_at = at
    session.sends_since_customer_message = 0


def _require_kf(grant: Grant) -> dict | None:
    return None if grant.kind == "kf" else error(48002, "use the 微信客服 secret for kf APIs")


def _check_open_kfid(corp: Corp, open_kfid) -> dict | None:
    if not open_kfid:
        return error(95000)
    return None if open_kfid in corp.kf_accounts else error(95004)


def _check_kf_content(body: dict, allowed=KF_MSGTYPES) -> tuple[dict | None, str, str]:
    msgtype = body.get("msgtype")
    if msgtype not in allowed or not isinstance(body.get(msgtype), dict):
        return error(40008), "", ""
    payload = body[msgtype]
    if msgtype == "text":
        content = str(payload.get("content") or "")
        if not content:
            return error(44004), msgtype, ""
        if len(content.encode("utf-8")) > CONTENT_LIMIT_BYTES:
            return error(45002), msgtype, ""  # kf rejects, unlike message/send which truncates
        return None, msgtype, content
    if msgtype == "msgmenu":
        if problem := _check_menu(payload):
            return problem, msgtype, ""
        return None, msgtype, str(payload.get("head_content") or "")
    return None, msgtype, ""


def _check_menu(payload: dict) -> dict | None:
    """WeCom's msgmenu rules. 95008 for more than 10 items is documented [D4]; answering 95008 for an
    unknown item type or a missing or over-long item field too is UNCONFIRMED, as is 45002 for an
    over-long head or tail (WeCom's generic "content size out of limit"). An empty or absent list
    is accepted (the list is optional in WeCom's field table: UNCONFIRMED)."""
    items = payload.get("list") or []
    if not isinstance(items, list) or len(items) > MENU_MAX_ITEMS:
        return error(95008, f"at most {MENU_MAX_ITEMS} items")
    for part in ("head_content", "tail_content"):
        if len(str(payload.get(part) or "").encode("utf-8")) > MENU_HEAD_TAIL_BYTES:
            return error(45002, f"{part} over {MENU_HEAD_TAIL_BYTES} bytes")
    for item in items:
        kind = item.get("type") if isinstance(item, dict) else None
        fields = item.get(kind) if kind in MENU_ITEM_FIELDS else None
        if not isinstance(fields, dict) or any(not str(fields.get(name) or "") for name in MENU_ITEM_FIELDS[kind]):
            return error(95008, "each item: type click/view/miniprogram with its fields")
        if kind == "click" and len(str(fields["id"]).encode("utf-8")) > MENU_ITEM_ID_BYTES:
            return error(95008, f"click id over {MENU_ITEM_ID_BYTES} bytes")
        if len(str(fields["content"]).encode("utf-8")) > MENU_ITEM_CONTENT_BYTES:
            return error(95008, f"item content over {MENU_ITEM_CONTENT_BYTES} bytes")
    return None


def menu_click_item(delivery_payload: dict, menu_id: str) -> dict | None:
    """The click item `menu_id` of a delivered msgmenu (what a customer can click), or None."""
    for item in delivery_payload.get("list") or []:
        if item.get("type") == "click" and str(item["click"].get("id")) == menu_id:
            return item["click"]
    return None


def _record_kf(state, corp, open_kfid, recipient, body, msgtype, content, msgid, *, duplicate=False):
    state.record_delivery(
        corp_id=corp.corp_id,
        channel="kf",
        sender=open_kfid,
        recipient=recipient,
        msgtype=msgtype,
        content=content,
        payload=dict(body.get(msgtype) or {}),
        msgid=msgid,
        delivered=not duplicate,
        duplicate=duplicate,
    )


# -- customers and members: who is writing -----------------------------------------------------------

# kf/customer/batchget takes 1 to 100 external_userids a call, and answers only for customers who wrote or
# entered a session in the last 48 hours; the others come back in invalid_external_userid (docs/SANDBOX.md,
# "Profiles"). WeCom's errcode for a list that is empty, too long or not a list is undocumented (UNCONFIRMED):
# the generic 40058 "invalid parameter".
KF_CUSTOMER_BATCH_MAX = 100
KF_CUSTOMER_WINDOW_SECONDS = 48 * 3600
# What user/get no longer returns to self-built apps created after 2022-06-20 (they must use OAuth).
MEMBER_PRIVATE_FIELDS = ("avatar", "thumb_avatar", "gender", "mobile", "email", "biz_mail", "qr_code", "address")


def kf_customer_batchget(state: SandboxState, grant: Grant, body: dict) -> dict:
    corp = grant.corp
    if problem := _require_kf(grant):
        return problem
    wanted = body.get("external_userid_list")
    if not isinstance(wanted, list) or not wanted or not all(isinstance(i, str) and i for i in wanted):
        return error(40058, "external_userid_list: 1 to 100 external_userids")
    if len(wanted) > KF_CUSTOMER_BATCH_MAX:
        return error(40058, f"external_userid_list: at most {KF_CUSTOMER_BATCH_MAX}")
    now = state.now()
    customers, invalid = [], []
    for external_userid in dict.fromkeys(wanted):
        contacted = corp.kf_contacted.get(external_userid)
        if contacted is None or now - contacted > KF_CUSTOMER_WINDOW_SECONDS:
            invalid.append(external_userid)
            continue
        scripted = corp.kf_customers.get(external_userid, {})
        customers.append({
            "external_userid": external_userid,
            "nickname": str(scripted.get("nickname", "微信用户")),
            "avatar": str(scripted.get("avatar", "")),
            "gender": int(scripted.get("gender", 0)),
            "unionid": str(scripted.get("unionid", "")),
        })
    return ok(customer_list=customers, invalid_external_userid=invalid)


def user_get(state: SandboxState, grant: Grant, query: dict) -> dict:
    """A member of the corp as the calling self-built app sees it (GET ?userid=)."""
    corp = grant.corp
    if grant.kind != "app":
        return error(48002, "use an app's secret for user/get")
    userid = str(query.get("userid") or "")
    if not userid:
        return error(41009)
    member = corp.find_member(userid)
    if member is None:
        return error(60111, f"userid {userid!r} not found")
    scripted = corp.member_profiles.get(member, {})
    profile = {"userid": member, "name": str(scripted.get("name") or member), "department": [1],
               "position": str(scripted.get("position", "")), "status": 1}
    if corp.apps[grant.agent_id].created_before_2022_06:
        profile.update({"avatar": "", "thumb_avatar": "", "gender": "0", "mobile": "", "email": ""})
        profile.update({name: str(scripted[name]) for name in MEMBER_PRIVATE_FIELDS if name in scripted})
    return ok(**profile)


# -- helpers -------------------------------------------------------------------------------------


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, never splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


ROUTES = {
    "message/send": message_send,
    "kf/sync_msg": kf_sync_msg,
    "kf/send_msg": kf_send_msg,
    "kf/send_msg_on_event": kf_send_msg_on_event,
    "kf/service_state/get": kf_service_state_get,
    "kf/service_state/trans": kf_service_state_trans,
    "kf/customer/batchget": kf_customer_batchget,
}
QUERY_ROUTES = {"user/get": user_get}
PATHS = {"gettoken", *ROUTES, *QUERY_ROUTES}
