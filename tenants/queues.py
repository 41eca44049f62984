"""How many messages the Dramatiq queues hold, read from the broker (Redis or RabbitMQ), for the gauges.

Redis: the messages of `<namespace>:<queue>.msgs` and `<queue>.DQ.msgs`, which hold a message from its
enqueue until a worker acknowledges it (waiting, prefetched or running). RabbitMQ: the ready messages
of the queue and its `.DQ`, by a passive declare (it creates nothing; a queue never declared holds 0).
The queues are those of every actor (the apps' `actors` modules declare them).
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass

import dramatiq
import pika
import pika.exceptions
import structlog
from django.conf import settings
from django.utils.module_loading import autodiscover_modules
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from redis.exceptions import RedisError

logger = structlog.get_logger("tenants.queues")
AMQP_TIMEOUT_SECONDS = 2


@dataclass(frozen=True, kw_only=True)
class QueueLength:
    queue: str
    waiting: int
    delayed: int


def actor_queues() -> list[str]:
    """Every queue an actor of the project listens to (importing the actors modules declares them)."""
    autodiscover_modules(*settings.DRAMATIQ_AUTODISCOVER_MODULES)
    return sorted(dramatiq.get_broker().get_declared_queues())


def queue_lengths(queues: list[str] | None = None, *,
                  broker: dramatiq.Broker | None = None) -> list[QueueLength] | None:
    """The length of each queue (default: every actor's) and of its delay queue; None when the broker
    (default: the project's) cannot be read."""
    broker = broker or dramatiq.get_broker()
    queues = actor_queues() if queues is None else queues
    try:
        if isinstance(broker, RedisBroker):
            return _redis_lengths(broker, queues)
        if isinstance(broker, RabbitmqBroker):
            return _rabbitmq_lengths(settings.BROKER_URL, queues)
    except (RedisError, pika.exceptions.AMQPError, OSError) as exc:
        logger.warning("queues.unreadable", broker=type(broker).__name__, error=type(exc).__name__)
        return None
    logger.warning("queues.unknown_broker", broker=type(broker).__name__)
    return None


def _redis_lengths(broker: RedisBroker, queues: list[str]) -> list[QueueLength]:
    pipe = broker.client.pipeline(transaction=False)
    for queue in queues:
        pipe.hlen(f"{broker.namespace}:{queue}.msgs")
        pipe.hlen(f"{broker.namespace}:{dq_name(queue)}.msgs")
    counts = pipe.execute()
    return [QueueLength(queue=queue, waiting=counts[2 * i], delayed=counts[2 * i + 1])
            for i, queue in enumerate(queues)]


def _rabbitmq_lengths(url: str, queues: list[str]) -> list[QueueLength]:
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = parameters.blocked_connection_timeout = AMQP_TIMEOUT_SECONDS
    parameters.connection_attempts = 1
    with closing(pika.BlockingConnection(parameters)) as amqp:
        return [QueueLength(queue=queue, waiting=_ready(amqp, queue), delayed=_ready(amqp, dq_name(queue)))
                for queue in queues]


def _ready(amqp: pika.BlockingConnection, queue: str) -> int:
    # A channel per queue: the broker closes the channel of a passive declare that finds no queue.
    channel = amqp.channel()
    try:
        return channel.queue_declare(queue=queue, durable=True, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:  # never declared: nothing was ever sent to it
            return 0
        raise
    finally:
        if channel.is_open:
            channel.close()
