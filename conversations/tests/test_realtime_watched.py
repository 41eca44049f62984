"""Events for the live screens (conversations/realtime.py): a transaction's events ask Redis once which of their
groups anyone watches, and only watched groups of the event's own tenant get them."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django_tenants.utils import schema_context

from conversations import realtime
from conversations.realtime import conversation_changed, conversation_group

pytestmark = pytest.mark.django_db


@pytest.fixture
def questions(monkeypatch):
    """The group lists Redis was asked about, one entry per round trip."""
    asked: list[list[str]] = []
    members = realtime._members

    def counting(groups):
        asked.append(groups)
        return members(groups)

    monkeypatch.setattr(realtime, "_members", counting)
    return asked


@pytest.fixture
def watcher():
    """A channel in a group, as an agent's socket is; its messages, with a marker sent last, so 'nothing else
    came' is read off what arrived before the marker."""
    layer = get_channel_layer()
    joined: list[tuple[str, str]] = []

    def watch(group: str) -> str:
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(group, channel)
        joined.append((group, channel))
        return channel

    def received(group: str, channel: str) -> list:
        async_to_sync(layer.group_send)(group, {"type": "marker"})
        messages = []
        while (message := async_to_sync(layer.receive)(channel))["type"] != "marker":
            messages.append(message["event"])
        return messages

    watch.received = received
    yield watch
    for group, channel in joined:
        async_to_sync(layer.group_discard)(group, channel)


def test_one_question_for_a_transactions_groups_and_only_watched_ones_get_events(
        tenant_a, tenant_b, questions, watcher, django_capture_on_commit_callbacks):
    alpha_watched = watcher(conversation_group("alpha", 1))
    beta_same_id = watcher(conversation_group("beta", 1))
    built = []

    def event(number):
        def build():
            built.append(number)
            return {"type": "message", "n": number}
        return build

    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for number in (1, 2, 3):
            conversation_changed(number, event(number))
        conversation_changed(1, {"type": "delivery"})

    assert questions == [sorted(conversation_group("alpha", n) for n in (1, 2, 3))]
    assert built == [1]  # nobody watches 2 and 3: their events are never built
    assert watcher.received(conversation_group("alpha", 1), alpha_watched) == [
        {"type": "message", "n": 1, "conversation": 1}, {"type": "delivery", "conversation": 1}]
    assert watcher.received(conversation_group("beta", 1), beta_same_id) == []


def test_each_transaction_asks_again(tenant_a, questions, watcher, django_capture_on_commit_callbacks):
    group = conversation_group("alpha", 5)
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        conversation_changed(5, {"type": "first"})
    channel = watcher(group)  # someone starts watching between the two transactions
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        conversation_changed(5, {"type": "second"})

    assert questions == [[group], [group]]
    assert watcher.received(group, channel) == [{"type": "second", "conversation": 5}]


def test_without_an_answer_from_redis_every_event_is_published(tenant_a, settings, watcher,
                                                               django_capture_on_commit_callbacks):
    group = conversation_group("alpha", 9)
    channel = watcher(group)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens: the question fails, the layer still works
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        conversation_changed(9, {"type": "message"})

    assert watcher.received(group, channel) == [{"type": "message", "conversation": 9}]
