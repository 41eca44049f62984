"""The outbound ledger against the WeCom sandbox: order, retries, dead letters, pacing, human takeover."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message, OutboundMessage
from conversations.services.outbound import (
    ZERO_WIDTH_SPACE,
    deliver_contacts,
    deliver_for_contact,
    queue_outbound,
    resend_dead_letters,
    split_text,
)
from testing.factories import ContactFactory, ConversationFactory, WeComAppFactory
from testing.vectors import CORP_ID

pytestmark = pytest.mark.django_db
Status = OutboundMessage.Status


@pytest.fixture
def contact(tenant_a, sandbox):
    connection.set_schema_to_public()
    with schema_context("alpha"):
        yield ContactFactory(external_id="zhangsan")


def queue(contact, text: str, cause: str, author=Message.Author.AI, conversation=None):
    with schema_context("alpha"):
        return queue_outbound(contact=contact, conversation=conversation, message=None, author=author, text=text,
                              cause=cause)


def deliver(contact):
    with schema_context("alpha"):
        return deliver_for_contact(contact.pk)


def rows(contact):
    with schema_context("alpha"):
        return list(OutboundMessage.objects.filter(contact=contact).order_by("id"))


def test_split_text_respects_2048_utf8_bytes_and_keeps_everything():
    text = ("您好，这是一个很长的回答。" * 300).strip()
    parts = split_text(text)
    assert len(parts) > 1
    assert all(len(part.encode()) <= 2048 for part in parts)
    assert "".join(parts) == text
    assert split_text("短") == ["短"]


def test_messages_are_delivered_once_in_order(contact, sandbox):
    for i in range(5):
        queue(contact, f"回答 {i}", cause=f"inbound:{i}")
    queue(contact, "回答 0", cause="inbound:0")  # the same cause again creates nothing

    assert deliver(contact) is None
    assert sandbox.received_texts("zhangsan") == [f"回答 {i}" for i in range(5)]
    assert [r.status for r in rows(contact)] == [Status.SENT] * 5
    assert all(r.wecom_msgid for r in rows(contact))


def test_long_answers_become_ordered_parts(contact, sandbox):
    text = "第一段。" * 400
    created = queue(contact, text, cause="inbound:long")
    deliver(contact)
    assert [r.part for r in created] == list(range(1, len(created) + 1)) and len(created) > 1
    # Identical parts get an invisible zero-width space, or WeCom's duplicate check would drop them.
    assert "".join(sandbox.received_texts("zhangsan")).replace(ZERO_WIDTH_SPACE, "") == text.strip()


def test_a_repeated_text_is_still_delivered_despite_wecoms_duplicate_check(contact, sandbox):
    queue(contact, "请稍等", cause="inbound:1")
    queue(contact, "请稍等", cause="inbound:2")
    deliver(contact)
    received = sandbox.received_texts("zhangsan")
    assert [text.rstrip(ZERO_WIDTH_SPACE) for text in received] == ["请稍等", "请稍等"]


@pytest.mark.parametrize("errcode", [-1, 45009, 45033])
def test_transient_errors_are_retried_with_backoff(contact, sandbox, errcode, settings):
    settings.OUTBOUND_RETRY_BASE_SECONDS = 0.01
    sandbox.inject_fault("/cgi-bin/message/send", errcode=errcode, count=2)
    queue(contact, "你好", cause="inbound:1")
    queue(contact, "第二条", cause="inbound:2")

    waits = 0
    while (delay := deliver(contact)) is not None:
        assert delay < 1
        waits += 1
        with schema_context("alpha"):  # make the backoff due now
            OutboundMessage.objects.filter(status=Status.RETRYING).update(next_attempt_at=timezone.now())
    assert waits == 2
    first, second = rows(contact)
    assert (first.status, first.attempts, first.last_errcode) == (Status.SENT, 3, errcode)
    assert second.status == Status.SENT
    assert sandbox.received_texts("zhangsan") == ["你好", "第二条"]  # the second waited for the first


def test_http_500_is_transient_and_a_retry_does_not_duplicate(contact, sandbox, settings):
    settings.OUTBOUND_RETRY_BASE_SECONDS = 0.01
    sandbox.inject_fault("/cgi-bin/message/send", http_status=500, count=1)
    queue(contact, "你好", cause="inbound:1")
    assert deliver(contact) is not None
    with schema_context("alpha"):
        OutboundMessage.objects.update(next_attempt_at=timezone.now())
    assert deliver(contact) is None
    assert sandbox.received_texts("zhangsan") == ["你好"]


def test_permanent_errors_go_dead_and_later_rows_still_go_out(contact, sandbox):
    sandbox.set_members(CORP_ID, ["lisi"])  # zhangsan is not a member: 81013
    queue(contact, "你好", cause="inbound:1")
    deliver(contact)
    (row,) = rows(contact)
    assert (row.status, row.last_errcode, row.attempts) == (Status.DEAD, 81013, 1)
    assert "invalid" in row.last_error


def test_exhausted_retries_go_dead_then_resend_delivers_exactly_once(contact, sandbox, settings):
    settings.OUTBOUND_RETRY_BASE_SECONDS = 0.01
    settings.OUTBOUND_MAX_ATTEMPTS = 3
    sandbox.inject_fault("/cgi-bin/message/send", errcode=-1, count=3)
    queue(contact, "你好", cause="inbound:1")
    while deliver(contact) is not None:
        with schema_context("alpha"):
            OutboundMessage.objects.filter(status=Status.RETRYING).update(next_attempt_at=timezone.now())
    (row,) = rows(contact)
    assert (row.status, row.attempts) == (Status.DEAD, 3)
    assert sandbox.received_texts("zhangsan") == []

    with schema_context("alpha"):
        assert resend_dead_letters(ids=[row.pk]) == (1, [])
    deliver(contact)
    with schema_context("alpha"):
        assert resend_dead_letters(ids=[row.pk]) == (0, [f"#{row.pk} is sent, not dead"])
    deliver(contact)
    assert sandbox.received_texts("zhangsan") == ["你好"]


def test_a_crash_mid_send_is_absorbed_by_wecoms_duplicate_check(contact, sandbox):
    queue(contact, "你好", cause="inbound:1")
    deliver(contact)
    with schema_context("alpha"):  # as if the worker died after WeCom accepted, before our commit
        OutboundMessage.objects.update(status=Status.SENDING, wecom_msgid="")
    deliver(contact)
    assert rows(contact)[0].status == Status.SENT
    assert sandbox.received_texts("zhangsan") == ["你好"]


@override_settings(OUTBOUND_MEMBER_PER_MINUTE=3)
def test_member_pacing_waits_instead_of_being_dropped(contact, sandbox):
    for i in range(4):
        queue(contact, f"m{i}", cause=f"inbound:{i}")
    delay = deliver(contact)
    assert delay is not None and 50 < delay <= 60
    assert sandbox.received_texts("zhangsan") == ["m0", "m1", "m2"]
    assert rows(contact)[3].status == Status.PENDING


@override_settings(OUTBOUND_APP_RATE_LIMIT="3/minute")
def test_the_apps_send_rate_admits_what_fits_and_the_rest_waits(tenant_a, tenant_b, sandbox):
    with schema_context("alpha"):
        customers = [ContactFactory(external_id=f"customer{i}") for i in range(5)]
        for contact in customers:
            queue_outbound(contact=contact, conversation=None, message=None, author=Message.Author.AI,
                           text=f"回答 {contact.external_id}", cause=f"inbound:{contact.pk}")

        waits = deliver_contacts([contact.pk for contact in customers])

        # three of the five fit in the app's minute, in one go; the other two wait a second and are not sent
        assert sorted(waits.values()) == [1.0, 1.0]
        sent = OutboundMessage.objects.filter(contact__in=customers, status=Status.SENT)
        assert sent.count() == 3 and len(sandbox.deliveries(delivered=True)) == 3
        # the last one left in the window goes row by row: one more row fits after a fresh minute only
        assert deliver_contacts(list(waits)) == dict.fromkeys(waits, 1.0)
    with schema_context("beta"):  # another tenant's app has its own window
        other = ContactFactory(external_id="customer0")
        queue_outbound(contact=other, conversation=None, message=None, author=Message.Author.AI, text="你好",
                       cause="inbound:beta")
        assert deliver_contacts([other.pk]) == {}


def test_bot_messages_are_cancelled_once_a_human_owns_the_conversation(contact, sandbox):
    with schema_context("alpha"):
        conversation = ConversationFactory(contact=contact, state=Conversation.State.HUMAN)
    queue(contact, "AI answer", cause="inbound:1", conversation=conversation)
    queue(contact, "handoff", cause="inbound:2", conversation=conversation, author=Message.Author.HANDOFF)
    deliver(contact)
    assert [r.status for r in rows(contact)] == [Status.CANCELLED, Status.SENT]
    assert sandbox.received_texts("zhangsan") == ["handoff"]


def test_kf_sends_carry_a_stable_msgid_so_a_retry_is_not_delivered_twice(tenant_a, sandbox):
    kf_secret = "kf-secret-1"
    sandbox.create_corp("wwkfcorp", kf_accounts=[{"open_kfid": "wkAAAA", "secret": kf_secret}])
    sandbox.queue_kf_text("wwkfcorp", "wkAAAA", "wmCustomer", "你好", notify=False)
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf", corp_id="wwkfcorp", secret=kf_secret, open_kfids=["wkAAAA"])
        contact = ContactFactory(app=app, external_id="wmCustomer")  # of the account wkAAAA
    queue(contact, "您好，请问有什么可以帮您？", cause="inbound:1")
    deliver(contact)
    with schema_context("alpha"):
        OutboundMessage.objects.update(status=Status.SENDING)
    deliver(contact)
    delivered = [d for d in sandbox.deliveries(corp_id="wwkfcorp", user="wmCustomer") if not d["duplicate"]]
    assert [d["content"] for d in delivered] == ["您好，请问有什么可以帮您？"]
    assert delivered[0]["msgid"] == rows(contact)[0].wecom_msgid
