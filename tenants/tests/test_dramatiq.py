"""Dramatiq tenant context, with a real worker process: writes land in the enqueuing tenant's
schema; messages without a valid tenant are rejected to the dead-letter queue."""

import uuid

import dramatiq
import pytest
from django.core.cache import cache
from django.db import connection
from django_tenants.utils import schema_context

from tenants.dramatiq import SCHEMA_OPTION
from tenants.models import Tenant
from tenants.tests.probe.actors import add_note, count_public_tenants
from tenants.tests.probe.models import Note
from testing.broker import flush_test_broker
from testing.waiting import wait_until


def notes_in(schema: str, marker: str) -> list[str]:
    with schema_context(schema):
        return list(Note.objects.filter(text__startswith=marker).values_list("text", flat=True))


@pytest.fixture
def marker(committed_db):
    marker = uuid.uuid4().hex[:8]
    yield marker
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            Note.objects.filter(text__startswith=marker).delete()


@pytest.fixture
def broker():
    flush_test_broker()
    yield dramatiq.get_broker()
    flush_test_broker()


def dead_letters(redis_client, queue: str = "probe") -> int:
    return redis_client.zcard(f"dramatiq-test:{queue}.XQ")


@pytest.mark.live
def test_worker_writes_into_the_enqueuing_tenants_schema(marker, broker, start_worker):
    with schema_context("alpha"):
        add_note.send(f"{marker}-from-alpha")
    with schema_context("beta"):
        add_note.send(f"{marker}-from-beta")
    worker = start_worker("probe")

    wait_until(lambda: notes_in("alpha", marker) and notes_in("beta", marker), timeout=30,
               message=lambda: f"notes written by the worker\n{worker.output()}")
    assert notes_in("alpha", marker) == [f"{marker}-from-alpha"]
    assert notes_in("beta", marker) == [f"{marker}-from-beta"]


@pytest.mark.live
def test_messages_without_a_valid_tenant_are_rejected(marker, broker, redis_client, start_worker):
    Tenant.objects.filter(schema_name="beta").update(is_active=False)
    try:
        # No schema at all: enqueued below the middleware, as a foreign producer would.
        redis_id = str(uuid.uuid4())
        bare = add_note.message(f"{marker}-no-schema").copy(options={"redis_message_id": redis_id})
        broker.do_enqueue("probe", redis_id, bare.encode())
        # A tenant actor sent from the public schema.
        connection.set_schema_to_public()
        add_note.send(f"{marker}-from-public")
        # Unknown and suspended tenants.
        add_note.send_with_options(args=(f"{marker}-unknown",), **{SCHEMA_OPTION: "nosuch"})
        with schema_context("beta"):
            add_note.send(f"{marker}-suspended")
        # A platform actor may run in public.
        count_public_tenants.send(marker)
        worker = start_worker("probe")

        wait_until(lambda: dead_letters(redis_client) == 4, timeout=30,
                   message=lambda: f"4 dead letters\n{worker.output()}")
        wait_until(lambda: cache.get(f"probe:{marker}") is not None, timeout=10, message="public actor ran")
    finally:
        Tenant.objects.filter(schema_name="beta").update(is_active=True)

    assert cache.get(f"probe:{marker}") == Tenant.objects.count()
    assert notes_in("alpha", marker) == [] and notes_in("beta", marker) == []
    output = worker.output()
    for reason in ("no tenant schema", "enqueued from public schema", "unknown tenant schema", "tenant suspended"):
        assert reason in output


def test_enqueue_records_the_current_schema(committed_db, broker, redis_client):
    with schema_context("alpha"):
        message = add_note.send("x")
    assert message.options[SCHEMA_OPTION] == "alpha"
    explicit = add_note.send_with_options(args=("y",), **{SCHEMA_OPTION: "beta"})
    assert explicit.options[SCHEMA_OPTION] == "beta"
