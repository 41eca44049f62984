"""What the outbound ledger counts: WeCom's duplicate-check window runs from when an identical text was
delivered, and an attempt is WeCom's answer to a call, not a crash of ours before it came."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import OutboundMessage
from conversations.services.outbound import (
    ZERO_WIDTH_SPACE,
    deliver_for_contact,
    queue_outbound,
    queue_outbound_media,
)
from conversations.wecom.client import WeComClient
from testing.factories import ContactFactory

pytestmark = pytest.mark.django_db
Status = OutboundMessage.Status
WINDOW = timedelta(seconds=settings.WECOM_DUPLICATE_CHECK_SECONDS)


@pytest.fixture
def contact(tenant_a, sandbox):
    connection.set_schema_to_public()
    with schema_context("alpha"):
        yield ContactFactory(external_id="lisi")


def answer(contact, text: str, cause: str) -> OutboundMessage:
    with schema_context("alpha"):
        queue_outbound(contact=contact, conversation=None, message=None, author="ai", text=text, cause=cause)
        return OutboundMessage.objects.get(idempotency_key=f"{cause}:1")  # bulk_create returns no ids here


def deliver(contact) -> None:
    with schema_context("alpha"):
        deliver_for_contact(contact.pk)


def backdate(row: OutboundMessage, **fields) -> None:
    with schema_context("alpha"):
        OutboundMessage.objects.filter(pk=row.pk).update(**fields)


def test_a_text_created_long_ago_but_delivered_lately_still_counts_for_the_duplicate_window(contact, sandbox):
    # Given an answer whose row is older than WeCom's window but which was delivered inside it
    # (a long retry chain, or a dead letter re-sent)
    first = answer(contact, "请稍等", cause="inbound:1")
    deliver(contact)
    now = timezone.now()
    backdate(first, created_at=now - WINDOW * 2, sent_at=now - WINDOW / 2)

    # When the same text answers a later message
    second = answer(contact, "请稍等", cause="inbound:2")
    deliver(contact)

    # Then it is made distinct (WeCom would drop an identical request silently) and arrives
    assert second.content == "请稍等" + ZERO_WIDTH_SPACE
    assert sandbox.received_texts("lisi") == ["请稍等", "请稍等" + ZERO_WIDTH_SPACE]


def test_a_text_delivered_before_the_window_does_not_count(contact, sandbox):
    first = answer(contact, "好的", cause="inbound:1")
    deliver(contact)
    now = timezone.now()
    backdate(first, created_at=now - WINDOW / 2, sent_at=now - WINDOW - timedelta(minutes=1))

    second = answer(contact, "好的", cause="inbound:2")

    # (Not delivered here: the sandbox, like WeCom, knows the first went out seconds ago in real time.)
    assert second.content == "好的"


def test_texts_still_waiting_count_whatever_their_age(contact, sandbox):
    first = answer(contact, "稍后回复", cause="inbound:1")  # not delivered yet: it goes out before the next one
    backdate(first, created_at=timezone.now() - WINDOW * 3)

    second = answer(contact, "稍后回复", cause="inbound:2")
    deliver(contact)

    assert second.content == "稍后回复" + ZERO_WIDTH_SPACE
    assert sandbox.received_texts("lisi") == ["稍后回复", "稍后回复" + ZERO_WIDTH_SPACE]


def test_a_crash_before_wecom_answers_does_not_use_up_an_attempt(contact, sandbox, monkeypatch):
    # Given a send that dies with our process after the row was marked "sending" (simulated where the
    # WeCom call would start: nothing reaches WeCom)
    row = answer(contact, "您好", cause="inbound:1")

    def killed(*args, **kwargs):
        raise SystemExit("worker killed mid-send")

    monkeypatch.setattr(WeComClient, "send_text", killed)
    with pytest.raises(SystemExit):
        deliver(contact)
    with schema_context("alpha"):
        row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENDING, 0)
    monkeypatch.undo()

    # When the next delivery picks the row up
    deliver(contact)

    # Then WeCom's one answer is the one attempt
    with schema_context("alpha"):
        row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENT, 1)
    assert sandbox.received_texts("lisi") == ["您好"]


def test_each_answer_from_wecom_counts_one_attempt(contact, sandbox):
    sandbox.inject_fault("/cgi-bin/message/send", errcode=-1, count=2)  # WeCom busy twice, then fine
    row = answer(contact, "在的", cause="inbound:1")
    with schema_context("alpha"):
        for _ in range(3):
            OutboundMessage.objects.filter(pk=row.pk).update(next_attempt_at=None)  # no backoff wait here
            deliver_for_contact(contact.pk)
        row.refresh_from_db()
    assert (row.status, row.attempts, row.last_errcode) == (Status.SENT, 3, -1)
    assert sandbox.received_texts("lisi") == ["在的"]


def test_a_picture_whose_media_id_wecom_forgot_is_uploaded_again_once(contact, sandbox):
    # Given a picture uploaded more than 3 days ago (a dead letter re-sent): WeCom no longer knows its media_id
    picture = b"\x89PNG\r\n\x1a\n" + b"answer" * 20
    with schema_context("alpha"):
        row = queue_outbound_media(contact=contact, conversation=None, message=None, author="agent",
                                   msgtype="image", file=ContentFile(picture), name="answer.png", cause="agent:1")
        OutboundMessage.objects.filter(pk=row.pk).update(media_id="expired-media-id")

        deliver_for_contact(contact.pk)

        row.refresh_from_db()
    assert (row.status, row.attempts) == (Status.SENT, 1) and row.media_id not in ("", "expired-media-id")
    assert [media["content"] for media in sandbox.received_media("lisi")] == [picture]
