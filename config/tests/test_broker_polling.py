"""Idle queues nobody waits on are polled once a second; the others are woken when a message arrives, and wait at
the worker's pace while they hold messages (config/broker_polling.py, config/broker_wakeups.py)."""

from __future__ import annotations

import uuid

import dramatiq
import redis
from django.conf import settings

from config.broker_polling import PacedRedisBroker
from config.broker_wakeups import WakeableRedisConsumer


def test_the_project_broker_is_paced():
    assert isinstance(dramatiq.get_broker(), PacedRedisBroker)


def test_customer_and_agent_queues_are_woken_and_background_queues_poll_once_a_second():
    broker = dramatiq.get_broker()
    paces = {}
    for queue in ("inbound", "inbound.DQ", "outbound", "outbound.DQ", "kf_sync", "ai", "ai.DQ", "media", "kb.DQ",
                  "webhooks"):
        consumer = broker.consume(queue, prefetch=1, timeout=100)
        if isinstance(consumer, WakeableRedisConsumer):
            paces[queue] = ("woken", consumer.busy_poll_ms, consumer.idle_poll_ms)
        else:
            paces[queue] = ("polled", consumer.timeout)
        consumer.close()

    woken = ("woken", 100, 1000)
    assert paces == {"inbound": woken, "inbound.DQ": woken, "outbound": woken, "outbound.DQ": woken,
                     "kf_sync": woken, "ai": woken, "ai.DQ": ("polled", 1000), "media": ("polled", 1000),
                     "kb.DQ": ("polled", 1000), "webhooks": ("polled", 1000)}


def test_a_dead_workers_unacknowledged_message_goes_back_at_the_next_fetch_once_maintenance_is_due():
    name = f"maintenance-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    # No random maintenance at all: only the broker's own schedule can give the message back.
    dead, alive = (PacedRedisBroker(client=client, namespace=name, heartbeat_timeout=10_000, maintenance_chance=0)
                   for _ in range(2))
    try:
        dead.enqueue(dramatiq.Message(queue_name="media", actor_name="maintenance.test", args=(), kwargs={},
                                      options={}))
        held = next(message for message in dead.consume("media", prefetch=1, timeout=100) if message is not None)
        client.zadd(f"{name}:__heartbeats__", {dead.broker_id: 0})  # its last heartbeat: long ago

        consumer = alive.consume("media", prefetch=1, timeout=100)
        given_back = next(consumer)

        assert given_back is not None and given_back.message_id == held.message_id
        assert not client.exists(f"{name}:__acks__.{dead.broker_id}.media")
    finally:
        for key in client.scan_iter(f"{name}*"):
            client.delete(key)
        client.close()
