"""RabbitMQ publishing goes through one thread and its one connection (tenants/publishing.py), and a broker
that does not answer holds its caller up to the wait only; Redis publishes as before. A vhost of the test's own."""

from __future__ import annotations

import socket
import threading
from contextlib import closing

import dramatiq
import pika
import pytest
from django.conf import settings
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed

from tenants import publishing
from testing.broker import amqp_vhost, ensure_vhost, rabbitmqctl

pytestmark = pytest.mark.live  # rabbitmqctl runs as a process of its own
QUEUE = "publishing-test"


@pytest.fixture
def rabbitmq_broker():
    """A vhost of the run's own, kept between runs (rabbitmqctl takes seconds); the test's queue emptied."""
    url = f"amqp://guest:guest@127.0.0.1:5672/wecomdesk-test-publishing-{settings.TEST_REDIS_DB}"
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
    except pika.exceptions.AMQPConnectionError:  # the vhost is missing (or so is the broker: ensure says)
        ensure_vhost(url)
    previous = dramatiq.get_broker()
    broker = RabbitmqBroker(url=url, middleware=[])
    broker.declare_queue(QUEUE, ensure=True)  # declared on the broker now, as Dramatiq declares it
    broker.channel.queue_purge(QUEUE)
    del broker.connection  # this thread's: only the publisher's may be left
    dramatiq.set_broker(broker)
    try:
        yield url
    finally:
        dramatiq.set_broker(previous)
        broker.close()


def _message(n: int) -> dramatiq.Message:
    return dramatiq.Message(queue_name=QUEUE, actor_name="noop", args=(n,), kwargs={}, options={})


def test_publishes_from_many_request_threads_share_one_connection(rabbitmq_broker):
    url = rabbitmq_broker
    # Like ASGI requests: every publish asked for by a thread that lives for one request only.
    threads = [threading.Thread(target=publishing.enqueue, args=(_message(n),), kwargs={"delay": None})
               for n in range(12)]
    for thread in threads:
        thread.start()
        thread.join()

    connections = rabbitmqctl(url, "list_connections", "vhost", "--no-table-headers").split()
    assert connections.count(amqp_vhost(url)) == 1
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as amqp:
        assert amqp.channel().queue_declare(QUEUE, passive=True).method.message_count == 12


def test_a_broker_that_does_not_answer_holds_the_caller_up_to_the_wait_only():
    # A port that takes connections and never speaks AMQP: the handshake hangs, as with a stuck node.
    silent = socket.create_server(("127.0.0.1", 0))
    previous = dramatiq.get_broker()
    dramatiq.set_broker(RabbitmqBroker(url=f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/",
                                       middleware=[]))
    try:
        future = publishing.enqueue(_message(1), delay=None)
        assert future is not None and not future.done()  # the caller went on; the publish did not
    finally:
        dramatiq.set_broker(previous)
        silent.close()  # the waiting handshake is reset and the retries are refused: the publish fails
    with pytest.raises(ConnectionClosed):
        future.result(timeout=60)


def test_the_redis_broker_publishes_in_the_callers_thread():
    previous, stub = dramatiq.get_broker(), StubBroker(middleware=[])
    stub.declare_queue(QUEUE)
    dramatiq.set_broker(stub)
    try:
        assert publishing.enqueue(_message(1), delay=None) is None
        assert stub.queues[QUEUE].qsize() == 1  # already there when enqueue returns
    finally:
        dramatiq.set_broker(previous)
