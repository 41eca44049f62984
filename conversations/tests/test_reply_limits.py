"""WeCom's reply limits as the agent screens see them: 微信客服's 48-hour window and 5 replies per
customer message (restored by a new one), the self-built app's 30 messages a minute per member."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import InboundMessage, OutboundMessage
from conversations.services.reply_limits import Refusal, reply_allowance
from testing.factories import ContactFactory, InboundMessageFactory, OutboundMessageFactory, WeComAppFactory

pytestmark = pytest.mark.django_db
Status = OutboundMessage.Status


@pytest.fixture
def kf_contact(tenant_a):
    with schema_context("alpha"):
        yield ContactFactory(app=WeComAppFactory(kind="kf"), external_id="wmCustomer1")


def customer_writes(contact, *, at):
    return InboundMessageFactory(app=contact.app, sender=contact.external_id, open_kfid=contact.open_kfid,
                                 origin=3, source=InboundMessage.Source.KF_PULL, sent_at=at,
                                 status=InboundMessage.Status.PROCESSED)


def test_no_reply_before_the_customer_writes(kf_contact):
    with schema_context("alpha"):
        allowance = reply_allowance(contact=kf_contact)
    assert (allowance.refusal, allowance.replies_left) == (Refusal.NO_CUSTOMER_MESSAGE, 0)


def test_five_replies_per_customer_message_counting_parts_and_only_real_sends(kf_contact):
    with schema_context("alpha"):
        wrote_at = timezone.now() - timedelta(minutes=5)
        customer_writes(kf_contact, at=wrote_at)
        for status in (Status.SENT, Status.SENT, Status.PENDING):
            OutboundMessageFactory(contact=kf_contact, status=status)
        OutboundMessageFactory(contact=kf_contact, status=Status.DEAD)  # refused by WeCom: none used
        OutboundMessageFactory(contact=kf_contact, status=Status.CANCELLED)  # never sent
        OutboundMessageFactory(contact=kf_contact, status=Status.SENT, event_code="welcome-code")  # its own code

        allowance = reply_allowance(contact=kf_contact, parts=2)
        assert (allowance.replies_left, allowance.refusal) == (2, None)
        assert allowance.window_ends_at == wrote_at + timedelta(hours=48)
        assert reply_allowance(contact=kf_contact, parts=3).refusal == Refusal.NO_REPLIES_LEFT  # a 3-part reply

        OutboundMessageFactory(contact=kf_contact, status=Status.SENT)
        OutboundMessageFactory(contact=kf_contact, status=Status.SENDING)
        assert reply_allowance(contact=kf_contact).refusal == Refusal.NO_REPLIES_LEFT

        customer_writes(kf_contact, at=timezone.now())  # a new customer message restores the allowance
        assert reply_allowance(contact=kf_contact).replies_left == 5


def test_the_window_closes_48_hours_after_the_customers_last_message(kf_contact):
    with schema_context("alpha"):
        wrote_at = timezone.now()
        customer_writes(kf_contact, at=wrote_at)
        just_inside = reply_allowance(contact=kf_contact, now=wrote_at + timedelta(hours=48))
        after = reply_allowance(contact=kf_contact, now=wrote_at + timedelta(hours=48, seconds=1))
    assert just_inside.refusal is None
    assert after.refusal == Refusal.WINDOW_CLOSED


def test_the_self_built_app_shows_the_minute_and_never_refuses(tenant_a):
    with schema_context("alpha"):
        contact = ContactFactory(external_id="zhangsan")
        now = timezone.now()
        for seconds_ago in (10, 20, 70):
            OutboundMessageFactory(contact=contact, status=Status.SENT, sent_at=now - timedelta(seconds=seconds_ago))
        allowance = reply_allowance(contact=contact, now=now)
    assert (allowance.per_minute_left, allowance.refusal, allowance.window_ends_at) == (28, None, None)


def test_another_tenants_messages_are_not_counted(kf_contact, tenant_b):
    with schema_context("beta"):
        other = ContactFactory(app=WeComAppFactory(kind="kf"), external_id="wmCustomer1")
        customer_writes(other, at=timezone.now())
        for _ in range(5):
            OutboundMessageFactory(contact=other, status=Status.SENT)
    with schema_context("alpha"):
        assert reply_allowance(contact=kf_contact).refusal == Refusal.NO_CUSTOMER_MESSAGE
        customer_writes(kf_contact, at=timezone.now())
        assert reply_allowance(contact=kf_contact).replies_left == 5
