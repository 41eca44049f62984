"""Who is writing, as WeCom tells it: kf/customer/batchget (微信客服 customers of the last 48 hours, at most
100 ids a call, the others in invalid_external_userid) and user/get (a self-built app's members; apps created
after 2022-06 get no avatar)."""

from __future__ import annotations

import httpx
import pytest

from wecom_sandbox.client import SandboxClient

CORP = "wwprofiles001"
KF_SECRET = "kf-profiles-secret"
APP_SECRET = "app-profiles-secret"
OLD_APP_SECRET = "old-app-profiles-secret"
KFID = "wkPROFILES01"
HOUR = 3600


@pytest.fixture
def control(sandbox_url):
    with SandboxClient(sandbox_url) as client:
        client.reset()
        client.create_corp(CORP, kf_accounts=[{"open_kfid": KFID, "secret": KF_SECRET}],
                           apps=[{"agent_id": 1000101, "secret": APP_SECRET},
                                 {"agent_id": 1000102, "secret": OLD_APP_SECRET, "created_before_2022_06": True}],
                           members=["LiLei", "hanmeimei"])
        yield client


@pytest.fixture
def call(sandbox_url):
    """call(secret, "kf/customer/batchget", body) or call(secret, "user/get", params=...): WeCom's JSON."""
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:

        def run(secret: str, path: str, body: dict | None = None, *, params: dict | None = None) -> dict:
            token = http.get("/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": secret}).json()["access_token"]
            query = {"access_token": token, **(params or {})}
            if body is None:
                return http.get(f"/cgi-bin/{path}", params=query).json()
            return http.post(f"/cgi-bin/{path}", params=query, json=body).json()

        yield run


def batchget(call, ids) -> dict:
    return call(KF_SECRET, "kf/customer/batchget", {"external_userid_list": ids, "need_enter_session_context": 0})


def test_batchget_answers_customers_of_the_last_48_hours_and_lists_the_others_as_invalid(control, call):
    control.set_kf_customers(CORP, [{"external_userid": "wmWrote", "nickname": "李雷", "gender": 1,
                                     "avatar": "https://wx.qlogo.cn/mmhead/lilei/0", "unionid": "oUnion1"}])
    control.queue_kf_text(CORP, KFID, "wmWrote", "你好", notify=False)
    control.customer_enters_session(CORP, KFID, "wmEntered", notify=False)

    answer = batchget(call, ["wmWrote", "wmEntered", "wmNeverSeen", "wmWrote"])

    assert answer["errcode"] == 0
    assert answer["customer_list"] == [
        {"external_userid": "wmWrote", "nickname": "李雷", "avatar": "https://wx.qlogo.cn/mmhead/lilei/0",
         "gender": 1, "unionid": "oUnion1"},
        {"external_userid": "wmEntered", "nickname": "微信用户", "avatar": "", "gender": 0, "unionid": ""},
    ]
    assert answer["invalid_external_userid"] == ["wmNeverSeen"]

    control.advance_clock(48 * HOUR + 1)  # nobody wrote since: nobody is answered
    later = batchget(call, ["wmWrote", "wmEntered"])
    assert later["customer_list"] == []
    assert later["invalid_external_userid"] == ["wmWrote", "wmEntered"]


@pytest.mark.parametrize("ids", [[], "wmWrote", [""], [123], [f"wm{n}" for n in range(101)]])
def test_batchget_refuses_an_empty_a_malformed_or_an_over_long_list(control, call, ids):
    assert batchget(call, ids)["errcode"] == 40058


def test_batchget_takes_100_ids(control, call):
    answer = batchget(call, [f"wm{n}" for n in range(100)])
    assert answer["errcode"] == 0
    assert len(answer["invalid_external_userid"]) == 100


def test_batchget_needs_the_kf_secret(control, call):
    assert call(APP_SECRET, "kf/customer/batchget", {"external_userid_list": ["wmWrote"]})["errcode"] == 48002


def test_user_get_gives_newer_apps_no_avatar_and_older_apps_the_private_fields(control, call):
    control.set_member_profiles(CORP, [{"userid": "LiLei", "name": "李雷", "position": "采购",
                                        "avatar": "https://wework.qpic.cn/lilei/0", "gender": "1",
                                        "mobile": "13800000000"}])

    newer = call(APP_SECRET, "user/get", params={"userid": "lilei"})  # userids match case-insensitively
    assert newer == {"errcode": 0, "errmsg": "ok", "userid": "LiLei", "name": "李雷", "department": [1],
                     "position": "采购", "status": 1}

    older = call(OLD_APP_SECRET, "user/get", params={"userid": "LiLei"})
    assert older["avatar"] == "https://wework.qpic.cn/lilei/0"
    assert (older["gender"], older["mobile"], older["email"], older["thumb_avatar"]) == ("1", "13800000000", "", "")

    unscripted = call(OLD_APP_SECRET, "user/get", params={"userid": "hanmeimei"})
    assert (unscripted["name"], unscripted["avatar"]) == ("hanmeimei", "")


def test_user_get_refuses_unknown_and_missing_userids_and_the_kf_secret(control, call):
    assert call(APP_SECRET, "user/get", params={"userid": "nobody"})["errcode"] == 60111
    assert call(APP_SECRET, "user/get", params={})["errcode"] == 41009
    assert call(KF_SECRET, "user/get", params={"userid": "LiLei"})["errcode"] == 48002
