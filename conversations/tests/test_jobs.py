"""Jobs are enqueued by name from each app's jobs module: on commit, ids only, the tenant's schema in
the message, and always on the queue of the actor that runs them."""

from __future__ import annotations

import time

import dramatiq
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from conversations import actors as conversation_actors
from conversations import jobs as conversation_jobs
from conversations.models import KfCursor, WeComApp
from conversations.services.kf_pull import request_kf_pulls
from kb import actors as kb_actors
from kb import jobs as kb_jobs
from tenants.dramatiq import SCHEMA_OPTION, Job
from testing.broker import flush_test_broker
from testing.factories import WeComAppFactory
from tickets import actors as ticket_actors
from tickets import jobs as ticket_jobs

ALL_JOBS = [job for module in (conversation_jobs, kb_jobs, ticket_jobs)
            for job in vars(module).values() if isinstance(job, Job)]


@pytest.fixture
def broker():
    flush_test_broker()  # every queue of the test namespace, declared in this process or not
    yield dramatiq.get_broker()
    flush_test_broker()


def queued(broker, queue_name: str) -> list[dramatiq.Message]:
    """Take every message waiting on the queue (the broker's own consumer, as a worker would)."""
    consumer = broker.consume(queue_name, prefetch=100, timeout=200)
    taken = []
    for proxy in consumer:
        if proxy is None:  # the consumer timed out: the queue is drained
            break
        consumer.ack(proxy)
        taken.append(proxy._message)
    consumer.close()
    return taken


def test_every_job_names_a_declared_actor_on_the_same_queue():
    # A worker loads every actors module; here they are imported above (the web process never needs them).
    declared = {actor.actor_name: actor for module in (conversation_actors, kb_actors, ticket_actors)
                for actor in vars(module).values() if isinstance(actor, dramatiq.Actor)}
    assert sorted(declared) == sorted(job.actor_name for job in ALL_JOBS)
    for job in ALL_JOBS:
        assert declared[job.actor_name].queue_name == job.queue_name, job


@pytest.mark.django_db
def test_a_job_is_sent_on_commit_with_the_schema_it_was_enqueued_in(tenant_a, broker,
                                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, schema_context("alpha"):
        conversation_jobs.enqueue_delivery(42)
        conversation_jobs.enqueue_processing(7)
        assert queued(broker, "outbound") == []  # nothing before the commit
    assert connection.schema_name == "public"
    for callback in callbacks:  # the commit, after the code left the tenant's schema
        callback()

    [delivery] = queued(broker, "outbound")
    [processing] = queued(broker, "inbound")
    assert (delivery.actor_name, list(delivery.args), delivery.options[SCHEMA_OPTION]) == (
        "conversations.deliver_outbound", [42], "alpha")
    assert (processing.actor_name, list(processing.args), processing.options[SCHEMA_OPTION]) == (
        "conversations.process_inbound", [7], "alpha")


@pytest.mark.django_db
def test_a_delayed_job_waits_on_the_delay_queue_until_its_time(tenant_a, broker, django_capture_on_commit_callbacks):
    before = int(time.time() * 1000)
    with django_capture_on_commit_callbacks(execute=True), schema_context("alpha"):
        conversation_jobs.enqueue_delivery(5, delay_seconds=30)

    assert queued(broker, "outbound") == []
    [delayed] = queued(broker, "outbound.DQ")
    assert (list(delayed.args), delayed.options[SCHEMA_OPTION]) == ([5], "alpha")
    assert before + 30_000 <= delayed.options["eta"] <= time.time() * 1000 + 30_000


@pytest.mark.django_db
def test_the_operators_pull_now_enqueues_one_pull_per_enabled_kf_account(tenant_a, broker,
                                                                         django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        kf = WeComAppFactory(kind=WeComApp.Kind.KF, open_kfids=["wkAccount0001", "wkAccount0002"])
        disabled = WeComAppFactory(kind=WeComApp.Kind.KF, open_kfids=["wkAccount0003"], is_enabled=False)
        cursors = [KfCursor.objects.create(app=app, open_kfid=open_kfid) for app, open_kfid in
                   [(kf, "wkAccount0001"), (kf, "wkAccount0002"), (disabled, "wkAccount0003")]]
        with django_capture_on_commit_callbacks(execute=True):
            assert request_kf_pulls(cursors) == 2

    pulls = queued(broker, "kf_sync")
    assert sorted((list(p.args), p.options[SCHEMA_OPTION]) for p in pulls) == [
        ([kf.pk, "wkAccount0001"], "alpha"), ([kf.pk, "wkAccount0002"], "alpha")]


@pytest.mark.django_db
def test_stored_customer_messages_share_one_waiting_answering_job_per_tenant(tenant_a, tenant_b, broker,
                                                                             django_capture_on_commit_callbacks):
    # Given three customer messages stored in alpha and one in beta, each asking for answering on commit
    with django_capture_on_commit_callbacks(execute=True):
        with schema_context("alpha"):
            for _ in range(3):
                conversation_jobs.ask_for_answering()
        with schema_context("beta"):
            conversation_jobs.ask_for_answering()

    # Then one answer_backlog job waits per tenant: beta's mark is not alpha's
    jobs = queued(broker, "inbound")
    assert sorted((job.actor_name, list(job.args), job.options[SCHEMA_OPTION]) for job in jobs) == [
        ("conversations.answer_backlog", [], "alpha"), ("conversations.answer_backlog", [], "beta")]

    # When alpha's claimer takes the mark before reading, the next stored message asks for a job of its own
    with django_capture_on_commit_callbacks(execute=True), schema_context("alpha"):
        conversation_jobs.ask_for_answering()  # the mark still stands: no second job
        conversation_jobs.answering_mark_taken()
        conversation_jobs.ask_for_answering()
    assert [job.options[SCHEMA_OPTION] for job in queued(broker, "inbound")] == ["alpha"]


@pytest.mark.django_db
def test_without_redis_a_stored_message_still_asks_for_its_job(tenant_a, broker, settings,
                                                               django_capture_on_commit_callbacks):
    # Given a Redis that does not answer (the marks' store; the broker itself is still reachable)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with django_capture_on_commit_callbacks(execute=True), schema_context("alpha"):
        conversation_jobs.ask_for_answering()
        conversation_jobs.ask_for_answering()

    # Then each asks for a job: one too many rather than one too few
    assert [job.actor_name for job in queued(broker, "inbound")] == ["conversations.answer_backlog"] * 2
