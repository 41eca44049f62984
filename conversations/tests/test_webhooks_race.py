"""Two jobs for one webhook delivery at the same time (a redelivered job, the sweeper's and the first): the
event is POSTed once. Committed rows, real threads, a slow real receiver."""

from __future__ import annotations

import threading

import pytest
from django.db import transaction
from django_tenants.utils import schema_context

from conversations.services.webhooks import create_endpoint, deliver_webhook, emit
from conversations.webhooks.models import EventType, WebhookDelivery, WebhookEndpoint, WebhookEvent
from testing.broker import flush_test_broker
from testing.threads import run_in_threads


@pytest.fixture
def committed_delivery(committed_db, webhook_receiver):
    receiver = webhook_receiver(delay_seconds=1.0)  # the first job is still in its POST when the second comes
    with schema_context("alpha"):
        endpoint = create_endpoint(url=receiver.url, events=[EventType.TICKET_UPDATED])
        with transaction.atomic():
            event = emit(event=EventType.TICKET_UPDATED, data={"ticket_id": 1})
        delivery = WebhookDelivery.objects.get(event=event)
    yield delivery, receiver
    with schema_context("alpha"):
        WebhookEvent.objects.filter(pk=event.pk).delete()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
    flush_test_broker()


def test_two_jobs_for_one_delivery_post_it_once(committed_delivery):
    delivery, receiver = committed_delivery
    meet = threading.Barrier(2)

    def job() -> None:
        meet.wait(timeout=10)
        with schema_context("alpha"):
            deliver_webhook(delivery_id=delivery.pk)

    run_in_threads(job, job, timeout=20)
    assert len(receiver.events()) == 1
    with schema_context("alpha"):
        delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 1)
    with schema_context("alpha"):
        deliver_webhook(delivery_id=delivery.pk)  # a third, later: the row is delivered
    assert len(receiver.events()) == 1
