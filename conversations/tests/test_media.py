"""Customers' pictures, voice, video and files: downloaded from WeCom (the sandbox) into storage by
the media job, on both channels; refused with a reason when too large or of the wrong kind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.actors import download_media
from conversations.models import InboundMessage, TraceEvent
from conversations.services.inbound import record_callback_message
from conversations.services.kf_pull import pull_kf_messages
from conversations.services.media import requeue_missing_media
from conversations.vocabulary import Stage
from testing.accounts import staff_client
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + b"a customer's photo" * 30
JPEG = b"\xff\xd8\xff\xe0" + b"a customer's receipt" * 30


def app_picture(app, sandbox, *, content=PNG, content_type="image/png", msgtype="image", user="zhangsan",
                msg_id="7000000000000000001") -> InboundMessage:
    """A member sends the app a picture: the sandbox holds it, the callback (stored as the view does) names it."""
    media_id = sandbox.put_media(CORP_ID, media_type=msgtype, filename="photo.png", content=content,
                                 content_type=content_type)["media_id"]
    fields = {"ToUserName": CORP_ID, "FromUserName": user, "CreateTime": "1700000000", "MsgType": msgtype,
              "PicUrl": "http://example.invalid/p.png", "MediaId": media_id, "MsgId": msg_id,
              "AgentID": str(app.agent_id)}
    return record_callback_message(app=app, fields=fields).inbound


def media_gets(sandbox) -> int:
    """media/get calls that reached the media (a stale cached token's refused first try does not count)."""
    return len([call for call in sandbox.calls(path="media/get") if call["errcode"] not in (40001, 40014, 42001)])


def test_an_app_customers_picture_is_stored_with_its_bytes_type_and_tenant_path(
        tenant_a, sandbox, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        app = WeComAppFactory()
        with django_capture_on_commit_callbacks(execute=True):
            inbound = app_picture(app, sandbox)
        jobs = queued_jobs("media", actor_name="conversations.download_media")
        assert [job.args for job in jobs][-1:] == [(inbound.pk,)]

        download_media(inbound.pk)

        inbound.refresh_from_db()
        assert inbound.media.name.startswith("alpha/media/") and inbound.media.name.endswith(".png")
        with inbound.media.open("rb") as stored:
            assert stored.read() == PNG
        assert (inbound.media_content_type, inbound.media_size, inbound.media_error) == ("image/png", len(PNG), "")
        assert TraceEvent.objects.filter(inbound=inbound, stage=Stage.MEDIA_STORED).count() == 1


def test_a_stored_picture_is_not_fetched_again(tenant_a, sandbox):
    with schema_context("alpha"):
        inbound = app_picture(WeComAppFactory(), sandbox)
        download_media(inbound.pk)
        name = InboundMessage.objects.get(pk=inbound.pk).media.name
        fetched = media_gets(sandbox)

        download_media(inbound.pk)  # a redelivered job

        assert media_gets(sandbox) == fetched == 1
        assert InboundMessage.objects.get(pk=inbound.pk).media.name == name


@pytest.mark.parametrize(("msgtype", "filename", "content", "content_type", "stored_as"), [
    ("image", "receipt.jpg", JPEG, "image/jpeg", "image/jpeg"),
    # What the bytes are wins over what WeCom declares: a PNG served as a generic download is a PNG.
    ("image", "receipt.png", PNG, "application/octet-stream", "image/png"),
    ("file", "发票.pdf", b"%PDF-1.4 the customer's invoice", "application/pdf", "application/pdf"),
])
def test_a_kf_customers_picture_or_file_is_pulled_then_stored(tenant_a, sandbox, msgtype, filename, content,
                                                              content_type, stored_as):
    queued = sandbox.queue_kf_media(CORP_ID, OPEN_KFID, "wmCustomerMedia", media_type=msgtype, filename=filename,
                                    content=content, content_type=content_type, notify=False)
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
        pull_kf_messages(app=app, open_kfid=OPEN_KFID, token=queued["token"])
        inbound = InboundMessage.objects.get(app=app, msg_type=msgtype)
        assert inbound.status == InboundMessage.Status.PENDING  # the AI path decides what it gets

        download_media(inbound.pk)

        inbound.refresh_from_db()
        assert inbound.media.name.startswith("alpha/media/") and inbound.media.name.endswith(filename[-4:])
        assert inbound.media.read() == content
        assert inbound.media_content_type == stored_as


def test_a_picture_over_the_size_limit_is_refused_and_nothing_is_stored(tenant_a, sandbox, settings):
    settings.MEDIA_MAX_BYTES = len(PNG) - 1
    with schema_context("alpha"):
        inbound = app_picture(WeComAppFactory(), sandbox)

        download_media(inbound.pk)
        download_media(inbound.pk)  # a refusal is final: not fetched again

        inbound.refresh_from_db()
        assert not inbound.media and inbound.media_size is None
        assert inbound.media_error.startswith("too large")
        assert media_gets(sandbox) == 1
        assert TraceEvent.objects.filter(inbound=inbound, stage=Stage.MEDIA_REFUSED).count() == 1


@pytest.mark.parametrize(("msgtype", "content_type", "content"), [
    ("image", "text/html", b"<html><script>alert(1)</script></html>"),
    ("image", "image/svg+xml", b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>"),
    ("image", "image/png", b"MZ not a picture at all, whatever the header says"),
    ("voice", "application/x-msdownload", b"MZ\x90\x00 an executable"),
])
def test_media_of_a_type_its_message_does_not_allow_is_refused(tenant_a, sandbox, msgtype, content_type, content):
    with schema_context("alpha"):
        inbound = app_picture(WeComAppFactory(), sandbox, msgtype=msgtype, content_type=content_type, content=content)

        download_media(inbound.pk)

        inbound.refresh_from_db()
        assert not inbound.media
        assert content_type in inbound.media_error and "not allowed" in inbound.media_error


def test_an_expired_media_id_is_recorded_not_retried(tenant_a, sandbox):
    with schema_context("alpha"):
        inbound = app_picture(WeComAppFactory(), sandbox)
        sandbox.advance_clock(3 * 24 * 3600 + 60)  # WeCom keeps media 3 days

        download_media(inbound.pk)

        inbound.refresh_from_db()
        assert not inbound.media
        assert "40007" in inbound.media_error


def test_text_messages_get_no_media_job(tenant_a, sandbox, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        app = WeComAppFactory()
        before = len(queued_jobs("media", actor_name="conversations.download_media"))
        with django_capture_on_commit_callbacks(execute=True):
            record_callback_message(app=app, fields={
                "ToUserName": CORP_ID, "FromUserName": "zhangsan", "CreateTime": "1700000000", "MsgType": "text",
                "Content": "你好", "MsgId": "7000000000000000099", "AgentID": str(app.agent_id)})
        assert len(queued_jobs("media", actor_name="conversations.download_media")) == before


def test_the_admin_shows_the_picture_with_its_message(tenant_a, sandbox):
    with schema_context("alpha"):
        inbound = app_picture(WeComAppFactory(), sandbox)
        download_media(inbound.pk)
    admin = staff_client("alpha")

    page = admin.get(f"/t/alpha/admin/conversations/inboundmessage/{inbound.pk}/change/")
    media_url = f"/t/alpha/admin/conversations/inboundmessage/{inbound.pk}/media/"
    assert page.status_code == 200
    assert f'<img src="{media_url}"'.encode() in page.content

    response = admin.get(media_url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert response["Content-Type"] == "image/png"
    assert Client().get(media_url).status_code == 302  # not signed in: to the admin's login


def test_the_sweeper_gives_lost_downloads_a_job_again_while_wecom_keeps_the_media(
        tenant_a, sandbox, django_capture_on_commit_callbacks):
    flush_test_broker()
    with schema_context("alpha"):
        app = WeComAppFactory()
        lost, fresh, refused, expired = (app_picture(app, sandbox, msg_id=str(7100 + n)) for n in range(4))
        InboundMessage.objects.filter(pk=refused.pk).update(media_error="too large")
        now = timezone.now()
        InboundMessage.objects.filter(pk__in=[lost.pk, refused.pk]).update(received_at=now - timedelta(minutes=10))
        InboundMessage.objects.filter(pk=expired.pk).update(received_at=now - timedelta(days=3, minutes=1))

        with django_capture_on_commit_callbacks(execute=True):
            assert requeue_missing_media(older_than_seconds=300) == 1

    jobs = queued_jobs("media", actor_name="conversations.download_media")
    assert [list(job.args) for job in jobs] == [[lost.pk]]  # not the fresh one: its own job may still run
    flush_test_broker()
