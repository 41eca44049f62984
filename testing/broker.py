"""The test Dramatiq broker, Redis or RabbitMQ: what is queued, without a worker.

Redis (namespace "dramatiq-test"): the broker keeps a message in `<namespace>:<queue>.msgs` (and a delayed one
in `<queue>.DQ.msgs`) from enqueue until a worker acknowledges it after the actor returned, so a job that is
running counts as queued, and so does one of a killed worker until the broker gives it to another (after its
heartbeat timeout). Queues are found in Redis, not in `broker.get_declared_queues()`: services enqueue by actor
name (tenants.dramatiq.Job), so the test process often never declares the queues its jobs go to, and Dramatiq's
own `flush_all()` would leave them alone.

RabbitMQ (the test settings give each run its own vhost, `wecomdesk-test-<TEST_REDIS_DB>`): a message counts
from enqueue until it is acknowledged too, as the queue's ready plus unacknowledged messages (delivered to a
worker: prefetched, running, or a delayed one a worker holds until its time). AMQP tells a client only the ready
count (a passive declare), and the management plugin's figures lag by its statistics interval, so both counts
come from `rabbitmqctl list_queues`, which asks the queues themselves: exact at that moment, about a second a
call. The queues are the vhost's own, so nothing another run enqueues counts. A killed worker's messages are
ready again as soon as its connection closes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from contextlib import closing
from urllib.parse import unquote, urlsplit

import dramatiq
import pika
import pika.exceptions
from django.conf import settings
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from tenants import coalescing
from tenants.redis import redis_client

RABBITMQCTL_TIMEOUT_SECONDS = 30


def _redis_broker() -> RedisBroker:
    broker = dramatiq.get_broker()
    if not isinstance(broker, RedisBroker):
        raise NotImplementedError(f"this reads Redis queues; the test broker is {type(broker).__name__}")
    return broker


def is_rabbitmq() -> bool:
    return isinstance(dramatiq.get_broker(), RabbitmqBroker)


# -- RabbitMQ ---------------------------------------------------------------------------------------------


def amqp_vhost(url: str) -> str:
    return unquote(urlsplit(url).path[1:]) or "/"


def rabbitmq_node(url: str) -> str:
    """The Erlang node of the RabbitMQ at `url`, as scripts/services.py starts it (rabbit@localhost on 5672)."""
    port = urlsplit(url).port or 5672
    return "rabbit@localhost" if port == 5672 else f"wecomdesk{port}@localhost"


def rabbitmqctl(url: str, *args: str) -> str:
    result = subprocess.run(["rabbitmqctl", "-n", rabbitmq_node(url), "-q", *args], capture_output=True, text=True,
                            timeout=RABBITMQCTL_TIMEOUT_SECONDS)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result.stdout


def ensure_vhost(url: str) -> None:
    """Create `url`'s vhost if it is missing and give `url`'s user every permission on it."""
    vhost, user = amqp_vhost(url), unquote(urlsplit(url).username or "guest")
    if vhost not in rabbitmqctl(url, "list_vhosts", "--no-table-headers").split():
        rabbitmqctl(url, "add_vhost", vhost)
    rabbitmqctl(url, "set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def _rabbitmq_counts(url: str) -> dict[str, int]:
    """Ready + unacknowledged messages of every queue of the vhost (delay queues folded into theirs)."""
    counts: dict[str, int] = {}
    listing = rabbitmqctl(url, "list_queues", "-p", amqp_vhost(url), "name", "messages_ready",
                          "messages_unacknowledged", "--no-table-headers")
    for line in listing.splitlines():
        if not line.strip():
            continue
        name, ready, unacked = line.split("\t")
        if name.endswith(".XQ"):
            continue
        queue = name.removesuffix(".DQ")
        counts[queue] = counts.get(queue, 0) + int(ready) + int(unacked)
    return counts


def _amqp_connection(url: str) -> pika.BlockingConnection:
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    return pika.BlockingConnection(parameters)


def _rabbitmq_jobs(url: str, queue: str) -> list[dramatiq.Message]:
    # Each message got without acknowledging it; closing the channel puts them all back where they were.
    messages = []
    with closing(_amqp_connection(url)) as amqp:
        for name in (queue, f"{queue}.DQ"):
            channel = amqp.channel()
            try:
                while True:
                    _, _, body = channel.basic_get(name, auto_ack=False)
                    if body is None:
                        break
                    messages.append(dramatiq.Message.decode(body))
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # never declared: nothing in it
                    raise
            finally:
                if channel.is_open:
                    channel.close()
    return messages


def _rabbitmq_flush(url: str) -> None:
    names = [line.strip() for line in rabbitmqctl(url, "list_queues", "-p", amqp_vhost(url), "name",
                                                   "--no-table-headers").splitlines() if line.strip()]
    with closing(_amqp_connection(url)) as amqp:
        channel = amqp.channel()
        for name in names:
            channel.queue_purge(name)


# -- either broker ----------------------------------------------------------------------------------------


def queue_names() -> set[str]:
    """Every queue that holds or held a message in the test namespace (dead-letter queues excepted)."""
    if is_rabbitmq():
        return set(_rabbitmq_counts(settings.BROKER_URL)) | dramatiq.get_broker().get_declared_queues()
    broker = _redis_broker()
    prefix, suffix = f"{broker.namespace}:", ".msgs"
    names = set()
    for key in broker.client.scan_iter(match=f"{prefix}*{suffix}"):
        name = key.decode()[len(prefix):-len(suffix)]
        if not name.endswith(".XQ"):
            names.add(name.removesuffix(".DQ"))
    return names | broker.get_declared_queues()


def queued_messages(queues: Iterable[str] | None = None) -> dict[str, int]:
    """Messages of each queue (default: all of them) not yet acknowledged: waiting, delayed or running."""
    if is_rabbitmq():
        counts = _rabbitmq_counts(settings.BROKER_URL)
        names = sorted(queues if queues is not None else set(counts) | dramatiq.get_broker().get_declared_queues())
        return {name: counts.get(name, 0) for name in names}
    broker = _redis_broker()
    names = sorted(queues if queues is not None else queue_names())
    pipe = broker.client.pipeline(transaction=False)
    for name in names:
        pipe.hlen(f"{broker.namespace}:{name}.msgs")
        pipe.hlen(f"{broker.namespace}:{name}.DQ.msgs")
    counts = pipe.execute()
    return {name: counts[2 * i] + counts[2 * i + 1] for i, name in enumerate(names)}


def queued_jobs(queue: str, *, actor_name: str | None = None) -> list[dramatiq.Message]:
    """The messages waiting on `queue` (delayed ones included), oldest first; only `actor_name`'s if given.
    (RabbitMQ: those not delivered to a worker.)"""
    if is_rabbitmq():
        raw = _rabbitmq_jobs(settings.BROKER_URL, queue)
    else:
        broker = _redis_broker()
        raw = [dramatiq.Message.decode(data) for data in
               [*broker.client.hvals(f"{broker.namespace}:{queue}.msgs"),
                *broker.client.hvals(f"{broker.namespace}:{queue}.DQ.msgs")]]
    messages = sorted(raw, key=lambda message: message.message_timestamp)
    return [message for message in messages if actor_name is None or message.actor_name == actor_name]


def flush_test_broker() -> None:
    """Drop every message of the test namespace (vhost): queues, delayed and dead-lettered ones, acks, heartbeats.

    Only while no worker runs (a worker's heartbeat and unacknowledged messages go too).
    """
    forget_job_marks()
    if is_rabbitmq():
        _rabbitmq_flush(settings.BROKER_URL)
        return
    broker = _redis_broker()
    keys = list(broker.client.scan_iter(match=f"{broker.namespace}:*"))
    for start in range(0, len(keys), 500):
        broker.client.delete(*keys[start:start + 500])


def forget_job_marks() -> None:
    """Drop the coalesced jobs' marks (tenants/coalescing.py): they say a job is queued, and a test's jobs are gone
    with the test (flushed, or never published from a rolled-back transaction). A mark left behind would keep the
    next test's stored messages from asking for a job of their own."""
    client = redis_client()
    keys = list(client.scan_iter(match=coalescing.mark_key("*", "*")))
    if keys:
        client.delete(*keys)
