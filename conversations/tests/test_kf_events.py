"""微信客服 events against the sandbox over HTTP: entering a session (scene, welcome through
kf/send_msg_on_event, once), kf_account_auth_change and errcode 95011 (the account's status)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.actors import process_inbound
from conversations.models import (
    AccountStatus,
    Contact,
    DeskSettings,
    InboundMessage,
    Message,
    OutboundMessage,
    TraceEvent,
    WeComApp,
)
from conversations.services.inbound import record_callback_message, record_kf_message
from conversations.services.kf_pull import pull_kf_messages
from conversations.services.outbound import deliver_for_contact, queue_outbound
from conversations.vocabulary import Stage
from testing.factories import ContactFactory, WeComAppFactory
from testing.vectors import CORP_ID, OPEN_KFID

pytestmark = pytest.mark.django_db

CUSTOMER = "wmEnterSession01"
WELCOME = "您好，欢迎来到演示客服，请问有什么可以帮您？"


@pytest.fixture
def kf_app(tenant_a, sandbox, redis_client) -> WeComApp:
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
    # The token cache outlives the rolled-back row, whose pk may come back in another test.
    redis_client.delete(f"alpha:wecom:token:{app.pk}")
    yield app
    redis_client.delete(f"alpha:wecom:token:{app.pk}")


def set_welcome(text: str) -> None:
    with schema_context("alpha"):
        DeskSettings.objects.update_or_create(pk=1, defaults={"welcome_message": text})


def enter_and_pull(sandbox, app, capture, **event) -> InboundMessage:
    """The customer enters the session; we pull and process the event (its jobs run inline)."""
    queued = sandbox.customer_enters_session(CORP_ID, OPEN_KFID, CUSTOMER, notify=False, **event)
    with schema_context("alpha"), capture(execute=False):
        pull_kf_messages(app=app, open_kfid=OPEN_KFID, token=queued["token"])
        inbound = InboundMessage.objects.get(app=app, natural_key=f"kf:{queued['msgids'][0]}")
        assert inbound.status == InboundMessage.Status.PENDING  # enter_session is acted on, not only recorded
        process_inbound(inbound.pk)
    return inbound


def deliver() -> None:
    with schema_context("alpha"):
        for contact in Contact.objects.filter(external_id=CUSTOMER):
            deliver_for_contact(contact.pk)


def kf_calls(sandbox, path: str) -> list[dict]:
    return sandbox.calls(path=path, corp_id=CORP_ID)


# -- entering a session --------------------------------------------------------------------------


def test_entering_a_session_records_the_scene_and_sends_the_welcome_once_through_send_msg_on_event(
        kf_app, sandbox, django_capture_on_commit_callbacks):
    set_welcome(WELCOME)

    inbound = enter_and_pull(sandbox, kf_app, django_capture_on_commit_callbacks, scene="qrcode",
                             scene_param="campaign-7")
    deliver()

    with schema_context("alpha"):
        contact = Contact.objects.get(app=kf_app, external_id=CUSTOMER, open_kfid=OPEN_KFID)
        assert (contact.scene, contact.scene_param) == ("qrcode", "campaign-7")
        row = OutboundMessage.objects.get(contact=contact)
        assert (row.status, row.author, row.event_code != "") == (OutboundMessage.Status.SENT,
                                                                  Message.Author.NOTICE, True)
        inbound.refresh_from_db()
        assert inbound.status == InboundMessage.Status.PROCESSED
        assert TraceEvent.objects.filter(trace_id=inbound.trace_id, stage=Stage.SENT).exists()
    assert sandbox.received_texts(CUSTOMER) == [WELCOME]
    assert len(kf_calls(sandbox, "kf/send_msg_on_event")) == 1
    assert kf_calls(sandbox, "kf/send_msg") == []  # the session is not open for send_msg before a message


def test_a_redelivered_job_or_a_repulled_event_sends_nothing_twice(kf_app, sandbox,
                                                                    django_capture_on_commit_callbacks):
    set_welcome(WELCOME)
    inbound = enter_and_pull(sandbox, kf_app, django_capture_on_commit_callbacks)
    deliver()

    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=False):
        process_inbound(inbound.pk)  # the job delivered again
        again = record_kf_message(app=kf_app, message=inbound.payload)  # the same msgid pulled again
        assert not again.created
    deliver()

    with schema_context("alpha"):
        assert OutboundMessage.objects.filter(contact__external_id=CUSTOMER).count() == 1
    assert sandbox.received_texts(CUSTOMER) == [WELCOME]
    assert len(kf_calls(sandbox, "kf/send_msg_on_event")) == 1


def test_no_welcome_when_the_setting_is_empty_but_the_scene_is_kept(kf_app, sandbox,
                                                                     django_capture_on_commit_callbacks):
    set_welcome("")

    enter_and_pull(sandbox, kf_app, django_capture_on_commit_callbacks, scene="link", scene_param="p1")
    deliver()

    with schema_context("alpha"):
        contact = Contact.objects.get(external_id=CUSTOMER)
        assert (contact.scene, contact.scene_param) == ("link", "p1")
        assert not OutboundMessage.objects.filter(contact=contact).exists()
    assert kf_calls(sandbox, "kf/send_msg_on_event") == []


def test_no_welcome_when_wecom_gives_no_welcome_code(kf_app, sandbox, django_capture_on_commit_callbacks):
    set_welcome(WELCOME)

    inbound = enter_and_pull(sandbox, kf_app, django_capture_on_commit_callbacks, welcome=False)
    deliver()

    with schema_context("alpha"):
        assert "welcome_code" not in inbound.payload["event"]
        assert not OutboundMessage.objects.filter(contact__external_id=CUSTOMER).exists()
        processed = TraceEvent.objects.get(trace_id=inbound.trace_id, stage=Stage.PROCESSED)
        assert processed.detail["welcome"] == "no welcome_code"
    assert kf_calls(sandbox, "kf/send_msg_on_event") == []


def test_an_event_seen_after_its_welcome_code_expired_queues_nothing(kf_app, sandbox,
                                                                      django_capture_on_commit_callbacks):
    set_welcome(WELCOME)
    queued = sandbox.customer_enters_session(CORP_ID, OPEN_KFID, CUSTOMER, notify=False)
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=False):
        pull_kf_messages(app=kf_app, open_kfid=OPEN_KFID, token=queued["token"])
        inbound = InboundMessage.objects.get(natural_key=f"kf:{queued['msgids'][0]}")
        # The pull ran late (a backlog): the 20 s code is gone, a send could only die.
        InboundMessage.objects.filter(pk=inbound.pk).update(sent_at=timezone.now() - timedelta(seconds=60))
        process_inbound(inbound.pk)

        assert not OutboundMessage.objects.filter(contact__external_id=CUSTOMER).exists()
        processed = TraceEvent.objects.get(trace_id=inbound.trace_id, stage=Stage.PROCESSED)
        assert "expired" in processed.detail["welcome"]


# -- the account's status ------------------------------------------------------------------------


def test_errcode_95011_on_a_send_kills_the_row_and_shows_the_account_as_managed_in_the_client(
        kf_app, sandbox, django_capture_on_commit_callbacks):
    sandbox.inject_fault("kf/send_msg", corp_id=CORP_ID, errcode=95011)
    with schema_context("alpha"):
        contact = ContactFactory(app=kf_app, external_id=CUSTOMER, open_kfid=OPEN_KFID)
        with django_capture_on_commit_callbacks(execute=False):
            queue_outbound(contact=contact, conversation=None, message=None, author=Message.Author.AGENT,
                           text="您好", cause="test:95011")
        deliver_for_contact(contact.pk)

        row = OutboundMessage.objects.get(contact=contact)
        assert (row.status, row.last_errcode) == (OutboundMessage.Status.DEAD, 95011)
        kf_app.refresh_from_db()
        assert kf_app.account_status == AccountStatus.MANAGED_IN_CLIENT
        assert "95011" in kf_app.account_status_detail


def auth_change(app: WeComApp, create_time: int, **fields) -> InboundMessage:
    return record_callback_message(app=app, fields={
        "ToUserName": CORP_ID, "CreateTime": str(create_time), "MsgType": "event",
        "Event": "kf_account_auth_change", **fields}).inbound


def test_kf_account_auth_change_withdraws_and_restores_the_account(kf_app, django_capture_on_commit_callbacks):
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=False):
        withdrawn = auth_change(kf_app, 1700000000, AuthDelOpenKfId=OPEN_KFID)
        assert withdrawn.status == InboundMessage.Status.PENDING
        process_inbound(withdrawn.pk)
        kf_app.refresh_from_db()
        assert kf_app.account_status == AccountStatus.UNAUTHORIZED
        assert OPEN_KFID in kf_app.account_status_detail

        process_inbound(auth_change(kf_app, 1700000001, AuthDelOpenKfId="wkSomeoneElse").pk)
        kf_app.refresh_from_db()
        assert kf_app.account_status == AccountStatus.UNAUTHORIZED  # another account: not ours

        process_inbound(auth_change(kf_app, 1700000002, AuthAddOpenKfId=OPEN_KFID).pk)
        kf_app.refresh_from_db()
        assert kf_app.account_status == AccountStatus.ACTIVE
