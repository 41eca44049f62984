"""The WeCom callback endpoint: official vectors, store-then-acknowledge, dedup, and every rejection."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from django.test import Client
from django_tenants.utils import schema_context
from prometheus_client import REGISTRY

from conversations.models import InboundMessage, TraceEvent
from conversations.wecom.crypto import WeComCrypto
from testing.broker import flush_test_broker, queued_messages
from testing.factories import WeComAppFactory
from testing.vectors import A1, A1_ECHO, A2_BODY, A2_QUERY, AES_KEY, CORP_ID, TOKEN
from testing.wecom import callback_path, relative, sender_for
from wecom_sandbox.callbacks import app_event, app_message, message_xml, text_message
from wecom_sandbox.crypto import CallbackCrypto

pytestmark = pytest.mark.django_db

@pytest.fixture
def old_timestamps_ok(settings):
    """Tencent's vectors are from 2016; accept their timestamps for these tests only."""
    settings.WECOM_CALLBACK_MAX_AGE_SECONDS = 20 * 365 * 86400


@pytest.fixture
def enqueued():
    """Count of messages waiting on the inbound queue of the test broker."""
    flush_test_broker()
    yield lambda: queued_messages(["inbound"])["inbound"]
    flush_test_broker()


def rows() -> int:
    with schema_context("alpha"):
        return InboundMessage.objects.count()


def post(path: str, body: bytes, **extra):
    return Client().post(path, data=body, content_type="text/xml", **extra)


def test_url_verification_answers_exact_plaintext(app_alpha, old_timestamps_ok):
    # WeCom percent-encodes the base64 echostr; '+' must survive as '+', not become a space.
    response = Client().get(callback_path(app_alpha, "alpha") + "?" + urlencode(A1))
    assert response.status_code == 200
    assert response.content == A1_ECHO.encode()


def test_url_verification_with_raw_plus_signs(app_alpha, old_timestamps_ok):
    query = "&".join(f"{k}={v}" for k, v in A1.items())  # not percent-encoded at all
    response = Client().get(callback_path(app_alpha, "alpha") + "?" + query)
    assert response.content == A1_ECHO.encode()


def test_official_sample_message_is_stored_once(app_alpha, old_timestamps_ok, enqueued):
    path = callback_path(app_alpha, "alpha") + "?" + A2_QUERY

    first = post(path, A2_BODY)
    second = post(path, A2_BODY)  # WeCom's redelivery of the identical request

    assert (first.status_code, first.content) == (200, b"")
    assert (second.status_code, second.content) == (200, b"")
    with schema_context("alpha"):
        inbound = InboundMessage.objects.get()
        assert inbound.natural_key == "msg:1456453720"
        assert (inbound.msg_type, inbound.sender, inbound.content) == ("text", "ChenJiaShun", "你好")
        assert inbound.status == InboundMessage.Status.PENDING
        stages = list(TraceEvent.objects.filter(trace_id=inbound.trace_id).values_list("stage", flat=True))
    assert stages == ["received", "enqueued", "duplicate"]


def test_each_message_type_and_event_is_stored(app_alpha, django_capture_on_commit_callbacks):
    sender = sender_for(app_alpha, "http://testserver" + callback_path(app_alpha, "alpha"))
    kw = dict(corp_id=CORP_ID, agent_id=app_alpha.agent_id, from_user="zhangsan")
    plaintexts = [
        text_message(content="发货了吗", **kw),
        app_message("image", PicUrl="http://p/1.jpg", MediaId="m1", **kw),
        app_message("voice", MediaId="m2", Format="amr", **kw),
        app_message("video", MediaId="m3", ThumbMediaId="t3", **kw),
        app_message("location", Location_X="23.1", Location_Y="113.3", Scale="15", Label="广州", **kw),
        app_message("link", Title="t", Description="d", Url="http://u", PicUrl="http://p", **kw),
        app_message("file", MediaId="m4", **kw),  # a type we do not process
        app_event("subscribe", create_time=1700000001, **kw),
        app_event("enter_agent", create_time=1700000002, **kw),
        app_event("unsubscribe", create_time=1700000003, **kw),
        app_event("click", EventKey="menu1", create_time=1700000004, **kw),  # not processed either
    ]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for plaintext in plaintexts:
            prepared = sender.prepare(plaintext)
            assert post(relative(prepared.url), prepared.body).status_code == 200
            assert post(relative(prepared.url), prepared.body).status_code == 200  # redelivered

    with schema_context("alpha"):
        stored = {(m.msg_type, m.event): m.status for m in InboundMessage.objects.all()}
    pending, unsupported = InboundMessage.Status.PENDING, InboundMessage.Status.UNSUPPORTED
    assert stored == {
        ("text", ""): pending, ("image", ""): pending, ("voice", ""): pending, ("video", ""): pending,
        ("location", ""): pending, ("link", ""): pending, ("file", ""): unsupported,
        ("event", "subscribe"): pending, ("event", "enter_agent"): pending, ("event", "unsubscribe"): pending,
        ("event", "click"): unsupported,
    }
    # One enqueue per processable message, one media download per image, voice, video and file;
    # none for duplicates.
    assert len(callbacks) == 9 + 4


def build_cases(app):
    """(name, path, body, expected status, reason) for every kind of bad input; none may be stored."""
    sender = sender_for(app, "http://testserver" + callback_path(app, "alpha"))
    good = sender.prepare(text_message(corp_id=CORP_ID, agent_id=app.agent_id, from_user="u", content="hi"))
    good_path = relative(good.url)
    now = str(int(time.time()))

    def signed(plaintext: bytes, *, receive_id=CORP_ID, aes_key=AES_KEY, timestamp=None):
        other = sender_for(app, "http://testserver" + callback_path(app, "alpha"))
        other.crypto = CallbackCrypto(TOKEN, aes_key, receive_id)  # the simulator's own crypto, other credentials
        prepared = other.prepare(plaintext, timestamp=timestamp)
        return relative(prepared.url), prepared.body

    bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;">]><xml><ToUserName>ww1436e0e65a779aee</ToUserName>'
            b"<MsgType>text</MsgType><Content>&c;</Content><MsgId>1</MsgId></xml>")
    # Correctly signed, but the Encrypt text is not base64: only the decoding can refuse it.
    garbage = "%%not-base64%%"
    garbage_body = f"<xml><ToUserName>{CORP_ID}</ToUserName><Encrypt>{garbage}</Encrypt></xml>".encode()
    garbage_sig = WeComCrypto(TOKEN, AES_KEY, CORP_ID).signature(now, "n1", garbage)
    garbage_path = callback_path(app, "alpha") + f"?msg_signature={garbage_sig}&timestamp={now}&nonce=n1"
    stale = int(time.time()) - 3600
    wrong_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    return [
        ("wrong signature", good_path.replace("msg_signature=", "msg_signature=0"), good.body, 403, "signature"),
        ("stale timestamp", *signed(b"<xml/>", timestamp=stale), 400, "stale"),
        ("garbage base64", garbage_path, garbage_body, 400, "base64"),
        ("wrong AES key", *signed(message_xml({"MsgType": "text", "MsgId": "9"}), aes_key=wrong_key), 400,
         "padding"),
        ("wrong CorpID", *signed(message_xml({"ToUserName": CORP_ID, "MsgType": "text", "MsgId": "8"}),
                                 receive_id="wwSomebodyElse"), 400, "receive id"),
        ("wrong ToUserName", *signed(message_xml({"ToUserName": "wwOther", "MsgType": "text", "MsgId": "7"})),
         400, "ToUserName"),
        ("malformed XML", *signed(b"<xml><MsgType>text</MsgType"), 400, "malformed"),
        ("not a message", *signed(b"<html><MsgType>text</MsgType></html>"), 400, "malformed"),
        ("entity bomb", *signed(bomb), 400, "malformed"),
        ("envelope bomb", good_path, bomb, 400, ""),
        ("empty body", good_path, b"", 400, ""),
        ("10 MB body", good_path, b"<xml>" + b"a" * (10 * 1024 * 1024) + b"</xml>", 413, "too large"),
        ("missing signature", callback_path(app, "alpha") + f"?timestamp={now}&nonce=1", good.body, 400,
         "msg_signature"),
        ("unknown app", "/t/alpha/wecom/callback/nosuchapp/?" + good_path.split("?")[1], good.body, 404, "unknown"),
        ("unknown tenant", good_path.replace("/t/alpha/", "/t/nosuch/"), good.body, 404, "Unknown tenant"),
        ("other tenant", good_path.replace("/t/alpha/", "/t/beta/"), good.body, 404, "unknown"),
    ]


def rejections(reason: str) -> float:
    value = REGISTRY.get_sample_value("wecomdesk_callback_rejections_total",
                                      {"tenant": "alpha", "reason": reason})
    return value or 0.0


def test_bad_input_is_refused_and_stores_nothing(app_alpha, enqueued):
    signature_rejections = rejections("signature mismatch")
    for name, path, body, status, reason in build_cases(app_alpha):
        response = post(path, body)
        assert response.status_code == status, f"{name}: {response.status_code} {response.content[:80]}"
        assert response.content and reason.encode() in response.content, f"{name}: {response.content[:80]}"
    assert rows() == 0
    assert enqueued() == 0
    with schema_context("alpha"):
        assert TraceEvent.objects.count() == 0
    assert rejections("signature mismatch") == signature_rejections + 1


def test_disabled_app_is_refused(app_alpha):
    with schema_context("alpha"):
        app_alpha.is_enabled = False
        app_alpha.save()
    sender = sender_for(app_alpha, "http://testserver" + callback_path(app_alpha, "alpha"))
    prepared = sender.prepare(text_message(corp_id=CORP_ID, agent_id=app_alpha.agent_id, from_user="u",
                                           content="x"))
    assert post(relative(prepared.url), prepared.body).status_code == 404
    assert rows() == 0


def test_same_message_id_in_two_tenants_is_two_messages(app_alpha, tenant_b):
    with schema_context("beta"):
        app_beta = WeComAppFactory()
    for app, schema in ((app_alpha, "alpha"), (app_beta, "beta")):
        sender = sender_for(app, "http://testserver" + callback_path(app, schema))
        prepared = sender.prepare(text_message(corp_id=CORP_ID, agent_id=app.agent_id, from_user="u",
                                               content=f"hello {schema}", msg_id="777"))
        assert post(relative(prepared.url), prepared.body).status_code == 200
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            assert list(InboundMessage.objects.values_list("content", flat=True)) == [f"hello {schema}"]
