"""wait_until_idle's view of the pipeline: waiting rows in each schema and unacknowledged jobs in the broker."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from conversations.jobs import enqueue_delivery
from conversations.models import InboundMessage, OutboundMessage
from testing.broker import flush_test_broker, queued_jobs
from testing.factories import InboundMessageFactory, OutboundMessageFactory
from testing.waiting import pipeline_state, wait_until, wait_until_idle

pytestmark = pytest.mark.django_db


@pytest.fixture
def empty_broker():
    flush_test_broker()
    yield
    flush_test_broker()


def test_pending_inbound_and_waiting_outbound_rows_are_work_in_their_schema(tenant_a, tenant_b, empty_broker):
    with schema_context("beta"):
        InboundMessageFactory()
        for status in (OutboundMessage.Status.RETRYING, OutboundMessage.Status.SENT):
            OutboundMessageFactory(status=status)
    state = pipeline_state(schemas=["alpha", "beta"])
    assert (state.inbound_pending, state.outbound_waiting, state.idle) == ({"alpha": 0, "beta": 1},
                                                                          {"alpha": 0, "beta": 1}, False)
    assert pipeline_state(schemas=["alpha"]).idle
    with schema_context("beta"):
        InboundMessage.objects.update(status=InboundMessage.Status.PROCESSED)
        OutboundMessage.objects.update(status=OutboundMessage.Status.SENT)
    assert wait_until_idle(schemas=["alpha", "beta"], timeout=5).idle


def test_a_queued_job_delayed_or_not_is_work(tenant_a, empty_broker, django_capture_on_commit_callbacks):
    with schema_context("alpha"), django_capture_on_commit_callbacks(execute=True):
        enqueue_delivery(41)
        enqueue_delivery(42, delay_seconds=60)
    state = pipeline_state(schemas=["alpha"])
    assert (state.queued["outbound"], state.idle) == (2, False)
    assert sorted(job.args[0] for job in queued_jobs("outbound")) == [41, 42]
    with pytest.raises(AssertionError, match=r"idle: .*queued \{'outbound': 2\}"):
        wait_until_idle(schemas=["alpha"], timeout=0.3)


def test_wait_until_returns_the_value_or_says_what_it_waited_for():
    values = iter([None, 0, "done"])
    assert wait_until(lambda: next(values), timeout=5, interval=0.01) == "done"
    with pytest.raises(AssertionError, match="timed out after 0.1s waiting for the answer"):
        wait_until(lambda: None, timeout=0.1, message=lambda: "the answer")
