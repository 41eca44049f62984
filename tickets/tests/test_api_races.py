"""Races on the human-side API actions: requests that really run at the same moment (threads, committed rows,
each request on its own database connection), so the services' locks are what decides."""

from __future__ import annotations

import threading

from django_tenants.utils import schema_context

from conversations.audit.models import AuditLogEntry
from conversations.models import ApiKey, Message
from conversations.services.api_keys import create_api_key
from testing.accounts import api_client
from testing.broker import flush_test_broker
from testing.factories import ConversationFactory
from testing.threads import run_in_threads
from tickets.models import Ticket


def post(api, url: str):
    return api.post(url, {}, content_type="application/json")


def test_two_hand_offs_at_the_same_moment_open_one_ticket_and_say_it_once(committed_app):
    app = committed_app("alpha", agent_id=4646)
    with schema_context("alpha"):
        conversation = ConversationFactory(contact__app=app, contact__external_id="wangwu")
        key_row, key = create_api_key(name="hand-off-race")
    barrier = threading.Barrier(2)

    def hand_off() -> int:
        barrier.wait(timeout=10)
        return post(api_client(key), f"/t/alpha/api/conversations/{conversation.pk}/hand-off/").status_code

    try:
        assert sorted(run_in_threads(hand_off, hand_off, timeout=30)) == [200, 409]
        with schema_context("alpha"):
            assert Ticket.objects.filter(conversation=conversation).count() == 1
            assert Message.objects.filter(conversation=conversation, author=Message.Author.HANDOFF).count() == 1
    finally:
        with schema_context("alpha"):
            AuditLogEntry.objects.filter(actor="api-key:hand-off-race").delete()
            ApiKey.objects.filter(pk=key_row.pk).delete()
        flush_test_broker()  # the handoff message's delivery job, which no worker runs here
