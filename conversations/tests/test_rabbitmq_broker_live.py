"""RabbitMQ as the Dramatiq broker, end to end, in every `make test` (the whole set of pipeline live tests runs on
it with `make test-amqp`): web, workers and scheduler on amqp://, a burst of messages with WeCom's redeliveries
and a worker SIGKILLed in the middle; every message is answered exactly once, in order."""

from __future__ import annotations

import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import httpx
import pytest
from django_tenants.utils import schema_context
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from conversations.models import InboundMessage, OutboundMessage
from testing.broker import ensure_vhost, flush_test_broker, queue_names
from testing.processes import LiveProcess, free_port, live_env
from testing.waiting import wait_until, wait_until_idle
from testing.wecom import sender_for
from wecom_sandbox.callbacks import CallbackResult, text_message

from .test_answering_live import (  # noqa: F401  (stack is a fixture)
    WORKER_QUEUES,
    stack,
    visible,
)

pytestmark = pytest.mark.live
# The RabbitMQ of `make test` (scripts/services.py starts it); the test settings put each run in its own vhost.
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def on_rabbitmq(monkeypatch, settings):
    """Processes started from now on use RabbitMQ as their broker, and so does this process's view of the queues."""
    vhost_url = urlunsplit(urlsplit(AMQP_URL)._replace(path=f"/wecomdesk-test-{settings.TEST_REDIS_DB}"))
    ensure_vhost(vhost_url)
    monkeypatch.setenv("BROKER_URL", AMQP_URL)  # the children's test settings move it to the same vhost
    settings.BROKER_URL = vhost_url
    previous = dramatiq.get_broker()
    dramatiq.set_broker(RabbitmqBroker(url=vhost_url))
    flush_test_broker()  # nothing an earlier run left
    yield vhost_url
    dramatiq.get_broker().close()
    dramatiq.set_broker(previous)


@pytest.mark.timeout(300)
def test_a_burst_over_rabbitmq_with_redeliveries_and_a_worker_kill_is_answered_once_in_order(
        on_rabbitmq, stack, sandbox, tmp_path):  # noqa: F811
    app, worker = stack
    first = worker()  # booting while the web server does
    port = free_port()
    web = LiveProcess("web-amqp", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host",
                                   "127.0.0.1", "--port", str(port), "--log-level", "warning"], tmp_path, live_env())
    try:
        wait_until(lambda: _status(f"http://127.0.0.1:{port}/healthz") == 200, timeout=30, message=web.output)
        sender = sender_for(app, f"http://127.0.0.1:{port}/t/alpha/wecom/callback/{app.callback_id}/")
        contacts, per_contact = 10, 8
        rng = random.Random(5)

        def customer(n: int) -> None:
            for i in range(per_contact):
                prepared = sender.prepare(text_message(corp_id=app.corp_id, agent_id=app.agent_id,
                                                       from_user=f"amqp{n}", content=f"echo:amqp{n}-{i}"))
                copies = 2 if rng.random() < 0.3 else 1  # WeCom redelivers, sometimes at the same time
                with ThreadPoolExecutor(copies) as pair:
                    results = list(pair.map(sender.deliver, [CallbackResult(prepared.url, prepared.body,
                                                                            prepared.plaintext)
                                                             for _ in range(copies)]))
                assert all(result.delivered for result in results)
                time.sleep(0.05)  # pacing: the burst lasts while the worker is killed

        def answered() -> int:
            return sum(len(visible(sandbox, f"amqp{n}")) for n in range(contacts))

        with ThreadPoolExecutor(contacts) as pool:
            sending = [pool.submit(customer, n) for n in range(contacts)]
            wait_until(lambda: answered() >= 5, timeout=60, message=lambda: first.output()[-2000:])
            first.kill()  # SIGKILL mid-burst: RabbitMQ gives its unacknowledged messages to the next worker
            second = worker()
            for future in sending:
                future.result()
        expected = {f"amqp{n}": [f"amqp{n}-{i}" for i in range(per_contact)] for n in range(contacts)}
        wait_until(lambda: answered() >= contacts * per_contact, timeout=120, interval=0.3,
                   message=lambda: f"{answered()} answered\n{second.output()[-2000:]}")
        wait_until_idle(schemas=["alpha"], queues=WORKER_QUEUES, timeout=90, message=lambda: second.output()[-2000:])
        for user, answers in expected.items():
            assert visible(sandbox, user) == answers, user  # each exactly once, in order
        with schema_context("alpha"):
            assert InboundMessage.objects.filter(app=app).count() == contacts * per_contact
            assert not InboundMessage.objects.filter(app=app).exclude(status="processed").exists()
            assert not OutboundMessage.objects.filter(contact__app=app).exclude(status="sent").exists()
        assert {"inbound", "outbound"} <= queue_names()  # the jobs went through this run's RabbitMQ vhost
    finally:
        web.stop()


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None
