"""Customer profiles from WeCom against the sandbox over HTTP: 微信客服 customers by kf/customer/batchget (100 ids a
call, the 48-hour window's invalid_external_userid), members by user/get (no avatar for apps created after
2022-06), a refusal or an outage keeping the old profile and saying why, the cache (TTL, retry wait, one queued
job per contact) and the sweep of contacts with humans; another tenant's contacts are never touched."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation
from conversations.realtime import conversation_group
from conversations.services.profiles import (
    NOT_IN_WINDOW,
    PROFILE_TTL,
    RETRY_AFTER,
    contacts_due_in_service,
    refresh_profiles,
    request_profile_refresh,
    sweep_due_profiles,
)
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import APP_SECRET, ContactFactory, ConversationFactory, WeComAppFactory
from testing.vectors import AGENT_ID, CORP_ID, OPEN_KFID

pytestmark = pytest.mark.django_db
AVATAR = "https://wx.qlogo.cn/mmhead/li/0"
JOB = "conversations.refresh_profiles"


def profile_calls(sandbox) -> list[tuple[str, int | None]]:
    return [(call["path"], call["errcode"]) for call in sandbox.calls() if call["path"] != "gettoken"]


def fresh(contact: Contact) -> Contact:
    return Contact.objects.get(pk=contact.pk)


@pytest.fixture(autouse=True)
def no_tokens_or_marks(redis_client):
    """No access token of an earlier sandbox and no "queued" mark of an earlier test (keys outlive rollbacks)."""
    def clean():
        for pattern in ("alpha:wecom:token:*", "beta:wecom:token:*", "alpha:profiles:*", "beta:profiles:*"):
            for key in redis_client.scan_iter(pattern):
                redis_client.delete(key)

    clean()
    flush_test_broker()
    yield
    clean()
    flush_test_broker()


def test_kf_customers_get_nickname_and_avatar_in_one_call_and_the_silent_ones_say_why(tenant_a, sandbox):
    sandbox.set_kf_customers(CORP_ID, [{"external_userid": "wmLi", "nickname": "李女士", "avatar": AVATAR}])
    sandbox.queue_kf_text(CORP_ID, OPEN_KFID, "wmLi", "你好", notify=False)
    sandbox.customer_enters_session(CORP_ID, OPEN_KFID, "wmWang", notify=False)
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
        li = ContactFactory(app=app, external_id="wmLi", display_name="")
        wang = ContactFactory(app=app, external_id="wmWang", display_name="老王")
        silent = ContactFactory(app=app, external_id="wmSilent", display_name="老客户")

        result = refresh_profiles(contact_ids=[li.pk, wang.pk, silent.pk])

        assert sorted(result.refreshed) == sorted([li.pk, wang.pk])
        assert result.failed == {silent.pk: NOT_IN_WINDOW}
        li, wang, silent = fresh(li), fresh(wang), fresh(silent)
        assert (li.display_name, li.avatar_url, li.profile_error) == ("李女士", AVATAR, "")
        assert li.profile_fetched_at == li.profile_checked_at is not None
        # WeCom's default nickname replaces ours; no avatar leaves it empty.
        assert (wang.display_name, wang.avatar_url) == ("微信用户", "")
        # Not written in 48 hours: WeCom gives nothing, the old name stays, the reason is kept.
        assert (silent.display_name, silent.profile_error, silent.profile_fetched_at) == ("老客户", NOT_IN_WINDOW,
                                                                                         None)
    assert profile_calls(sandbox) == [("kf/customer/batchget", 0)]


def test_more_than_100_kf_customers_take_several_calls(tenant_a, sandbox):
    with schema_context("alpha"):
        app = WeComAppFactory(kind="kf")
        contacts = ContactFactory.create_batch(101, app=app)
        result = refresh_profiles(contact_ids=[c.pk for c in contacts])
    assert len(result.failed) == 101  # none of them wrote: all invalid, none refused for the list's size
    assert profile_calls(sandbox) == [("kf/customer/batchget", 0), ("kf/customer/batchget", 0)]


def test_members_get_their_name_and_the_avatar_only_from_apps_created_before_2022_06(tenant_a, sandbox):
    sandbox.set_member_profiles(CORP_ID, [{"userid": "lilei", "name": "李雷", "avatar": AVATAR}])
    with schema_context("alpha"):
        app = WeComAppFactory()
        lilei = ContactFactory(app=app, external_id="lilei")

        refresh_profiles(contact_ids=[lilei.pk])
        assert (fresh(lilei).display_name, fresh(lilei).avatar_url) == ("李雷", "")  # a newer app: no avatar

        sandbox.create_corp(CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": APP_SECRET,
                                            "created_before_2022_06": True}])
        sandbox.set_member_profiles(CORP_ID, [{"userid": "lilei", "name": "李雷", "avatar": AVATAR}])
        Contact.objects.filter(pk=lilei.pk).update(profile_checked_at=timezone.now() - PROFILE_TTL)
        refresh_profiles(contact_ids=[lilei.pk])
        assert (fresh(lilei).display_name, fresh(lilei).avatar_url) == ("李雷", AVATAR)


@pytest.mark.parametrize("fault", [{"errcode": 60111}, {"errcode": -1}, {"http_status": 502}])
def test_wecom_refusing_or_down_keeps_the_old_profile_and_records_why(tenant_a, sandbox, fault):
    sandbox.inject_fault("user/get", **fault)
    with schema_context("alpha"):
        contact = ContactFactory(app=WeComAppFactory(), external_id="lilei", display_name="李雷",
                                 avatar_url=AVATAR)
        before = timezone.now()

        result = refresh_profiles(contact_ids=[contact.pk])

        contact = fresh(contact)
        assert (contact.display_name, contact.avatar_url, contact.profile_fetched_at) == ("李雷", AVATAR, None)
        assert contact.profile_checked_at >= before
        expected = f"errcode {fault['errcode']}" if "errcode" in fault else f"HTTP {fault['http_status']}"
        assert expected in contact.profile_error
        assert result.failed == {contact.pk: contact.profile_error}


def test_a_fresh_profile_is_not_asked_again_and_a_failed_one_waits_before_a_retry(tenant_a, sandbox):
    now = timezone.now()
    with schema_context("alpha"):
        app = WeComAppFactory()
        fetched = ContactFactory(app=app, profile_checked_at=now - PROFILE_TTL + timedelta(minutes=10))
        failed = ContactFactory(app=app, profile_checked_at=now - RETRY_AFTER + timedelta(minutes=1),
                                profile_error="errcode -1: system busy")

        assert refresh_profiles(contact_ids=[fetched.pk, failed.pk], now=now).refreshed == []
        assert profile_calls(sandbox) == []

        later = now + timedelta(minutes=2)  # the failure's wait is over, the day of the profile is not
        assert refresh_profiles(contact_ids=[fetched.pk, failed.pk], now=later).refreshed == [failed.pk]
        assert profile_calls(sandbox) == [("user/get", 0)]


def test_asking_for_a_refresh_queues_one_job_per_contact_and_none_for_a_fresh_profile(
        tenant_a, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        app = WeComAppFactory()
        due = ContactFactory(app=app)
        recent = ContactFactory(app=app, profile_checked_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            assert request_profile_refresh(contact=due) is True
            assert request_profile_refresh(contact=due) is False  # queued already: no second job
            assert request_profile_refresh(contact=recent) is False
    assert [job.args for job in queued_jobs("media", actor_name=JOB)] == [([due.pk],)]
    assert queued_jobs("media", actor_name=JOB)[0].options["tenant_schema"] == "alpha"


def test_the_sweep_queues_contacts_with_humans_whose_profile_is_due_of_this_tenant_only(
        tenant_a, tenant_b, django_capture_on_commit_callbacks):
    with schema_context("beta"):
        ConversationFactory(state=Conversation.State.HUMAN)  # beta's: never in alpha's sweep
    with schema_context("alpha"):
        app = WeComAppFactory()
        waiting = ConversationFactory(contact__app=app, state=Conversation.State.WAITING_HUMAN).contact
        served = ConversationFactory(contact__app=app, state=Conversation.State.HUMAN).contact
        ConversationFactory(contact__app=app, state=Conversation.State.BOT)  # the AI's: not needed now
        ConversationFactory(contact__app=app, state=Conversation.State.HUMAN,
                            contact__profile_checked_at=timezone.now())  # fresh
        disabled = WeComAppFactory(agent_id=AGENT_ID + 1, is_enabled=False)
        ConversationFactory(contact__app=disabled, state=Conversation.State.HUMAN)

        assert sorted(contacts_due_in_service().values_list("pk", flat=True)) == sorted([waiting.pk, served.pk])
        with django_capture_on_commit_callbacks(execute=True):
            assert sweep_due_profiles() == 2
            assert sweep_due_profiles() == 0  # queued already
    (job,) = queued_jobs("media", actor_name=JOB)
    assert sorted(job.args[0]) == sorted([waiting.pk, served.pk])
    assert job.options["tenant_schema"] == "alpha"


def test_a_refresh_in_one_tenant_leaves_the_other_tenants_contacts_alone(tenant_a, tenant_b, sandbox):
    sandbox.set_member_profiles(CORP_ID, [{"userid": "lilei", "name": "李雷"}])
    with schema_context("beta"):
        theirs = ContactFactory(app=WeComAppFactory(), external_id="lilei", display_name="beta 的李雷")
    with schema_context("alpha"):
        ours = ContactFactory(app=WeComAppFactory(), external_id="lilei")
        # beta's id in alpha's schema names nobody (or one of alpha's own): beta's row is not reachable.
        refresh_profiles(contact_ids=[ours.pk, theirs.pk])
        assert fresh(ours).display_name == "李雷"
    with schema_context("beta"):
        theirs = fresh(theirs)
        assert (theirs.display_name, theirs.profile_checked_at) == ("beta 的李雷", None)


def test_the_screens_watching_the_customers_open_conversation_are_told_of_a_refresh(
        tenant_a, sandbox, django_capture_on_commit_callbacks):
    sandbox.set_member_profiles(CORP_ID, [{"userid": "lilei", "name": "李雷"}])
    layer = get_channel_layer()
    screen = async_to_sync(layer.new_channel)()
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=WeComAppFactory(), contact__external_id="lilei",
                                           state=Conversation.State.HUMAN)
        group = conversation_group("alpha", conversation.pk)
        async_to_sync(layer.group_add)(group, screen)
        try:
            with django_capture_on_commit_callbacks(execute=True):
                refresh_profiles(contact_ids=[conversation.contact_id])
            message = async_to_sync(layer.receive)(screen)
        finally:
            async_to_sync(layer.group_discard)(group, screen)
    assert message["event"] == {"type": "profile", "conversation": conversation.pk}
