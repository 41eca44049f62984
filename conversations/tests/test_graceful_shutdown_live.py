"""A worker stopped with SIGTERM in the middle of answering (what Kubernetes does on a rollout or a node drain:
docs/DEPLOYMENT.md, "Graceful shutdown") exits within its grace period, leaves no lock held and no row stuck,
and every customer message still gets exactly one answer, in order, once a new worker takes over."""

from __future__ import annotations

import signal
import time

import pytest
from django_tenants.utils import schema_context

from conversations.models import InboundMessage, OutboundMessage
from testing.waiting import wait_until, wait_until_idle
from testing.wecom import sender_for
from wecom_sandbox.callbacks import text_message

from .test_answering_live import (  # noqa: F401  (stack is a fixture)
    WORKER_QUEUES,
    stack,
    visible,
)

pytestmark = pytest.mark.live
CORP = "wwlivecorp000001"


@pytest.mark.timeout(240)
def test_sigterm_mid_round_drains_and_every_message_is_answered_once_in_order(stack, sandbox,  # noqa: F811
                                                                              live_server_url):
    app, worker = stack
    sandbox.model_configure(latency=0.5)  # each answer takes a moment: the worker is mid-round when told to stop
    sender = sender_for(app, f"{live_server_url}/t/alpha/wecom/callback/{app.callback_id}/")
    contacts, per_contact = 10, 10  # still most of them left when the SIGTERM comes, after 5 answers
    first = worker()
    wait_until(lambda: "ready for action" in first.output(), timeout=60, message=first.output)
    for i in range(per_contact):
        for n in range(contacts):
            assert sender.send(text_message(corp_id=app.corp_id, agent_id=app.agent_id, from_user=f"term{n}",
                                            content=f"echo:term{n}-{i}")).delivered
    wait_until(lambda: sum(len(visible(sandbox, f"term{n}")) for n in range(contacts)) >= 5, timeout=60,
               message=first.output)  # answering has begun; most messages are still to do

    first.proc.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    first.proc.wait(timeout=40)  # within the pods' 40 s grace period
    # It stopped between two rounds (tenants/worker_shutdown.py) rather than answering the whole backlog first:
    # a few seconds, with messages left for the next worker.
    assert time.monotonic() - stopped_at < 10, first.output()[-2000:]
    assert sum(len(visible(sandbox, f"term{n}")) for n in range(contacts)) < contacts * per_contact
    assert "Traceback" not in first.output()

    second = worker()
    expected = {f"term{n}": [f"term{n}-{i}" for i in range(per_contact)] for n in range(contacts)}
    wait_until(lambda: all(len(visible(sandbox, user)) >= per_contact for user in expected), timeout=120,
               interval=0.5, message=lambda: second.output()[-2000:])
    wait_until_idle(schemas=["alpha"], queues=WORKER_QUEUES, timeout=60, message=lambda: second.output()[-2000:])
    for user, answers in expected.items():
        assert visible(sandbox, user) == answers, user  # each once, in order (echo answers, no faults here)
    with schema_context("alpha"):
        assert not InboundMessage.objects.filter(app=app).exclude(status="processed").exists()
        assert not OutboundMessage.objects.filter(contact__app=app).exclude(status="sent").exists()
