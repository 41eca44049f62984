"""save_fields and insert_row (conversations/services/bulk.py): the named fields of many rows, or a new row, in one
statement, each value prepared as Django's own save would prepare it, in the current tenant's schema only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from conversations import encryption
from conversations.models import InboundMessage, OutboundMessage, WeComApp
from conversations.services import bulk
from conversations.services.bulk import save_fields
from testing.factories import InboundMessageFactory, OutboundMessageFactory, WeComAppFactory

pytestmark = pytest.mark.django_db
Status = OutboundMessage.Status


def written(statements: CaptureQueriesContext) -> list[dict]:
    """The statements run, without django-tenants' own `SET search_path` before a cursor's first query."""
    return [query for query in statements.captured_queries if not query["sql"].startswith("SET search_path")]


def test_only_the_named_fields_are_written(tenant_a):
    with schema_context("alpha"):
        row = OutboundMessageFactory(content="原来的回答", status=Status.PENDING, attempts=0)
        row.status, row.attempts = Status.SENT, 2
        row.content = "changed in memory only"

        save_fields([row], ["status", "attempts"])

        stored = OutboundMessage.objects.get(pk=row.pk)
    assert (stored.status, stored.attempts, stored.content) == (Status.SENT, 2, "原来的回答")


def test_many_rows_are_saved_in_one_statement_each_with_its_own_values(tenant_a):
    with schema_context("alpha"):
        rows = OutboundMessageFactory.create_batch(30)
        bystanders = OutboundMessageFactory.create_batch(2)
        for number, row in enumerate(rows):
            row.attempts, row.last_error = number, f"errcode {number}"

        with CaptureQueriesContext(connection) as statements:
            save_fields(rows, ["attempts", "last_error"])

        stored = dict(OutboundMessage.objects.values_list("pk", "attempts"))
        errors = dict(OutboundMessage.objects.values_list("pk", "last_error"))
    assert [query["sql"].split(" ", 1)[0] for query in written(statements)] == ["UPDATE"]
    assert stored == {**{row.pk: number for number, row in enumerate(rows)}, **{row.pk: 0 for row in bystanders}}
    assert errors == {**{row.pk: f"errcode {n}" for n, row in enumerate(rows)}, **{row.pk: "" for row in bystanders}}


def test_no_rows_is_no_statement(tenant_a):
    with schema_context("alpha"), CaptureQueriesContext(connection) as statements:
        save_fields([], ["status"])
    assert written(statements) == []


def test_values_are_prepared_as_django_saves_them_json_datetimes_nulls(tenant_a):
    processed_at = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
    payload = {"Content": "你好", "nested": {"ids": [1, 2], "ok": True}, "none": None}
    with schema_context("alpha"):
        row = InboundMessageFactory(processed_at=None)
        row.payload, row.processed_at, row.enqueued_at = payload, processed_at, None

        save_fields([row], ["payload", "processed_at", "enqueued_at"])

        stored = InboundMessage.objects.get(pk=row.pk)
        with connection.cursor() as cursor:
            cursor.execute("SELECT jsonb_typeof(payload), jsonb_typeof(payload->'nested'->'ids'), "
                           "payload->'nested'->'ids'->>1 FROM conversations_inboundmessage WHERE id = %s", [row.pk])
            json_types = cursor.fetchone()
    assert (stored.payload, stored.processed_at, stored.enqueued_at) == (payload, processed_at, None)
    assert json_types == ("object", "array", "2")  # a JSON object in the column, not a JSON string of one


def test_encrypted_fields_are_encrypted_as_by_save(tenant_a):
    with schema_context("alpha"):
        app = WeComAppFactory()
        app.secret = "a-new-secret"

        save_fields([app], ["secret"])

        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM conversations_wecomapp WHERE id = %s", [app.pk])
            (stored,) = cursor.fetchone()
        assert WeComApp.objects.get(pk=app.pk).secret == "a-new-secret"
    assert "a-new-secret" not in stored and encryption.decrypt(stored) == "a-new-secret"


def test_a_row_of_another_tenant_with_the_same_id_is_untouched(tenant_a, tenant_b):
    with schema_context("alpha"):
        alpha_row = OutboundMessageFactory(content="alpha")
    with schema_context("beta"):
        beta_row = OutboundMessageFactory(pk=alpha_row.pk, content="beta")
    assert beta_row.pk == alpha_row.pk

    with schema_context("alpha"):
        alpha_row.content = "alpha, edited"
        save_fields([alpha_row], ["content"])
        assert OutboundMessage.objects.get(pk=alpha_row.pk).content == "alpha, edited"
    with schema_context("beta"):
        assert OutboundMessage.objects.get(pk=beta_row.pk).content == "beta"


def test_rows_beyond_one_statements_bound_go_in_further_statements(tenant_a, monkeypatch):
    monkeypatch.setattr(bulk, "ROWS_PER_STATEMENT", 2)
    with schema_context("alpha"):
        rows = OutboundMessageFactory.create_batch(5)
        for number, row in enumerate(rows):
            row.attempts = number + 1

        with CaptureQueriesContext(connection) as statements:
            save_fields(rows, ["attempts"])

        stored = dict(OutboundMessage.objects.values_list("pk", "attempts"))
    assert len(written(statements)) == 3
    assert stored == {row.pk: number + 1 for number, row in enumerate(rows)}


# -- insert_row --------------------------------------------------------------------------------------------


def test_a_row_is_inserted_with_every_value_as_save_writes_it(tenant_a):
    with schema_context("alpha"):
        app = WeComAppFactory()
        sent_at = datetime(2026, 12, 2, 8, 30, 15, 123456, tzinfo=UTC)
        row = InboundMessage(app=app, natural_key="msg:1", source=InboundMessage.Source.CALLBACK, msg_type="text",
                             sender="zhangsan", origin=None, content='引号 " 反斜杠 \\ 单引号 \' 换行\n',
                             payload={"Content": "你好", "nested": {"list": [1, 2.5, None, True]}}, sent_at=sent_at)

        with CaptureQueriesContext(connection) as statements:
            bulk.insert_row(row)

        stored = InboundMessage.objects.get(pk=row.pk)
    assert len(written(statements)) == 1
    assert row.pk is not None and not row._state.adding and row.received_at is not None  # auto_now_add applied
    fields = [field.attname for field in InboundMessage._meta.concrete_fields]
    assert {name: getattr(stored, name) for name in fields} == {name: getattr(row, name) for name in fields}
    assert (stored.status, stored.enqueue_count, stored.media.name) == (InboundMessage.Status.PENDING, 0, "")


def test_a_duplicate_is_refused_by_the_constraint_and_changes_nothing(tenant_a):
    with schema_context("alpha"):
        first = InboundMessageFactory(natural_key="msg:dup")
        again = InboundMessage(app=first.app, natural_key="msg:dup", source=first.source, msg_type="text")

        with pytest.raises(IntegrityError), transaction.atomic():
            bulk.insert_row(again)

        assert again.pk is None
        assert list(InboundMessage.objects.values_list("pk", flat=True)) == [first.pk]


def test_a_row_goes_into_the_current_tenants_table_only(tenant_a, tenant_b):
    with schema_context("beta"):
        beta_app = WeComAppFactory()
        row = InboundMessage(app=beta_app, natural_key="msg:beta", source=InboundMessage.Source.CALLBACK,
                             msg_type="text")
        bulk.insert_row(row)
        assert InboundMessage.objects.filter(natural_key="msg:beta").count() == 1
    with schema_context("alpha"):
        assert not InboundMessage.objects.filter(natural_key="msg:beta").exists()
