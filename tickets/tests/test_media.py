"""Pictures and files on the agent screens: a customer's picture shown (and served only to who may see the
conversation, only in its tenant), and an agent's picture and file reaching the customer on both channels."""

from __future__ import annotations

import itertools

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import translation
from django_tenants.utils import schema_context

from conversations.actors import download_media
from conversations.models import Message, OutboundMessage
from conversations.services.inbound import record_callback_message
from conversations.services.outbound import deliver_for_contact
from testing.accounts import login_cookie
from testing.factories import AgentProfileFactory, WeComAppFactory
from testing.vectors import CORP_ID
from tickets.services import ActionRefused, claim_conversation, send_attachment_as_agent

pytestmark = pytest.mark.django_db
PNG = b"\x89PNG\r\n\x1a\n" + b"the customer's photo" * 40
PDF = b"%PDF-1.4 the price list"
_msg_ids = itertools.count(7200000000000000001)


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def client_for(schema: str, username: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = login_cookie(schema, username)
    return client


@pytest.fixture
def pictured(tenant_a, tenant_b, sandbox, handed_off):
    """Alpha: a member sent the app a picture (stored by the media job), the AI handed the conversation
    off and alice claimed it; beta: an agent bob."""
    with schema_context("alpha"):
        app = WeComAppFactory()
        alice = AgentProfileFactory(user__username="alice-media")
        conversation = handed_off(app, user="wangwu")
        media_id = sandbox.put_media(CORP_ID, media_type="image", filename="photo.png", content=PNG,
                                     content_type="image/png")["media_id"]
        inbound = record_callback_message(app=app, fields={
            "ToUserName": CORP_ID, "FromUserName": "wangwu", "CreateTime": "1700000000", "MsgType": "image",
            "MediaId": media_id, "MsgId": str(next(_msg_ids)), "AgentID": str(app.agent_id)}).inbound
        download_media(inbound.pk)
        message = Message.objects.create(conversation=conversation, author=Message.Author.CUSTOMER, text="[图片]",
                                         inbound=inbound)
        claim_conversation(conversation_id=conversation.pk, profile=alice)
    with schema_context("beta"):
        AgentProfileFactory(user__username="bob-media")
    return {"conversation": conversation, "message": message, "alice": alice}


def test_the_agent_sees_the_customers_picture_inline(pictured):
    conversation, message = pictured["conversation"], pictured["message"]
    alice = client_for("alpha", "alice-media")

    detail = alice.get(f"/t/alpha/agent/api/conversations/{conversation.pk}/").json()
    line = next(m for m in detail["messages"] if m["id"] == message.pk)
    assert line["media"]["kind"] == "image" and line["media"]["status"] == "stored"
    assert line["media_url"] == f"/t/alpha/agent/c/{conversation.pk}/media/{message.pk}/"

    response = alice.get(line["media_url"])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png"
    assert not response["Content-Disposition"].startswith("attachment")  # shown inline
    assert "sandbox" in response["Content-Security-Policy"]


def test_media_is_not_found_for_another_tenant_a_colleague_or_another_contact(pictured, handed_off):
    conversation, message = pictured["conversation"], pictured["message"]
    path = f"agent/c/{conversation.pk}/media/{message.pk}/"
    # Another tenant: its agent's session means nothing in alpha, and in beta the same ids find nothing.
    assert client_for("beta", "bob-media").get(f"/t/alpha/{path}").status_code in (302, 403)
    assert client_for("beta", "bob-media").get(f"/t/beta/{path}").status_code == 404
    with schema_context("alpha"):
        AgentProfileFactory(user__username="carol-media")  # not the owner, and it no longer waits
        other = handed_off(WeComAppFactory(agent_id=1000099), user="zhaoliu")
        claim_conversation(conversation_id=other.pk, profile=pictured["alice"])
    assert client_for("alpha", "carol-media").get(f"/t/alpha/{path}").status_code == 404
    # A conversation alice may see does not open another contact's message.
    assert client_for("alpha", "alice-media").get(f"/t/alpha/agent/c/{other.pk}/media/{message.pk}/").status_code == 404
    assert client_for("alpha", "alice-media").get(f"/t/alpha/{path}").status_code == 200


def test_an_agents_picture_and_file_reach_an_app_customer(pictured, sandbox):
    conversation = pictured["conversation"]
    alice = client_for("alpha", "alice-media")
    url = f"/t/alpha/agent/api/conversations/{conversation.pk}/attach/"

    picture = alice.post(url, {"file": SimpleUploadedFile("answer.png", PNG, content_type="image/png")})
    document = alice.post(url, {"file": SimpleUploadedFile("价目表.pdf", PDF, content_type="application/pdf")})
    assert picture.status_code == document.status_code == 200
    with schema_context("alpha"):
        deliver_for_contact(conversation.contact_id)
        rows = list(OutboundMessage.objects.filter(author=Message.Author.AGENT).order_by("id"))
        assert [(row.msgtype, row.status) for row in rows] == [("image", "sent"), ("file", "sent")]
        assert all(row.media_id and row.media.name.startswith("alpha/media/") for row in rows)

    received = sandbox.received_media("wangwu")
    assert [(r["channel"], r["msgtype"], r["content"]) for r in received] == [("app", "image", PNG),
                                                                             ("app", "file", PDF)]
    assert received[1]["filename"] == "价目表.pdf"
    lines = document.json()["messages"]
    assert lines[-1]["text"] == "[文件] 价目表.pdf" and lines[-1]["media"]["kind"] == "file"


def test_an_agents_picture_and_file_reach_a_kf_customer(sandbox, kf_handed_off):
    customer = "wmCustomerMedia"
    with schema_context("alpha"):
        conversation = kf_handed_off(customer, "请看图片")
        contact = conversation.contact
        agent = AgentProfileFactory(user__username="kf-media")
        claim_conversation(conversation_id=conversation.pk, profile=agent)

        send_attachment_as_agent(conversation_id=conversation.pk, profile=agent,
                                 file=SimpleUploadedFile("answer.jpg", PNG, content_type="image/jpeg"))
        send_attachment_as_agent(conversation_id=conversation.pk, profile=agent,
                                 file=SimpleUploadedFile("manual.zip", PDF, content_type="application/zip"))
        deliver_for_contact(contact.pk)

        rows = OutboundMessage.objects.filter(author=Message.Author.AGENT).order_by("id")
        assert [(row.msgtype, row.status, row.last_errcode) for row in rows] == [("image", "sent", None),
                                                                                 ("file", "sent", None)]
    received = sandbox.received_media(customer)
    assert [(r["channel"], r["msgtype"], r["content"]) for r in received] == [("kf", "image", PNG), ("kf", "file", PDF)]


def test_attachments_wecom_would_refuse_are_refused_up_front(pictured, settings):
    conversation = pictured["conversation"]
    alice = client_for("alpha", "alice-media")
    url = f"/t/alpha/agent/api/conversations/{conversation.pk}/attach/"
    settings.MEDIA_MAX_BYTES = len(PDF) - 1

    too_large = alice.post(url, {"file": SimpleUploadedFile("big.pdf", PDF, content_type="application/pdf")})
    empty = alice.post(url, {"file": SimpleUploadedFile("empty.png", b"", content_type="image/png")})
    nothing = alice.post(url, {})

    assert too_large.status_code == empty.status_code == nothing.status_code == 409
    # The screens speak zh-hans by default: the refusal reads as the agent sees it.
    assert too_large.json()["detail"] == "文件超过企业微信允许的大小（图片 10 MB，文件 20 MB）。"
    assert empty.json()["detail"] == "文件是空的。"
    with schema_context("alpha"):
        assert not OutboundMessage.objects.filter(author=Message.Author.AGENT).exists()
        with pytest.raises(ActionRefused):
            send_attachment_as_agent(conversation_id=conversation.pk, profile=pictured["alice"],
                                     file=SimpleUploadedFile("big.pdf", PDF))
