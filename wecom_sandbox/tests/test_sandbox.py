"""Tests for the WeCom sandbox over real HTTP: API rules, fault injection, and callback redelivery."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

import httpx
import pytest

from wecom_sandbox.callbacks import CallbackSender, text_message
from wecom_sandbox.client import SandboxClient, SandboxError
from wecom_sandbox.crypto import CallbackCrypto

CORP = "wwsandboxcorp0001"
OTHER_CORP = "wwsandboxcorp0002"
AGENT = 1000002
APP_SECRET = "app-secret"
KF_SECRET = "kf-secret"
KFID = "wkSANDBOX0001"
CB_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
CB_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"


@pytest.fixture
def control(sandbox_url):
    with SandboxClient(sandbox_url) as client:
        client.reset()
        client.create_corp(
            CORP,
            apps=[{"agent_id": AGENT, "secret": APP_SECRET}],
            kf_accounts=[{"open_kfid": KFID, "secret": KF_SECRET}],
            members=["Alice", "bob"],
        )
        yield client


@pytest.fixture
def wecom(sandbox_url):
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:
        yield WeComApi(http)


class WeComApi:
    """What our platform's outbound client does, reduced to raw calls."""

    def __init__(self, http: httpx.Client):
        self.http = http

    def gettoken(self, corp_id=CORP, secret=APP_SECRET) -> dict:
        return self.http.get("/cgi-bin/gettoken", params={"corpid": corp_id, "corpsecret": secret}).json()

    def token(self, corp_id=CORP, secret=APP_SECRET) -> str:
        return self.gettoken(corp_id, secret)["access_token"]

    def post(self, path: str, body: dict, *, token: str | None = None, secret=APP_SECRET) -> httpx.Response:
        token = token if token is not None else self.token(secret=secret)
        return self.http.post(f"/cgi-bin/{path}", params={"access_token": token}, json=body)

    def send_text(self, touser: str, content: str, **extra) -> dict:
        body = {"touser": touser, "msgtype": "text", "agentid": AGENT, "text": {"content": content}, **extra}
        return self.post("message/send", body).json()

    def kf(self, path: str, body: dict) -> dict:
        return self.post(f"kf/{path}", body, secret=KF_SECRET).json()

    def kf_text(self, touser: str, content: str, **extra) -> dict:
        body = {"touser": touser, "open_kfid": KFID, "msgtype": "text", "text": {"content": content}, **extra}
        return self.kf("send_msg", body)


# -- gettoken --------------------------------------------------------------------------------------


def test_gettoken_issues_a_7200_s_token_and_reuses_it_while_valid(control, wecom):
    first = wecom.gettoken()
    second = wecom.gettoken()

    assert first["errcode"] == 0 and first["expires_in"] == 7200
    assert second["access_token"] == first["access_token"]


def test_gettoken_rejects_unknown_corp_and_wrong_secret(control, wecom):
    assert wecom.gettoken(corp_id="wwnope")["errcode"] == 40013
    assert wecom.gettoken(secret="wrong")["errcode"] == 40001


def test_expired_token_answers_42001_and_a_new_one_is_issued(control, wecom):
    token = wecom.token()
    control.advance_clock(7201)

    assert wecom.post("message/send", {}, token=token).json()["errcode"] == 42001
    assert wecom.token() != token


def test_invalidated_token_answers_40014_and_missing_token_41001(control, wecom):
    token = wecom.token()
    assert control.invalidate_tokens(CORP) == 1

    assert wecom.post("message/send", {}, token=token).json()["errcode"] == 40014
    assert wecom.post("message/send", {}, token="").json()["errcode"] == 41001
    assert wecom.post("message/send", {}, token="forged").json()["errcode"] == 40014
    assert wecom.token() != token


# -- message/send ---------------------------------------------------------------------------------


def test_message_send_records_deliveries_and_lowercases_invalid_users(control, wecom):
    result = wecom.send_text("ALICE|carol|Bob", "hello")

    assert result["errcode"] == 0 and result["invaliduser"] == "carol" and result["msgid"]
    deliveries = control.deliveries(corp_id=CORP)
    assert [(d["recipient"], d["content"], d["msgid"], d["delivered"]) for d in deliveries] == [
        ("Alice", "hello", result["msgid"], True),
        ("bob", "hello", result["msgid"], True),
    ]
    assert control.received_texts("alice") == ["hello"]


def test_message_send_with_all_users_invalid_is_81013_and_records_nothing(control, wecom):
    result = wecom.send_text("Carol|dave", "hello")

    assert result["errcode"] == 81013 and result["invaliduser"] == "carol|dave"
    assert control.deliveries() == []


def test_empty_member_list_accepts_any_user(control, wecom):
    control.set_members(CORP, [])

    assert wecom.send_text("anyone", "hi")["invaliduser"] == ""
    assert control.received_texts("anyone") == ["hi"]


def test_message_send_validates_agentid_and_content(control, wecom):
    assert wecom.send_text("alice", "hi", agentid=1000003)["errcode"] == 40056
    assert wecom.send_text("alice", "")["errcode"] == 44004
    assert (
        wecom.post("message/send", {"touser": "alice", "agentid": AGENT, "msgtype": "nope"}).json()["errcode"]
        == 40008
    )
    assert wecom.post("message/send", {}, secret=KF_SECRET).json()["errcode"] == 40056
    assert control.deliveries() == []


def test_content_over_2048_bytes_is_truncated_on_a_character_boundary(control, wecom):
    # 2046 ASCII bytes + "你" (3 bytes) would cut the character: WeCom keeps 2046 bytes, not a broken 2048.
    assert wecom.send_text("alice", "a" * 2046 + "你好")["errcode"] == 0
    assert wecom.send_text("alice", "b" * 2048)["errcode"] == 0

    first, second = control.received_texts("alice")
    assert first == "a" * 2046
    assert second == "b" * 2048


def test_31st_message_a_minute_to_one_member_is_silently_dropped(control, wecom):
    results = [wecom.send_text("alice", f"m{i}") for i in range(31)]

    assert {r["errcode"] for r in results} == {0}
    assert control.received_texts("alice") == [f"m{i}" for i in range(30)]
    (dropped,) = control.deliveries(user="alice", delivered=False)
    assert dropped["content"] == "m30" and dropped["dropped"] is True
    assert wecom.send_text("bob", "other member unaffected")["errcode"] == 0
    assert control.received_texts("bob") == ["other member unaffected"]

    control.advance_clock(61)
    wecom.send_text("alice", "next minute")
    assert control.received_texts("alice")[-1] == "next minute"


def test_duplicate_check_suppresses_identical_requests_within_the_interval(control, wecom):
    first = wecom.send_text("alice", "once", enable_duplicate_check=1, duplicate_check_interval=600)
    repeat = wecom.send_text("alice", "once", enable_duplicate_check=1, duplicate_check_interval=600)

    assert repeat["errcode"] == 0 and repeat["msgid"] == first["msgid"]
    assert control.received_texts("alice") == ["once"]
    assert control.deliveries(delivered=False)[0]["duplicate"] is True

    control.advance_clock(601)
    wecom.send_text("alice", "once", enable_duplicate_check=1, duplicate_check_interval=600)
    wecom.send_text("alice", "once")  # no duplicate check: always delivered
    assert control.received_texts("alice") == ["once", "once", "once"]


# -- kf --------------------------------------------------------------------------------------------


def customer_text(user: str, content: str, **extra) -> dict:
    return {"external_userid": user, "msgtype": "text", "text": {"content": content}, **extra}


def test_kf_sync_msg_pages_with_cursor_including_an_empty_page_with_has_more(control, wecom):
    queued = control.queue_kf_messages(
        CORP,
        KFID,
        [
            customer_text("wmA", "1"),
            customer_text("wmA", "2"),
            customer_text("wmA", "3"),
            {"page_break": True},
            {"page_break": True},
            {"msgtype": "event", "event": {"event_type": "enter_session", "external_userid": "wmB"}},
            customer_text("wmB", "from servicer", origin=5, servicer_userid="zhangsan"),
        ],
    )
    token = queued["token"]

    def page(cursor, limit=2):
        return wecom.kf("sync_msg", {"token": token, "cursor": cursor, "limit": limit, "open_kfid": KFID})

    pages, pulled, cursor = [], [], ""
    for _ in range(6):
        result = page(cursor)
        assert result["errcode"] == 0
        pulled += result["msg_list"]
        pages.append(
            ([m.get("text", {}).get("content", m["msgtype"]) for m in result["msg_list"]], result["has_more"])
        )
        cursor = result["next_cursor"]
        if not result["has_more"]:
            break

    assert pages == [(["1", "2"], 1), (["3"], 1), ([], 1), (["event", "from servicer"], 0)]
    event = pulled[3]
    assert event["origin"] == 4 and "external_userid" not in event and "open_kfid" not in event
    assert event["event"]["welcome_code"] == queued["welcome_codes"]["wmB"]
    assert [m["origin"] for m in pulled if m["msgtype"] == "text"] == [3, 3, 3, 5]
    assert len({m["msgid"] for m in pulled}) == 5
    assert page(cursor) == {
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": cursor,
        "has_more": 0,
        "msg_list": [],
    }


def test_kf_sync_msg_token_expires_after_10_minutes(control, wecom):
    token = control.queue_kf_text(CORP, KFID, "wmA", "hi")["token"]
    control.advance_clock(601)

    assert wecom.kf("sync_msg", {"token": token, "open_kfid": KFID})["errcode"] == 95007
    assert wecom.kf("sync_msg", {"token": "made-up"})["errcode"] == 95007
    assert wecom.kf("sync_msg", {"open_kfid": KFID})["errcode"] == 0  # tokenless pull is allowed
    assert wecom.kf("sync_msg", {"cursor": "garbage"})["errcode"] == 40058
    assert wecom.post("kf/sync_msg", {}, secret=APP_SECRET).json()["errcode"] == 48002


def test_kf_send_allows_five_messages_per_customer_message(control, wecom):
    control.queue_kf_text(CORP, KFID, "wmA", "hi")

    results = [wecom.kf_text("wmA", f"r{i}")["errcode"] for i in range(6)]

    assert results == [0, 0, 0, 0, 0, 95001]
    control.queue_kf_text(CORP, KFID, "wmA", "again")
    assert wecom.kf_text("wmA", "r6")["errcode"] == 0
    assert control.received_texts("wmA") == ["r0", "r1", "r2", "r3", "r4", "r6"]


def test_kf_send_outside_48_hours_is_95002(control, wecom):
    control.queue_kf_text(CORP, KFID, "wmA", "hi")
    control.advance_clock(48 * 3600 + 1)

    assert wecom.kf_text("wmA", "too late")["errcode"] == 95002
    assert control.deliveries() == []


def test_kf_send_requires_state_0_or_1(control, wecom):
    assert wecom.kf_text("wmNever", "hi")["errcode"] == 95018  # never wrote: session ended/not started
    control.queue_kf_text(CORP, KFID, "wmA", "hi")
    assert (
        wecom.kf("service_state/trans", {"open_kfid": KFID, "external_userid": "wmA", "service_state": 2})[
            "errcode"
        ]
        == 0
    )

    assert wecom.kf_text("wmA", "in the pool")["errcode"] == 95018
    assert control.deliveries() == []


def test_kf_send_content_limits(control, wecom):
    control.queue_kf_text(CORP, KFID, "wmA", "hi")

    assert wecom.kf_text("wmA", "x" * 2049)["errcode"] == 45002
    assert wecom.kf_text("wmA", "")["errcode"] == 44004
    assert (
        wecom.kf("send_msg", {"touser": "wmA", "open_kfid": "wkUnknown", "msgtype": "text", "text": {}})[
            "errcode"
        ]
        == 95004
    )


def test_kf_send_with_repeated_msgid_is_not_delivered_twice(control, wecom):
    control.queue_kf_text(CORP, KFID, "wmA", "hi")

    first = wecom.kf_text("wmA", "answer", msgid="reply-42")
    again = wecom.kf_text("wmA", "answer", msgid="reply-42")

    assert first == again == {"errcode": 0, "errmsg": "ok", "msgid": "reply-42"}
    assert control.received_texts("wmA") == ["answer"]
    assert control.deliveries(delivered=False)[0]["duplicate"] is True
    assert control.kf_session(CORP, KFID, "wmA")["sends_since_customer_message"] == 1


def test_kf_service_state_machine(control, wecom):
    control.queue_kf_text(CORP, KFID, "wmA", "hi")

    def trans(state, servicer=None):
        body = {"open_kfid": KFID, "external_userid": "wmA", "service_state": state}
        if servicer:
            body["servicer_userid"] = servicer
        return wecom.kf("service_state/trans", body)

    def current():
        result = wecom.kf("service_state/get", {"open_kfid": KFID, "external_userid": "wmA"})
        return result["service_state"], result["servicer_userid"]

    assert current() == (0, "")
    assert trans(1) == {"errcode": 0, "errmsg": "ok"}
    assert trans(3)["errcode"] == 95014  # servicer_userid required
    assert trans(3, "zhangsan")["errcode"] == 95014  # not a servicer of the account
    control.set_kf_servicers(CORP, KFID, {"zhangsan": False, "lisi": True})
    assert trans(3, "zhangsan")["errcode"] == 95019  # a servicer, but not receiving
    assert current() == (1, "")  # refusals change nothing
    control.set_kf_servicers(CORP, KFID, {"zhangsan": True})
    handed = trans(3, "zhangsan")
    assert handed["errcode"] == 0 and handed["msg_code"]
    assert current() == (3, "zhangsan")
    assert trans(1)["errcode"] == 95016
    assert trans(2)["errcode"] == 95016
    assert trans(4)["errcode"] == 0
    assert [trans(s, "zhangsan")["errcode"] for s in range(5)] == [95016] * 5

    control.queue_kf_text(CORP, KFID, "wmA", "I am back")  # a new customer message reopens the session
    assert current() == (0, "")


def test_kf_send_msg_on_event_code_is_single_use(control, wecom):
    queued = control.queue_kf_messages(
        CORP, KFID, [{"msgtype": "event", "event": {"event_type": "enter_session", "external_userid": "wmA"}}]
    )
    body = {"code": queued["welcome_codes"]["wmA"], "msgtype": "text", "text": {"content": "Welcome!"}}

    assert wecom.kf("send_msg_on_event", body)["errcode"] == 0
    assert wecom.kf("send_msg_on_event", body)["errcode"] == 40058
    assert control.received_texts("wmA") == ["Welcome!"]


# -- faults and limits -----------------------------------------------------------------------------


def test_injected_errcodes_answer_the_next_calls_then_normal_service_resumes(control, wecom):
    token = wecom.token()
    control.inject_fault("message/send", errcode=-1)
    control.inject_fault("message/send", errcode=45009)
    control.inject_fault("message/send", errcode=42001, corp_id=CORP)

    codes = [wecom.send_text("alice", f"try {i}")["errcode"] for i in range(4)]

    assert codes == [42001, -1, 45009, 0]  # the corp-specific fault matches first
    assert control.received_texts("alice") == ["try 3"]
    assert wecom.token() == token  # an injected 42001 does not really expire the token
    assert control.faults() == []


def test_fault_for_another_corp_does_not_apply(control, wecom):
    control.inject_fault("message/send", errcode=-1, corp_id=OTHER_CORP)

    assert wecom.send_text("alice", "hi")["errcode"] == 0
    assert len(control.faults()) == 1


def test_injected_http_500_and_latency(control, wecom):
    token = wecom.token()
    control.inject_fault("message/send", http_status=500, count=2)
    control.inject_fault("gettoken", delay=0.3)

    statuses = [wecom.post("message/send", {}, token=token).status_code for _ in range(3)]
    started = time.monotonic()
    assert wecom.gettoken()["errcode"] == 0
    assert time.monotonic() - started >= 0.3

    assert statuses == [500, 500, 200]
    assert [c["http_status"] for c in control.calls(path="message/send")] == [500, 500, 200]


def test_rate_limit_per_corp_and_api_answers_45009(control, wecom):
    token = wecom.token()
    control.set_rate_limit(CORP, "message/send", 2, window=60)

    codes = [wecom.post("message/send", {"touser": "alice"}, token=token).json()["errcode"] for _ in range(3)]

    assert codes[2] == 45009 and 45009 not in codes[:2]
    control.advance_clock(61)
    assert wecom.send_text("alice", "after the window")["errcode"] == 0


def test_control_api_reports_bad_requests(control):
    with pytest.raises(SandboxError) as info:
        control.inject_fault("no/such/api", errcode=-1)

    assert info.value.status == 400 and "unknown api path" in info.value.detail


# -- callbacks -------------------------------------------------------------------------------------


class CallbackReceiver:
    """A tiny platform stand-in: records every request and answers from a script (then 200)."""

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list[tuple[str, str, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self):
                receiver.answer(self, b"")

            def do_POST(self):
                receiver.answer(self, self.rfile.read(int(self.headers["Content-Length"])))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wecom/callback"
        self.reply = None  # callable(handler, body) -> bytes for a custom 200 body
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def answer(self, handler, body):
        with self.lock:
            self.requests.append((handler.command, handler.path, body))
            step = self.script.pop(0) if self.script else ("status", 200)
        kind, value = step
        if kind == "stall":
            time.sleep(value)
            value = 200
        payload = self.reply(handler, body) if self.reply and value == 200 else b""
        try:
            handler.send_response(value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the sender timed out and hung up

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receivers = []

    def make(script=()):
        receivers.append(CallbackReceiver(script))
        return receivers[-1]

    yield make
    for r in receivers:
        r.stop()


def read_callback(path: str, body: bytes) -> dict[str, str]:
    """What a platform reads from one callback request: signature checked, payload decrypted, fields."""
    query = httpx.URL(path).params
    encrypted = ElementTree.fromstring(body).findtext("Encrypt")
    crypto = CallbackCrypto(CB_TOKEN, CB_AES_KEY, CORP)
    crypto.check_signature(query["msg_signature"], query["timestamp"], query["nonce"], encrypted)
    return {child.tag: child.text or "" for child in ElementTree.fromstring(crypto.decrypt(encrypted))}


def sender_for(url: str, **kwargs) -> CallbackSender:
    return CallbackSender(
        url=url, token=CB_TOKEN, encoding_aes_key=CB_AES_KEY, receive_id=CORP, agent_id=AGENT, **kwargs
    )


def test_sender_redelivers_the_identical_request_after_500s(receiver):
    platform = receiver([("status", 500), ("status", 500)])

    with sender_for(platform.url, timeout=2) as sender:
        result = sender.send_text(from_user="alice", content="hello")

    assert result.statuses == [500, 500, 200] and result.delivered
    assert len(platform.requests) == 3 and len(set(platform.requests)) == 1
    method, path, body = platform.requests[0]
    fields = read_callback(path, body)
    assert (method, fields["Content"], fields["FromUserName"], fields["AgentID"]) == (
        "POST",
        "hello",
        "alice",
        "1000002",
    )
    assert b"<AgentID><![CDATA[1000002]]></AgentID>" in body


def test_sender_redelivers_after_a_stalled_response(receiver):
    platform = receiver([("stall", 1.0)])

    with sender_for(platform.url, timeout=0.2) as sender:
        result = sender.send_text(from_user="alice", content="slow")

    assert result.statuses == [None, 200]
    assert result.attempts[0].error == "ReadTimeout"
    assert len(platform.requests) == 2 and platform.requests[0] == platform.requests[1]


def test_sender_gives_up_after_three_retries(receiver):
    platform = receiver([("status", 502)] * 10)

    with sender_for(platform.url, timeout=1) as sender:
        result = sender.send(b"<xml><MsgType>text</MsgType></xml>")

    assert result.statuses == [502, 502, 502, 502] and not result.delivered


def test_sender_sends_a_concurrent_duplicate(receiver):
    platform = receiver()

    with sender_for(platform.url) as sender:
        plaintext = text_message(
            corp_id=CORP, agent_id=AGENT, from_user="alice", content="twice", msg_id="42"
        )
        results = sender.send_concurrently(plaintext, copies=2)

    assert [r.statuses for r in results] == [[200], [200]]
    assert len(platform.requests) == 2 and platform.requests[0] == platform.requests[1]


def test_sender_decrypts_a_passive_reply(receiver):
    platform = receiver()
    crypto = CallbackCrypto(CB_TOKEN, CB_AES_KEY, CORP)

    def passive_reply(handler, body):
        encrypted = crypto.encrypt(b"<xml><Content>pong</Content></xml>")
        signature = crypto.sign("123", "n1", encrypted)
        return (
            f"<xml>\n<Encrypt><![CDATA[{encrypted}]]></Encrypt>\n<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
            "<TimeStamp>123</TimeStamp>\n<Nonce><![CDATA[n1]]></Nonce>\n</xml>"
        ).encode()

    platform.reply = passive_reply
    with sender_for(platform.url) as sender:
        result = sender.send_text(from_user="alice", content="ping")

    assert result.reply_plaintext == b"<xml><Content>pong</Content></xml>" and result.reply_error is None


def test_url_verification_helper(receiver):
    platform = receiver()
    crypto = CallbackCrypto(CB_TOKEN, CB_AES_KEY, CORP)

    def echo(handler, body):
        query = httpx.URL(handler.path).params
        crypto.check_signature(query["msg_signature"], query["timestamp"], query["nonce"], query["echostr"])
        return crypto.decrypt(query["echostr"])

    platform.reply = echo

    with sender_for(platform.url) as sender:
        verification = sender.verify_url()

    assert verification.ok and verification.within_deadline
    assert platform.requests[0][0] == "GET"


def test_sandbox_posts_app_and_kf_callbacks_to_the_configured_url(control, wecom, receiver):
    platform = receiver([("status", 500)])
    callback = {"url": platform.url, "token": CB_TOKEN, "encoding_aes_key": CB_AES_KEY}
    control.create_corp(
        CORP,
        apps=[{"agent_id": AGENT, "secret": APP_SECRET, "callback": callback}],
        kf_accounts=[{"open_kfid": KFID, "secret": KF_SECRET, "callback": callback}],
    )

    def received(index):
        _, path, body = platform.requests[index]
        return read_callback(path, body)

    sent = control.send_app_message(CORP, AGENT, "alice", content="hello app")
    assert [a["status"] for a in sent["callback"]["attempts"]] == [500, 200]
    assert received(1)["Content"] == "hello app"

    queued = control.queue_kf_text(CORP, KFID, "wmA", "hello kf")
    event = received(2)
    assert (event["Event"], event["Token"], event["OpenKfId"]) == ("kf_msg_or_event", queued["token"], KFID)
    pulled = wecom.kf("sync_msg", {"token": event["Token"], "open_kfid": event["OpenKfId"]})
    assert [m["text"]["content"] for m in pulled["msg_list"]] == ["hello kf"]
