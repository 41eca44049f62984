"""The whole tenant API against its own OpenAPI schema: schemathesis, property-based, over a live web server.

Every operation of alpha's schema (/t/alpha/api/schema/) is called with generated valid and invalid
input; no response may be a server error or differ from the schema (status code, content type, headers,
body). The run is bounded (examples per operation, one worker) and deterministic (a fixed seed,
schemathesis' deterministic generation, no example database), and everything it wrote in alpha is
removed afterwards, so the tests after it find alpha as it was.

The phases are examples, fuzzing (valid and invalid input, EXAMPLES_PER_OPERATION per operation) and stateful
(links between operations). schemathesis' coverage phase is left out: it is not bounded by --max-examples and
generated about 4,400 of a run's 5,075 cases (every wrong type of every query and body field, every boundary,
every unlisted method), about 100 of the test's 130 s in CI, mostly DRF's generic answers to the same kinds of
wrong input: 400 for a wrong type (test_api_conventions' validation and parse-error tests), 405 for another
method. The fuzzing phase still sends every operation invalid input.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.db.models import Max
from django_tenants.utils import schema_context

from conversations.models import (
    ApiKey,
    AuditLogEntry,
    Contact,
    Conversation,
    DeskSettings,
    FallbackScript,
    Message,
    OutboundMessage,
    WeComApp,
)
from conversations.scopes import ALL_SCOPES, API_KEY_MAX_RATE_PER_MINUTE
from conversations.services.api_keys import create_api_key
from conversations.webhooks.models import WebhookEndpoint, WebhookEvent
from kb.models import KnowledgeEntry
from kb.services import delete_entries
from testing.broker import flush_test_broker
from tickets.canned.models import CannedReply
from tickets.labels.models import Label
from tickets.models import BusinessHours, KnowledgeProposal, Ticket, TicketEvent

pytestmark = pytest.mark.live

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])
EXAMPLES_PER_OPERATION = 8
PHASES = "examples,fuzzing,stateful"  # not coverage: see the docstring
METHODS = {"get", "put", "post", "patch", "delete"}
HUMAN_SIDE_TICKET_FIELDS = ["status", "priority", "subject", "tags", "assignee", "offered_to", "first_responded_at",
                            "resolved_at", "closed_at"]
HUMAN_SIDE_CONVERSATION_FIELDS = ["state", "agent", "waiting_notice_sent", "consecutive_fallbacks", "closed_at"]


@pytest.fixture
def alpha_key_restoring_alpha(committed_db):
    """A committed key of alpha (the server must see it); afterwards alpha's API-writable rows are as before."""
    with schema_context("alpha"):
        # Every scope, and a rate no run reaches: the run tests the schema, not the throttle.
        key_row, key = create_api_key(name="schemathesis", scopes=ALL_SCOPES,
                                      throttle_per_minute=API_KEY_MAX_RATE_PER_MINUTE)
        audit_entries = set(AuditLogEntry.objects.values_list("pk", flat=True))
        entries = set(KnowledgeEntry.objects.values_list("pk", flat=True))
        scripts = set(FallbackScript.objects.values_list("pk", flat=True))
        desk_settings = list(DeskSettings.objects.all())
        business_hours = list(BusinessHours.objects.all())  # PATCHed: alpha could be closed after it
        # What the human side's actions change (hand off, hand back, close; assign, status, notes, edits).
        tickets, ticket_events = list(Ticket.objects.all()), set(TicketEvent.objects.values_list("pk", flat=True))
        proposals = set(KnowledgeProposal.objects.values_list("pk", flat=True))
        canned_replies = set(CannedReply.objects.values_list("pk", flat=True))
        labels = {label.pk: label for label in Label.objects.all()}  # created, edited, deleted, put on, taken off
        label_links = {label_id: set(label.conversations.values_list("pk", flat=True))
                       for label_id, label in labels.items()}
        conversation_rows = list(Conversation.objects.all())
        webhook_endpoints = set(WebhookEndpoint.objects.values_list("pk", flat=True))
        webhook_events = set(WebhookEvent.objects.values_list("pk", flat=True))
        # What the conversation resources let it change: notes and attributes, apps switched, messages sent.
        contacts = {c.pk: (c.notes, c.attributes) for c in Contact.objects.only("notes", "attributes")}
        apps_enabled = dict(WeComApp.objects.values_list("pk", "is_enabled"))
        last_message = Message.objects.aggregate(last=Max("pk"))["last"] or 0
        conversations = set(Conversation.objects.values_list("pk", flat=True))
    yield key
    with schema_context("alpha"):
        delete_entries(entry_ids=list(KnowledgeEntry.objects.exclude(pk__in=entries).values_list("pk", flat=True)))
        FallbackScript.objects.exclude(pk__in=scripts).delete()
        DeskSettings.objects.all().delete()
        DeskSettings.objects.bulk_create(desk_settings)
        BusinessHours.objects.all().delete()
        BusinessHours.objects.bulk_create(business_hours)
        ApiKey.objects.filter(pk=key_row.pk).delete()
        KnowledgeProposal.objects.exclude(pk__in=proposals).delete()
        CannedReply.objects.exclude(pk__in=canned_replies).delete()
        Label.objects.exclude(pk__in=labels).delete()
        Label.objects.bulk_create([label for label in labels.values()
                                   if not Label.objects.filter(pk=label.pk).exists()])
        Label.objects.bulk_update(list(labels.values()), ["name", "color", "description"])
        for label_id, conversation_ids in label_links.items():
            Label.objects.get(pk=label_id).conversations.set(conversation_ids)
        TicketEvent.objects.exclude(pk__in=ticket_events).delete()
        Ticket.objects.exclude(pk__in=[ticket.pk for ticket in tickets]).delete()
        Ticket.objects.bulk_update(tickets, HUMAN_SIDE_TICKET_FIELDS)
        Conversation.objects.bulk_update(conversation_rows, HUMAN_SIDE_CONVERSATION_FIELDS)
        said = Message.objects.filter(pk__gt=last_message, author__in=[Message.Author.HANDOFF, Message.Author.NOTICE])
        OutboundMessage.objects.filter(message__in=said).delete()  # the handoff and closing messages
        said.delete()
        WebhookEvent.objects.exclude(pk__in=webhook_events).delete()  # and their deliveries
        WebhookEndpoint.objects.exclude(pk__in=webhook_endpoints).delete()
        sent = Message.objects.filter(pk__gt=last_message, author=Message.Author.API)
        OutboundMessage.objects.filter(message__in=sent).delete()  # never delivered: no worker runs here
        sent.delete()  # and their Idempotency-Keys
        Conversation.objects.exclude(pk__in=conversations).delete()  # opened by a send to a closed one
        for pk, (notes, attributes) in contacts.items():
            Contact.objects.filter(pk=pk).update(notes=notes, attributes=attributes)
        for pk, enabled in apps_enabled.items():
            WeComApp.objects.filter(pk=pk).update(is_enabled=enabled)
        AuditLogEntry.objects.exclude(pk__in=audit_entries).delete()
    flush_test_broker()  # the embed jobs of the entries it created, which no worker ran


@pytest.mark.timeout(240)  # about 12 s alone, 30-40 s in CI beside the other lane
def test_every_operation_conforms_to_the_schema(live_server_url, alpha_key_restoring_alpha, tmp_path):
    schema_url = f"{live_server_url}/t/alpha/api/schema/"
    schema = httpx.get(schema_url, params={"format": "json"}, timeout=10,
                       headers={"Authorization": f"Api-Key {alpha_key_restoring_alpha}"}).json()
    operations = sum(1 for item in schema["paths"].values() for method in item if method in METHODS)
    assert schema["servers"] == [{"url": f"{live_server_url}/t/alpha", "description": "this tenant"}]
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", schema_url,
        "--header", f"Authorization: Api-Key {alpha_key_restoring_alpha}",
        "--checks", CHECKS,
        "--phases", PHASES,
        "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--generation-deterministic",
        "--generation-with-security-parameters", "false",
        "--workers", "1", "--request-timeout", "20", "--no-color",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=200)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-15000:]
    # Every operation ran (a schema that failed to load, or an operation skipped, must not pass quietly).
    assert f"Tested: {operations}" in output and f"{operations} selected / {operations} total" in output, output
    assert f"{operations} passed" in output.split("Fuzzing")[1], output
    assert "Coverage (disabled)" in output, output  # the phases asked for, no more
