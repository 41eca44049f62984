"""The sandbox's media APIs over real HTTP: media/upload limits, media/get, sending by media_id, and
customers who send pictures and files."""

from __future__ import annotations

import httpx
import pytest

from wecom_sandbox.client import SandboxClient

CORP = "wwmediacorp0001"
OTHER_CORP = "wwmediacorp0002"
AGENT = 1000002
APP_SECRET = "media-app-secret"
KF_SECRET = "media-kf-secret"
OTHER_SECRET = "other-app-secret"
KFID = "wkMEDIA0001"
PNG = b"\x89PNG\r\n\x1a\n" + b"picture-bytes" * 20


@pytest.fixture
def control(sandbox_url):
    with SandboxClient(sandbox_url) as client:
        client.reset()
        client.create_corp(CORP, apps=[{"agent_id": AGENT, "secret": APP_SECRET}],
                           kf_accounts=[{"open_kfid": KFID, "secret": KF_SECRET}])
        client.create_corp(OTHER_CORP, apps=[{"agent_id": AGENT, "secret": OTHER_SECRET}])
        yield client


@pytest.fixture
def http(sandbox_url):
    with httpx.Client(base_url=sandbox_url, timeout=30) as client:
        yield client


def _token(http, corp=CORP, secret=APP_SECRET) -> str:
    return http.get("/cgi-bin/gettoken", params={"corpid": corp, "corpsecret": secret}).json()["access_token"]


def _upload(http, media_type, filename, content, *, corp=CORP, secret=APP_SECRET, content_type="image/png"):
    return http.post("/cgi-bin/media/upload", params={"access_token": _token(http, corp, secret), "type": media_type},
                     files={"media": (filename, content, content_type)}).json()


def _get(http, media_id, *, corp=CORP, secret=APP_SECRET) -> httpx.Response:
    return http.get("/cgi-bin/media/get", params={"access_token": _token(http, corp, secret), "media_id": media_id})


def test_an_uploaded_picture_comes_back_byte_for_byte_from_media_get(control, http):
    uploaded = _upload(http, "image", "photo.png", PNG)
    assert uploaded["errcode"] == 0 and uploaded["type"] == "image" and uploaded["media_id"]

    response = _get(http, uploaded["media_id"])
    assert response.status_code == 200
    assert response.content == PNG
    assert response.headers["Content-Type"] == "image/png"
    assert "photo.png" in response.headers["Content-Disposition"]


@pytest.mark.parametrize(("media_type", "filename", "size", "errcode"), [
    ("image", "big.png", 10 * 1024 * 1024 + 1, 40009),
    ("voice", "long.amr", 2 * 1024 * 1024 + 1, 40010),
    ("video", "big.mp4", 10 * 1024 * 1024 + 1, 40011),
    ("file", "huge.zip", 20 * 1024 * 1024 + 1, 40006),
    ("image", "tiny.png", 5, 40009),
    ("image", "vector.svg", 100, 40005),
    ("voice", "song.mp3", 100, 40005),
    ("sticker", "x.png", 100, 40004),
])
def test_upload_enforces_wecoms_size_and_format_limits_per_type(control, http, media_type, filename, size, errcode):
    answer = _upload(http, media_type, filename, b"x" * size)
    assert answer["errcode"] == errcode


def test_the_largest_allowed_file_is_accepted(control, http):
    largest = b"x" * (20 * 1024 * 1024)
    assert _upload(http, "file", "report.pdf", largest, content_type="application/pdf")["errcode"] == 0


def test_media_get_answers_40007_for_an_unknown_media_id_or_another_corps(control, http):
    ours = _upload(http, "image", "photo.png", PNG)["media_id"]
    unknown = _get(http, "no-such-media")
    foreign = _get(http, ours, corp=OTHER_CORP, secret=OTHER_SECRET)
    assert unknown.json()["errcode"] == 40007
    assert foreign.json()["errcode"] == 40007


def test_media_expires_after_three_days(control, http):
    media_id = _upload(http, "image", "photo.png", PNG)["media_id"]
    control.advance_clock(3 * 24 * 3600 + 1)
    assert _get(http, media_id).json()["errcode"] == 40007


def test_message_send_delivers_an_uploaded_image_and_refuses_an_unknown_media_id(control, http):
    media_id = _upload(http, "image", "photo.png", PNG)["media_id"]
    token = _token(http)
    good = http.post("/cgi-bin/message/send", params={"access_token": token},
                     json={"touser": "alice", "agentid": AGENT, "msgtype": "image", "image": {"media_id": media_id}})
    bad = http.post("/cgi-bin/message/send", params={"access_token": token},
                    json={"touser": "alice", "agentid": AGENT, "msgtype": "file", "file": {"media_id": "nope"}})
    assert good.json()["errcode"] == 0
    assert bad.json()["errcode"] == 40007

    received = control.received_media("alice")
    assert [(r["msgtype"], r["content"], r["filename"]) for r in received] == [("image", PNG, "photo.png")]


def test_kf_send_msg_delivers_an_uploaded_file_and_refuses_an_unknown_media_id(control, http):
    control.queue_kf_text(CORP, KFID, "wmcustomer", "hello", notify=False)  # opens the session
    media_id = _upload(http, "file", "price-list.pdf", b"%PDF-1.4 price list", secret=KF_SECRET,
                       content_type="application/pdf")["media_id"]
    token = _token(http, secret=KF_SECRET)
    good = http.post("/cgi-bin/kf/send_msg", params={"access_token": token},
                     json={"touser": "wmcustomer", "open_kfid": KFID, "msgtype": "file",
                           "file": {"media_id": media_id}})
    bad = http.post("/cgi-bin/kf/send_msg", params={"access_token": token},
                    json={"touser": "wmcustomer", "open_kfid": KFID, "msgtype": "image", "image": {"media_id": "x"}})
    assert good.json()["errcode"] == 0
    assert bad.json()["errcode"] == 40007

    received = control.received_media("wmcustomer")
    assert [(r["channel"], r["msgtype"], r["content"]) for r in received] == [("kf", "file", b"%PDF-1.4 price list")]


def test_a_kf_customer_sends_a_picture_that_the_platform_pulls_and_downloads(control, http):
    sent = control.queue_kf_media(CORP, KFID, "wmcustomer", media_type="image", filename="receipt.jpg",
                                  content=PNG, content_type="image/jpeg", notify=False)

    token = _token(http, secret=KF_SECRET)
    pulled = http.post("/cgi-bin/kf/sync_msg", params={"access_token": token},
                       json={"open_kfid": KFID, "token": sent["token"]}).json()
    message = pulled["msg_list"][-1]
    assert message["msgtype"] == "image"
    assert message["image"]["media_id"] == sent["media_id"]
    response = _get(http, sent["media_id"], secret=KF_SECRET)
    assert response.content == PNG
    assert response.headers["Content-Type"] == "image/jpeg"
