"""Publishing Dramatiq messages to RabbitMQ from one long-lived thread per process.

Dramatiq's RabbitmqBroker keeps one AMQP connection per thread, and Django's ASGI handler runs each request's
synchronous code in a thread of its own: every callback opened (and then closed) its own connection, about
35 ms of the web's CPU per callback, and while RabbitMQ was down every callback sat through Dramatiq's six
connection attempts before its 200 (docs/CHAOS.md). Here a process's publishes all go through one thread
that keeps its connection. The caller waits for the publish up to PUBLISH_WAIT_SECONDS and then goes on
(the row it enqueues for is committed; the publish carries on, and the sweepers re-enqueue whatever never
reached the broker), so an acknowledgement never waits on a broker outage for long.

The Redis broker shares a connection pool between threads and publishes in the caller's thread as before.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError

import dramatiq
import structlog
from dramatiq.brokers.rabbitmq import RabbitmqBroker

PUBLISH_WAIT_SECONDS = 1.0
logger = structlog.get_logger("tenants.publishing")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_executor_pid: int | None = None


def enqueue(message: dramatiq.Message, *, delay: int | None) -> Future | None:
    """Publish `message`; with RabbitMQ, the publish's Future (still running when the wait ran out)."""
    broker = dramatiq.get_broker()
    if not isinstance(broker, RabbitmqBroker):
        broker.enqueue(message, delay=delay)
        return None
    future = _publisher().submit(broker.enqueue, message, delay=delay)
    try:
        future.result(timeout=PUBLISH_WAIT_SECONDS)
    except TimeoutError:
        logger.warning("dramatiq.publish_pending", job_id=message.message_id, actor=message.actor_name,
                       waited_seconds=PUBLISH_WAIT_SECONDS)
        future.add_done_callback(_log_late_failure)
    return future


def _publisher() -> ThreadPoolExecutor:
    """The process's publishing thread; a forked child (Dramatiq's worker processes) makes its own."""
    global _executor, _executor_pid
    with _lock:
        if _executor is None or _executor_pid != os.getpid():
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amqp-publisher")
            _executor_pid = os.getpid()
        return _executor


def _log_late_failure(future: Future) -> None:
    if (error := future.exception()) is not None:
        logger.error("dramatiq.publish_failed", error=repr(error))
