"""Conversations: state machine, idle timeout, AI context; customer rate limits and deferral."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, DeskSettings, Message
from conversations.services.conversations import (
    IllegalTransition,
    change_state,
    current_conversation,
    recent_context,
    recent_contexts,
    record_message,
)
from conversations.services.rate_limits import admit_shared_tiers, check_customer
from testing.factories import ContactFactory, ConversationFactory, WeComAppFactory

pytestmark = pytest.mark.django_db
State = Conversation.State


@pytest.fixture
def contact(tenant_a):
    with schema_context("alpha"):
        yield ContactFactory(external_id="zhangsan")


@pytest.mark.parametrize(("start", "to"), [(State.BOT, State.HUMAN), (State.HUMAN, State.WAITING_HUMAN),
                                           (State.CLOSED, State.BOT), (State.CLOSED, State.HUMAN)])
def test_illegal_steps_are_refused(contact, start, to):
    conversation = ConversationFactory(contact=contact, state=start)
    with pytest.raises(IllegalTransition):
        change_state(conversation=conversation, to=to)
    conversation.refresh_from_db()
    assert conversation.state == start


def test_the_legal_path_and_hand_back_resets_fallbacks(contact):
    conversation = ConversationFactory(contact=contact, consecutive_fallbacks=2)
    for state in (State.WAITING_HUMAN, State.HUMAN, State.BOT):
        change_state(conversation=conversation, to=state)
    conversation.refresh_from_db()
    assert (conversation.state, conversation.consecutive_fallbacks) == (State.BOT, 0)
    change_state(conversation=conversation, to=State.CLOSED)
    assert conversation.closed_at is not None


def test_an_idle_bot_conversation_starts_afresh_but_a_human_one_does_not(contact):
    desk = DeskSettings.current()
    first = current_conversation(contact=contact, desk=desk)
    later = timezone.now() + timezone.timedelta(minutes=desk.conversation_idle_minutes - 1)
    assert current_conversation(contact=contact, desk=desk, now=later).pk == first.pk
    much_later = timezone.now() + timezone.timedelta(minutes=desk.conversation_idle_minutes + 1)
    second = current_conversation(contact=contact, desk=desk, now=much_later)
    assert second.pk != first.pk
    first.refresh_from_db()
    assert first.state == State.CLOSED

    change_state(conversation=second, to=State.WAITING_HUMAN)
    next_day = much_later + timezone.timedelta(days=1)
    assert current_conversation(contact=contact, desk=desk, now=next_day).pk == second.pk


def test_only_one_open_conversation_per_contact(contact):
    ConversationFactory(contact=contact)

    with pytest.raises(IntegrityError), transaction.atomic():
        ConversationFactory(contact=contact)


def test_context_is_the_last_turns_of_this_conversation_only(contact):
    desk = DeskSettings.current()
    other = ContactFactory(app=contact.app, external_id="lisi")
    other_conversation = current_conversation(contact=other, desk=desk)
    record_message(conversation=other_conversation, author=Message.Author.CUSTOMER, text="lisi's secret")
    old = current_conversation(contact=contact, desk=desk)
    record_message(conversation=old, author=Message.Author.CUSTOMER, text="old conversation")
    change_state(conversation=old, to=State.CLOSED)
    conversation = current_conversation(contact=contact, desk=desk)
    for i in range(6):
        record_message(conversation=conversation, author=Message.Author.CUSTOMER, text=f"q{i}")
        record_message(conversation=conversation, author=Message.Author.AI, text=f"a{i}")

    context = recent_context(conversation=conversation, turns=4)

    assert context == [{"role": "user", "content": "q4"}, {"role": "assistant", "content": "a4"},
                       {"role": "user", "content": "q5"}, {"role": "assistant", "content": "a5"}]
    # A round asks for many conversations at once, each up to the message being answered.
    asked = record_message(conversation=conversation, author=Message.Author.CUSTOMER, text="q6")
    lisi_asked = record_message(conversation=other_conversation, author=Message.Author.CUSTOMER, text="lisi again")
    contexts = recent_contexts(turns=4, before=[asked, lisi_asked])
    assert contexts[asked.pk] == context
    assert contexts[lisi_asked.pk] == [{"role": "user", "content": "lisi's secret"}]


@pytest.fixture
def clean_limits(redis_client):
    yield
    for key in redis_client.scan_iter("LIMITS*"):
        redis_client.delete(key)
    for key in redis_client.scan_iter("*rate-notice*"):
        redis_client.delete(key)


def test_customer_over_the_limit_gets_one_notice_per_window(contact, clean_limits):
    desk = DeskSettings.current()
    desk.user_rate_limit = 3
    verdicts = [check_customer(contact=contact, desk=desk) for _ in range(6)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False, False]
    assert [v.send_notice for v in verdicts] == [False, False, False, True, False, False]


def test_customer_limits_are_per_contact_and_per_tenant(contact, tenant_b, clean_limits):
    desk = DeskSettings.current()
    desk.user_rate_limit = 1
    other = ContactFactory(app=contact.app, external_id="lisi")
    assert check_customer(contact=contact, desk=desk).allowed
    assert check_customer(contact=other, desk=desk).allowed
    connection.set_schema_to_public()
    with schema_context("beta"):
        twin = ContactFactory(pk=contact.pk, app=WeComAppFactory(), external_id="zhangsan")
        assert twin.pk == contact.pk  # same id in another schema: the window key must carry the schema
        assert check_customer(contact=twin, desk=desk).allowed  # beta's window is separate


def test_over_the_tenant_tier_work_is_deferred_not_dropped(contact, clean_limits):
    desk = DeskSettings.current()
    desk.tenant_rate_limit = 3
    assert admit_shared_tiers(desk=desk, wanted=1).count == 1
    partial = admit_shared_tiers(desk=desk, wanted=5)  # a round of 5: what fits goes now, the rest waits
    assert partial.count == 2 and partial.tier == "tenant" and 0 < partial.retry_after <= 60
    refused = admit_shared_tiers(desk=desk, wanted=1)
    assert refused.count == 0 and refused.tier == "tenant"
