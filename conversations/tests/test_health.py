"""The message path's health gauges, per tenant: inbound backlog and its age, ledger rows by state, the AI
breaker; and the two recorded metrics of issue 11: delivery time of a first reply, token fetches."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from prometheus_client import REGISTRY

from conversations.ai.breaker import STATE_OPEN, TenantBreakerStorage, breaker_namespace
from conversations.health import message_path_health
from conversations.metrics import (
    BREAKER_OPEN,
    INBOUND_OLDEST_WAITING,
    INBOUND_WAITING,
    OUTBOUND_ROWS,
    observe_first_replies,
)
from conversations.models import InboundMessage, OutboundMessage
from conversations.schedule import measure_message_path
from conversations.wecom.client import WeComClient
from conversations.wecom.errors import WeComTokenError
from tenants.redis import redis_client
from testing.factories import ContactFactory, InboundMessageFactory, OutboundMessageFactory, WeComAppFactory

pytestmark = pytest.mark.django_db
Status = OutboundMessage.Status


def backlog(*, waiting_ages: list[int], outbound: dict[str, int]) -> None:
    """Inbound rows pending since `waiting_ages` seconds (plus one processed) and ledger rows by status."""
    now = timezone.now()
    for age in waiting_ages:
        row = InboundMessageFactory()
        InboundMessage.objects.filter(pk=row.pk).update(received_at=now - timedelta(seconds=age))
    InboundMessageFactory(status=InboundMessage.Status.PROCESSED)
    contact = ContactFactory()
    for status, count in outbound.items():
        OutboundMessageFactory.create_batch(count, contact=contact, status=status)


def test_health_of_each_tenant_counts_only_its_own_rows(tenants_world, clean_breakers):
    with schema_context("alpha"):
        backlog(waiting_ages=[30, 300], outbound={Status.PENDING: 1, Status.SENDING: 1, Status.RETRYING: 2,
                                                  Status.DEAD: 3, Status.SENT: 5, Status.CANCELLED: 1})
        alpha = message_path_health()
    with schema_context("beta"):
        backlog(waiting_ages=[], outbound={Status.DEAD: 1})
        beta = message_path_health()

    assert alpha.inbound_waiting == 2
    assert 300 <= alpha.inbound_oldest_waiting_seconds < 310
    assert alpha.outbound_rows == {"pending": 2, "retrying": 2, "dead": 3}  # sending counts as pending
    assert (beta.inbound_waiting, beta.inbound_oldest_waiting_seconds) == (0, 0.0)
    assert beta.outbound_rows == {"pending": 0, "retrying": 0, "dead": 1}


def test_the_scheduler_job_publishes_every_tenant_and_the_breaker_from_redis(tenants_world, clean_breakers):
    with schema_context("alpha"):
        backlog(waiting_ages=[60], outbound={Status.RETRYING: 1})
    with schema_context("beta"):
        backlog(waiting_ages=[5, 6, 7], outbound={Status.DEAD: 2})
    TenantBreakerStorage(STATE_OPEN, redis_client(), namespace=breaker_namespace("beta"))  # beta's breaker opened

    measure_message_path()

    assert (INBOUND_WAITING.values[("alpha",)], INBOUND_WAITING.values[("beta",)]) == (1, 3)
    assert 60 <= INBOUND_OLDEST_WAITING.values[("alpha",)] < 70 and INBOUND_OLDEST_WAITING.values[("beta",)] < 60
    assert OUTBOUND_ROWS.values[("alpha", "retrying")] == 1 and OUTBOUND_ROWS.values[("alpha", "dead")] == 0
    assert OUTBOUND_ROWS.values[("beta", "dead")] == 2 and OUTBOUND_ROWS.values[("beta", "retrying")] == 0
    assert (BREAKER_OPEN.values[("alpha",)], BREAKER_OPEN.values[("beta",)]) == (0, 1)


def delivery_count() -> float:
    return REGISTRY.get_sample_value("wecomdesk_delivery_seconds_count", {"tenant": "alpha"}) or 0


def test_delivery_time_counts_the_first_part_of_the_reply_to_a_customer_message_only(tenants_world):
    with schema_context("alpha"):
        inbound = InboundMessageFactory()
        received = timezone.now() - timedelta(seconds=4)
        InboundMessage.objects.filter(pk=inbound.pk).update(received_at=received)
        contact = ContactFactory()
        sent = received + timedelta(seconds=3)

        def row(key: str, **fields) -> OutboundMessage:
            return OutboundMessageFactory(contact=contact, idempotency_key=key, status=Status.SENT, sent_at=sent,
                                          **fields)

        first = row(f"inbound:{inbound.pk}:1", inbound=inbound)
        others = [row(f"inbound:{inbound.pk}:2", inbound=inbound, part=2),  # a later part of the same reply
                  row(f"welcome:{inbound.pk}:1", inbound=inbound),          # not an answer to a message
                  row("agent:99:1")]                                      # an agent's reply
        before = delivery_count()
        before_sum = REGISTRY.get_sample_value("wecomdesk_delivery_seconds_sum", {"tenant": "alpha"}) or 0

        observe_first_replies(others)
        assert delivery_count() == before
        observe_first_replies([first, *others])

    assert delivery_count() == before + 1
    assert REGISTRY.get_sample_value("wecomdesk_delivery_seconds_sum", {"tenant": "alpha"}) - before_sum == \
        pytest.approx(3.0, abs=0.01)


def token_fetches(errcode: str) -> float:
    labels = {"tenant": "alpha", "errcode": errcode}
    return REGISTRY.get_sample_value("wecomdesk_wecom_token_fetches_total", labels) or 0


def test_token_fetches_are_counted_by_errcode(tenants_world, sandbox):
    with schema_context("alpha"):
        good = WeComAppFactory()
        bad = WeComAppFactory(agent_id=1000003, secret="not-the-secret")
        ok_before, refused_before = token_fetches("0"), token_fetches("40001")
        redis_client().delete(f"alpha:wecom:token:{good.pk}", f"alpha:wecom:token:{bad.pk}")
        WeComClient(good).access_token()
        WeComClient(good).access_token()  # cached: no second fetch
        with pytest.raises(WeComTokenError):
            WeComClient(bad).access_token()
        redis_client().delete(f"alpha:wecom:token:{good.pk}")

    assert token_fetches("0") == ok_before + 1
    assert token_fetches("40001") == refused_before + 1
