"""Dramatiq queue gauges, read from the real test broker (Redis); an unreachable RabbitMQ gives no figures."""

from __future__ import annotations

import dramatiq
import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from tenants.queues import actor_queues, queue_lengths
from tenants.schedule import DELAY_QUEUE_LENGTH, QUEUE_LENGTH, measure_queues
from testing.broker import flush_test_broker


@pytest.fixture
def empty_broker():
    flush_test_broker()
    yield dramatiq.get_broker()
    flush_test_broker()


def send(broker, queue: str, *, delay: int | None = None) -> None:
    broker.enqueue(dramatiq.Message(queue_name=queue, actor_name="probe.job", args=(), kwargs={},
                                    options={"tenant_schema": "alpha"}), delay=delay)


def test_every_actor_queue_is_measured():
    assert {"inbound", "outbound", "ai", "kf_sync", "media", "kb"} <= set(actor_queues())


def test_lengths_of_queues_and_delay_queues(empty_broker):
    for _ in range(3):
        send(empty_broker, "inbound")
    send(empty_broker, "outbound")
    send(empty_broker, "outbound", delay=60_000)
    send(empty_broker, "outbound", delay=60_000)

    lengths = {length.queue: (length.waiting, length.delayed) for length in queue_lengths(["inbound", "outbound",
                                                                                             "media"])}

    assert lengths == {"inbound": (3, 0), "outbound": (1, 2), "media": (0, 0)}


def test_the_scheduler_job_publishes_them(empty_broker):
    send(empty_broker, "media")
    send(empty_broker, "ai", delay=60_000)

    measure_queues()

    assert QUEUE_LENGTH.values[("media",)] == 1 and QUEUE_LENGTH.values[("inbound",)] == 0
    assert DELAY_QUEUE_LENGTH.values[("ai",)] == 1 and DELAY_QUEUE_LENGTH.values[("media",)] == 0


def test_an_unreachable_rabbitmq_gives_no_figures_instead_of_failing(settings):
    settings.BROKER_URL = "amqp://guest:guest@127.0.0.1:1/"
    broker = RabbitmqBroker(url=settings.BROKER_URL)
    assert queue_lengths(["inbound"], broker=broker) is None
