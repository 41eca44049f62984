"""Idle queues nobody waits on are polled once a second, the others at the worker's pace (config/broker_polling.py)."""

from __future__ import annotations

import dramatiq

from config.broker_polling import PacedRedisBroker


def test_the_project_broker_is_paced():
    assert isinstance(dramatiq.get_broker(), PacedRedisBroker)


def test_customer_and_agent_queues_keep_the_workers_pace_and_background_queues_poll_once_a_second():
    broker = dramatiq.get_broker()
    timeouts = {}
    for queue in ("inbound", "inbound.DQ", "outbound", "outbound.DQ", "kf_sync", "ai", "ai.DQ", "media", "kb.DQ",
                  "webhooks"):
        consumer = broker.consume(queue, prefetch=1, timeout=100)
        timeouts[queue] = consumer.timeout
        consumer.close()

    assert timeouts == {"inbound": 100, "inbound.DQ": 100, "outbound": 100, "outbound.DQ": 100, "kf_sync": 100,
                        "ai": 100, "ai.DQ": 1000, "media": 1000, "kb.DQ": 1000, "webhooks": 1000}
