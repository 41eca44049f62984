"""A message enqueued on a queue someone waits on wakes its consumers at once (config/broker_wakeups.py).

Each test's consumer would otherwise sleep a minute between polls (IDLE), far past the test's own deadline
(DEADLINE), so a message that arrives in time can only have come through a wake-up.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import dramatiq
import pytest
import redis
from django.conf import settings

from config.broker_polling import PacedRedisBroker
from config.broker_wakeups import WakeableRedisConsumer
from testing.waiting import wait_until

IDLE_MS = 60_000
DEADLINE_SECONDS = 10


@pytest.fixture
def broker():
    name = f"wakeups-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.REDIS_URL, client_name=name)
    broker = PacedRedisBroker(client=client, namespace=name)
    yield broker
    broker.close()
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def run(broker):
    """Runs a call in a thread of its own; a test that fails leaves no consumer waiting out its minute."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit
        broker.giving_up = True
        broker.wakeups._wake_all()


def consumer_of(broker, queue_name="inbound", *, prefetch=1, busy_ms=IDLE_MS):
    consumer = WakeableRedisConsumer(broker, queue_name, prefetch, busy_poll_ms=busy_ms, idle_poll_ms=IDLE_MS,
                                     wakeups=broker.wakeups)
    wait_until(lambda: broker.wakeups.listening, timeout=DEADLINE_SECONDS, message="the listener to subscribe")
    return consumer


def waits_started(consumer) -> threading.Event:
    """Set each time `consumer` starts waiting for a wake-up (a spy on its event's wait)."""
    started = threading.Event()
    wait = consumer._woken.wait

    def spied_wait(timeout):
        started.set()
        return wait(timeout)

    consumer._woken.wait = spied_wait
    return started


def enqueue(broker, queue_name="inbound", text="hello"):
    return broker.enqueue(dramatiq.Message(queue_name=queue_name, actor_name="wakeups.test", args=(text,),
                                           kwargs={}, options={}))


def next_message(consumer):
    for message in consumer:
        if message is not None or getattr(consumer.broker, "giving_up", False):
            return message


def test_a_message_enqueued_while_the_consumer_waits_is_fetched_at_once(broker, run):
    consumer = consumer_of(broker)
    waiting = waits_started(consumer)
    fetched = run(next_message, consumer)
    assert waiting.wait(DEADLINE_SECONDS), "the consumer never waited on its empty queue"

    enqueue(broker, text="wake up")

    assert fetched.result(timeout=DEADLINE_SECONDS).args == ("wake up",)
    consumer.close()


def test_an_idle_consumer_waits_long_only_while_its_process_listens_and_it_holds_nothing(broker):
    consumer = consumer_of(broker, busy_ms=100)
    assert consumer.wait_ms() == IDLE_MS

    enqueue(broker)
    message = next_message(consumer)
    assert consumer.wait_ms() == 100  # a message in hand: acks and delayed hand-overs keep the worker's pace

    consumer.ack(message)
    assert consumer.wait_ms() == IDLE_MS

    broker.wakeups.listening = False  # as while the subscription is being restored
    assert consumer.wait_ms() == 100
    consumer.close()


def test_an_ack_that_frees_a_full_prefetch_wakes_the_consumer(broker, run):
    consumer = consumer_of(broker, prefetch=1)
    enqueue(broker, text="first")
    enqueue(broker, text="second")
    first = next_message(consumer)
    waiting = waits_started(consumer)
    fetched = run(next_message, consumer)
    assert waiting.wait(DEADLINE_SECONDS), "the consumer never waited with its prefetch full"

    consumer.ack(first)

    assert fetched.result(timeout=DEADLINE_SECONDS).args == ("second",)
    consumer.close()


def test_a_wake_up_reaches_only_its_own_queue_and_only_urgent_queues_publish(broker):
    wakeups = broker.wakeups
    outbound, media, marker = (wakeups.register(name) for name in ("outbound", "media", "marker"))
    wait_until(lambda: wakeups.listening, timeout=DEADLINE_SECONDS, message="the listener to subscribe")
    for woken in (outbound, media, marker):
        woken.clear()

    enqueue(broker, "inbound")
    enqueue(broker, "media")  # a background queue: polled, not woken
    wakeups.publish("marker")  # published after both: once it arrives, theirs would have too

    assert marker.wait(DEADLINE_SECONDS)
    assert not outbound.is_set()
    assert not media.is_set()


def test_the_listener_subscribes_again_after_losing_its_connection(broker, run):
    consumer = consumer_of(broker)
    client = broker.client
    listeners = [entry for entry in client.client_list(_type="pubsub") if entry["name"] == broker.namespace]
    assert len(listeners) == 1

    client.client_kill_filter(_id=listeners[0]["id"])
    wait_until(lambda: broker.wakeups.subscriptions == 2, timeout=DEADLINE_SECONDS,
               message="the listener to subscribe again")

    waiting = waits_started(consumer)
    fetched = run(next_message, consumer)
    assert waiting.wait(DEADLINE_SECONDS)
    enqueue(broker, text="after the reconnect")
    assert fetched.result(timeout=DEADLINE_SECONDS).args == ("after the reconnect",)
    consumer.close()
