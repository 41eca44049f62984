"""WeCom's 微信客服 session rules as the sandbox enforces them (docs/WECOM_PROTOCOL.md 4.2): the
service_state transition table, who may send in which state, the 48-hour window, 5 replies per
customer message, single-use event codes and their lifetimes, and a customer entering a session."""

from __future__ import annotations

import httpx
import pytest

from wecom_sandbox.client import SandboxClient

CORP = "wwkfrules0001"
KF_SECRET = "kf-rules-secret"
KFID = "wkRULES0001"
CUSTOMER = "wmRules01"
HOUR = 3600
# docs/WECOM_PROTOCOL.md 4.2 "Allowed transitions"; every other pair is 95016.
ALLOWED = {0: {1, 2, 3, 4}, 1: {1, 2, 3, 4}, 2: {2, 3, 4}, 3: {3, 4}, 4: set()}


@pytest.fixture
def control(sandbox_url):
    with SandboxClient(sandbox_url) as client:
        client.reset()
        client.create_corp(CORP, kf_accounts=[{"open_kfid": KFID, "secret": KF_SECRET, "servicers": ["zhangsan"]}])
        yield client


@pytest.fixture
def kf(sandbox_url):
    """kf/<path> with the 微信客服 secret's token, the raw JSON answer."""
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:

        def call(path: str, body: dict) -> dict:
            # A token per call: the tests move the clock past a token's 2 hours (gettoken reuses a live one).
            params = {"corpid": CORP, "corpsecret": KF_SECRET}
            token = http.get("/cgi-bin/gettoken", params=params).json()["access_token"]
            return http.post(f"/cgi-bin/kf/{path}", params={"access_token": token}, json=body).json()

        yield call


def send(kf, content: str = "reply", user: str = CUSTOMER) -> int:
    body = {"touser": user, "open_kfid": KFID, "msgtype": "text", "text": {"content": content}}
    return kf("send_msg", body)["errcode"]


def trans(kf, state: int, user: str = CUSTOMER) -> dict:
    body = {"open_kfid": KFID, "external_userid": user, "service_state": state}
    if state == 3:
        body["servicer_userid"] = "zhangsan"
    return kf("service_state/trans", body)


def on_event(kf, code: str, content: str = "欢迎", msgtype: str = "text") -> int:
    payload = {"content": content} if msgtype == "text" else {"head_content": content, "list": []}
    return kf("send_msg_on_event", {"code": code, "msgtype": msgtype, msgtype: payload})["errcode"]


def customer_writes(control, content: str = "你好", user: str = CUSTOMER) -> None:
    control.queue_kf_text(CORP, KFID, user, content, notify=False)


# -- service_state ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", range(5))
@pytest.mark.parametrize("start", range(5))
def test_the_transition_table_is_wecoms_and_anything_else_is_95016(control, kf, start, target):
    customer_writes(control)
    control.set_kf_session(CORP, KFID, CUSTOMER, service_state=start,
                           servicer_userid="zhangsan" if start == 3 else "")

    answer = trans(kf, target)

    expected = 0 if target in ALLOWED[start] else 95016
    assert answer["errcode"] == expected
    after = control.kf_session(CORP, KFID, CUSTOMER)["service_state"]
    assert after == (target if expected == 0 else start)  # a refused transition changes nothing


@pytest.mark.parametrize(("state", "errcode"), [(0, 0), (1, 0), (2, 95018), (3, 95018), (4, 95018)])
def test_send_msg_is_allowed_only_in_states_0_and_1(control, kf, state, errcode):
    customer_writes(control)
    control.set_kf_session(CORP, KFID, CUSTOMER, service_state=state)

    assert send(kf, "agent reply") == errcode
    assert control.received_texts(CUSTOMER) == (["agent reply"] if errcode == 0 else [])


def test_a_new_customer_message_reopens_an_ended_session_as_0(control, kf):
    customer_writes(control)
    assert trans(kf, 4)["errcode"] == 0
    assert send(kf) == 95018

    customer_writes(control, "我又来了")

    assert control.kf_session(CORP, KFID, CUSTOMER)["service_state"] == 0
    assert send(kf, "welcome back") == 0


def test_entering_the_pool_or_a_servicer_or_the_end_gives_a_msg_code_and_moving_to_1_does_not(control, kf):
    customer_writes(control)

    assert "msg_code" not in trans(kf, 1)
    assert trans(kf, 2)["msg_code"]
    assert trans(kf, 3)["msg_code"]
    assert trans(kf, 4)["msg_code"]


# -- the 48-hour window and 5 replies per customer message -----------------------------------------


def test_the_48_hour_window_runs_from_the_customers_last_message(control, kf):
    customer_writes(control, "first")
    control.advance_clock(47 * HOUR)
    customer_writes(control, "second")
    control.advance_clock(47 * HOUR)  # 94 h after the first message, 47 h after the last

    assert send(kf, "still in time") == 0
    control.advance_clock(1 * HOUR + 1)
    assert send(kf, "too late") == 95002
    assert control.received_texts(CUSTOMER) == ["still in time"]


def test_a_customer_who_never_wrote_cannot_be_sent_to(control, kf):
    control.set_kf_session(CORP, KFID, CUSTOMER, service_state=1)  # even in a sending state

    assert send(kf) == 95002


def test_five_replies_per_customer_message_and_a_new_message_restores_five_not_more(control, kf):
    customer_writes(control)
    assert [send(kf, f"a{i}") for i in range(6)] == [0, 0, 0, 0, 0, 95001]

    customer_writes(control, "again")
    customer_writes(control, "and again")  # two messages in a row still allow five, not ten

    assert [send(kf, f"b{i}") for i in range(6)] == [0, 0, 0, 0, 0, 95001]
    assert len(control.received_texts(CUSTOMER)) == 10


def test_a_refused_send_uses_none_of_the_allowance(control, kf):
    customer_writes(control)
    assert send(kf, "") == 44004
    assert send(kf, "x" * 2049) == 45002

    assert [send(kf, f"r{i}") for i in range(5)] == [0] * 5


# -- event codes: welcome_code and msg_code --------------------------------------------------------


def test_a_welcome_code_is_single_use(control, kf):
    code = control.customer_enters_session(CORP, KFID, CUSTOMER, notify=False)["welcome_codes"][CUSTOMER]

    assert on_event(kf, code, "欢迎光临") == 0
    assert on_event(kf, code, "欢迎光临") == 40058  # UNCONFIRMED errcode, see api.kf_send_msg_on_event
    assert control.received_texts(CUSTOMER) == ["欢迎光临"]


def test_a_welcome_code_expires_after_20_seconds(control, kf):
    code = control.customer_enters_session(CORP, KFID, CUSTOMER, notify=False)["welcome_codes"][CUSTOMER]
    control.advance_clock(21)

    assert on_event(kf, code) == 40058
    assert control.deliveries() == []


def test_a_welcome_is_text_or_a_menu_only(control, kf):
    code = control.customer_enters_session(CORP, KFID, CUSTOMER, notify=False)["welcome_codes"][CUSTOMER]

    refused = kf("send_msg_on_event", {"code": code, "msgtype": "image", "image": {"media_id": "x"}})
    assert refused["errcode"] == 40008
    assert on_event(kf, code, "请选择", msgtype="msgmenu") == 0  # the refused call did not use the code


def test_an_unknown_code_is_refused(control, kf):
    assert on_event(kf, "made-up-code") == 40058


def test_a_msg_code_is_single_use_and_the_closing_code_lives_20_seconds(control, kf):
    customer_writes(control)
    pool_code = trans(kf, 2)["msg_code"]
    control.advance_clock(47 * HOUR)  # a pool code lives 48 h

    assert on_event(kf, pool_code, "正在为您转接") == 0
    assert on_event(kf, pool_code, "again") == 40058

    closing_code = trans(kf, 4)["msg_code"]
    control.advance_clock(21)
    assert on_event(kf, closing_code, "再见") == 40058
    assert control.received_texts(CUSTOMER) == ["正在为您转接"]


def test_event_messages_are_sent_whatever_the_session_state(control, kf):
    # The closing message goes out after the session ended (state 4), where send_msg is refused.
    customer_writes(control)
    closing_code = trans(kf, 4)["msg_code"]

    assert send(kf) == 95018
    assert on_event(kf, closing_code, "本次服务已结束") == 0


# -- a customer entering a session -----------------------------------------------------------------


def pulled(kf) -> list[dict]:
    return kf("sync_msg", {"open_kfid": KFID})["msg_list"]


def test_a_customer_enters_a_session_with_a_scene_and_a_welcome_code(control, kf):
    queued = control.customer_enters_session(CORP, KFID, CUSTOMER, scene="qrcode", scene_param="campaign-7",
                                             notify=False)

    [message] = pulled(kf)
    assert (message["msgtype"], message["origin"], message["msgid"]) == ("event", 4, queued["msgids"][0])
    assert message["event"] == {"event_type": "enter_session", "external_userid": CUSTOMER, "open_kfid": KFID,
                                "scene": "qrcode", "scene_param": "campaign-7",
                                "welcome_code": queued["welcome_codes"][CUSTOMER]}


def test_a_customer_may_enter_without_a_welcome_code(control, kf):
    queued = control.customer_enters_session(CORP, KFID, CUSTOMER, welcome=False, notify=False)

    [message] = pulled(kf)
    assert "welcome_code" not in message["event"] and "scene" not in message["event"]
    assert queued["welcome_codes"] == {}


def test_entering_a_session_is_not_a_customer_message(control, kf):
    control.customer_enters_session(CORP, KFID, CUSTOMER, notify=False)

    assert send(kf) == 95018  # no message yet: the session has not started, only the welcome may go out
    assert control.kf_session(CORP, KFID, CUSTOMER)["service_state"] == 4


def test_an_account_managed_in_the_wecom_client_can_be_simulated_with_95011(control, kf):
    customer_writes(control)
    control.inject_fault("kf/send_msg", corp_id=CORP, errcode=95011)

    assert send(kf) == 95011
    assert send(kf, "after the operator fixed it") == 0
