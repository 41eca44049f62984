"""微信客服 menus (msgmenu) in the sandbox: WeCom's limits on kf/send_msg and kf/send_msg_on_event
(docs/WECOM_PROTOCOL.md 4.2), the menus a customer received, and a customer clicking an item
(a pulled text carrying `menu_id`)."""

from __future__ import annotations

import httpx
import pytest

from wecom_sandbox.client import SandboxClient, SandboxError

CORP = "wwkfmenus0001"
KF_SECRET = "kf-menus-secret"
KFID = "wkMENUS0001"
CUSTOMER = "wmMenus01"


@pytest.fixture
def control(sandbox_url):
    with SandboxClient(sandbox_url) as client:
        client.reset()
        client.create_corp(CORP, kf_accounts=[{"open_kfid": KFID, "secret": KF_SECRET}])
        client.queue_kf_text(CORP, KFID, CUSTOMER, "你好", notify=False)  # opens the reply window
        yield client


@pytest.fixture
def kf(sandbox_url):
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:
        token = http.get("/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": KF_SECRET}).json()["access_token"]

        def call(path: str, body: dict) -> dict:
            return http.post(f"/cgi-bin/kf/{path}", params={"access_token": token}, json=body).json()

        yield call


def click(item_id: str, content: str) -> dict:
    return {"type": "click", "click": {"id": item_id, "content": content}}


def send_menu(kf, menu: dict) -> int:
    body = {"touser": CUSTOMER, "open_kfid": KFID, "msgtype": "msgmenu", "msgmenu": menu}
    return kf("send_msg", body)["errcode"]


def test_a_menu_is_delivered_with_its_items(control, kf):
    menu = {"head_content": "您是想问以下问题吗？", "list": [click("kb:1", "如何退货"), click("human", "转人工客服")],
            "tail_content": "请点击选择"}

    assert send_menu(kf, menu) == 0

    assert control.received_menus(CUSTOMER) == [{
        "head": "您是想问以下问题吗？", "tail": "请点击选择", "msgid": control.received_menus(CUSTOMER)[0]["msgid"],
        "items": [{"id": "kb:1", "content": "如何退货"}, {"id": "human", "content": "转人工客服"}]}]


@pytest.mark.parametrize(("menu", "errcode"), [
    ({"list": [click(str(n), f"第{n}项") for n in range(11)]}, 95008),           # 11 items
    ({"list": [click("x" * 65, "太长的编号")]}, 95008),                          # id over 64 bytes
    ({"list": [click("1", "长" * 43)]}, 95008),                                  # 129 bytes of content
    ({"list": [{"type": "click", "click": {"id": "1"}}]}, 95008),                 # no content
    ({"list": [{"type": "button", "button": {"id": "1", "content": "?"}}]}, 95008),
    ({"head_content": "头" * 342, "list": [click("1", "好")]}, 45002),            # 1026 bytes of head
    ({"tail_content": "尾" * 342, "list": [click("1", "好")]}, 45002),
])
def test_wecoms_menu_limits_refuse_and_nothing_is_delivered(control, kf, menu, errcode):
    assert send_menu(kf, menu) == errcode
    assert control.received_menus(CUSTOMER) == []


def test_the_limits_themselves_are_accepted(control, kf):
    menu = {"head_content": "头" * 341, "tail_content": "尾" * 341,  # 1023 bytes each
            "list": [click("x" * 64, "长" * 42 + "ab")] + [click(str(n), "好") for n in range(9)]}  # 64 B id, 128 B

    assert send_menu(kf, menu) == 0
    assert len(control.received_menus(CUSTOMER)[0]["items"]) == 10


def test_a_welcome_menu_through_send_msg_on_event_obeys_the_same_limits(control, kf):
    code = control.customer_enters_session(CORP, KFID, "wmMenus02", notify=False)["welcome_codes"]["wmMenus02"]
    too_many = {"head_content": "欢迎", "list": [click(str(n), "好") for n in range(11)]}

    assert kf("send_msg_on_event", {"code": code, "msgtype": "msgmenu", "msgmenu": too_many})["errcode"] == 95008
    welcome = {"head_content": "欢迎", "list": [click("human", "转人工客服")]}
    assert kf("send_msg_on_event", {"code": code, "msgtype": "msgmenu", "msgmenu": welcome})["errcode"] == 0

    assert control.received_menus("wmMenus02")[0]["items"] == [{"id": "human", "content": "转人工客服"}]


def test_a_click_becomes_the_customers_text_with_the_menu_id(control, kf, sandbox_url):
    assert send_menu(kf, {"head_content": "请选择", "list": [click("kb:7", "如何开发票")]}) == 0

    queued = control.customer_clicks(CORP, KFID, CUSTOMER, "kb:7", notify=False)

    pulled = kf("sync_msg", {"token": queued["token"], "open_kfid": KFID})["msg_list"]
    clicked = [m for m in pulled if m["msgid"] in queued["msgids"]]
    assert [(m["msgtype"], m["text"], m["origin"]) for m in clicked] == [
        ("text", {"content": "如何开发票", "menu_id": "kb:7"}, 3)]
    # A click is a customer message: it restores the reply allowance like any other.
    assert control.kf_session(CORP, KFID, CUSTOMER)["sends_since_customer_message"] == 0


def test_only_an_item_of_a_delivered_menu_can_be_clicked(control, kf):
    assert send_menu(kf, {"list": [click("kb:7", "如何开发票")]}) == 0

    with pytest.raises(SandboxError) as refused:
        control.customer_clicks(CORP, KFID, CUSTOMER, "kb:8", notify=False)
    assert refused.value.status == 400
    with pytest.raises(SandboxError):
        control.customer_clicks(CORP, KFID, "wmSomeoneElse", "kb:7", notify=False)
