"""The front door end to end: the sandbox sends encrypted callbacks to a live web server, a real
worker processes them, the scheduler's sweeper recovers what a crash and a Redis flush lost."""

from __future__ import annotations

import random
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django_tenants.utils import schema_context

from conversations.models import InboundMessage, TraceEvent
from testing.processes import ROOT, LiveProcess, free_port, live_env
from testing.vectors import CORP_ID
from testing.waiting import wait_until
from testing.wecom import sender_for
from wecom_sandbox.callbacks import CallbackResult, text_message

pytestmark = pytest.mark.live

# 300 callbacks prove what 1,000 did: the races are per message (a redelivery racing its original on two
# connections, 8 senders at once into a 4-thread worker), and 300 still make 45 such pairs and 90 redeliveries,
# 120 messages to a working worker, 180 after its crash that are lost with Redis (the sweeper's work).
# How many callbacks a second the front door takes is bench/ingress.py's question, not this test's.
TOTAL = 300
REDELIVERED_SHARE = 0.3
CRASH_AT = int(TOTAL * 0.4)


@pytest.fixture
def live_app(committed_app):
    return committed_app("alpha", agent_id=4242)


def counts(app) -> dict[str, int]:
    """Rows stored, rows whose processing is over (answered, handed off or rate-limited), rows enqueued again."""
    with schema_context("alpha"):
        rows = InboundMessage.objects.filter(app=app)
        return {"rows": rows.count(), "processed": rows.exclude(status="pending").count(),
                "swept": rows.filter(enqueue_count__gt=1).count()}


@pytest.mark.timeout(240)  # 120 s to process everything after the crash; about 17 s alone when measured
def test_callbacks_with_redelivery_crash_and_redis_flush(live_app, live_server_url, start_worker, start_process,
                                                         redis_client):
    url = f"{live_server_url}/t/alpha/wecom/callback/{live_app.callback_id}/"
    sender = sender_for(live_app, url, timeout=5, client=httpx.Client(timeout=5,
                                                                       limits=httpx.Limits(max_connections=16)))
    rng = random.Random(7)
    redelivered = set(rng.sample(range(TOTAL), int(TOTAL * REDELIVERED_SHARE)))
    prepared = [sender.prepare(text_message(corp_id=CORP_ID, agent_id=live_app.agent_id, from_user=f"user{i % 50}",
                                            content=f"消息 {i}", msg_id=str(10**15 + i)))
                for i in range(TOTAL)]

    def deliver(i: int) -> list[int | None]:
        if i in redelivered and i % 2:  # half of the redeliveries race the original
            copies = [CallbackResult(prepared[i].url, prepared[i].body, prepared[i].plaintext) for _ in range(2)]
            with ThreadPoolExecutor(2) as pair:
                results = list(pair.map(sender.deliver, copies))
            return [a.status for r in results for a in r.attempts]
        statuses = [a.status for a in sender.deliver(prepared[i]).attempts]
        if i in redelivered:  # WeCom re-sends the identical request
            again = type(prepared[i])(prepared[i].url, prepared[i].body, prepared[i].plaintext)
            statuses += [a.status for a in sender.deliver(again).attempts]
        return statuses

    worker = start_worker("inbound", "kf_sync", threads=4)
    start_process("scheduler", "scheduler", "--tick", "0.5", INBOUND_SWEEP_AFTER_SECONDS="3")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(deliver, range(0, CRASH_AT)))
        # Crash: the worker dies mid-stream (at work, not still booting); what arrives next waits in Redis,
        # then Redis is wiped. Nothing is sent after the flush: a later customer message's answering job would
        # answer the lost ones too (one job answers a tenant's pending messages), and only the sweeper is left.
        wait_until(lambda: counts(live_app)["processed"], timeout=60, message=lambda: worker.output()[-3000:])
        worker.kill()
        statuses += list(pool.map(deliver, range(CRASH_AT, TOTAL)))
    redis_client.flushdb()
    assert all(status == 200 for attempts in statuses for status in attempts)
    assert counts(live_app)["rows"] == TOTAL

    # No worker runs and Redis lost their jobs: only the sweeper can enqueue those sent to the dead worker again
    # (with RabbitMQ as the broker, `make test-amqp`, their jobs are still queued: the sweeper does it all the same).
    wait_until(lambda: counts(live_app)["swept"] >= TOTAL - CRASH_AT, timeout=60,
               message=lambda: f"the sweeper: {counts(live_app)}")
    replacement = start_worker("inbound", "kf_sync", threads=4)
    wait_until(lambda: counts(live_app)["processed"] == TOTAL, timeout=120,
               message=lambda: f"all processed: {counts(live_app)}\n{replacement.output()[-3000:]}")

    with schema_context("alpha"):
        rows = InboundMessage.objects.filter(app=live_app)
        assert rows.values("natural_key").distinct().count() == TOTAL
        assert not rows.exclude(trace_events__stage="enqueued").exists()
        duplicates = TraceEvent.objects.filter(inbound__app=live_app, stage="duplicate").count()
    assert duplicates >= len(redelivered)


def test_bad_input_does_not_stop_the_server(live_app, live_server_url):
    url = f"{live_server_url}/t/alpha/wecom/callback/{live_app.callback_id}/"
    with httpx.Client(timeout=30) as client:
        assert client.post(url + "?msg_signature=x&timestamp=1&nonce=1", content=b"\x00\xff" * 100).status_code == 400
        assert client.post(url, content=b"<xml>" + b"a" * (10 * 1024 * 1024)).status_code in (400, 413)
        assert client.get(url + "?echostr=%ZZ&msg_signature=&timestamp=&nonce=").status_code == 400
    result = sender_for(live_app, url).send(text_message(corp_id=CORP_ID, agent_id=live_app.agent_id,
                                                         from_user="u", content="still here"))
    assert result.statuses == [200]
    assert counts(live_app)["rows"] == 1


def test_database_down_answers_503_so_wecom_retries(live_app, tmp_path):
    port = free_port()
    dead_db = "postgresql://postgres@127.0.0.1:1/nowhere"
    server = LiveProcess("web-nodb", [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port",
                                      str(port)], tmp_path, live_env(DATABASE_URL=dead_db))
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, message="web without db")
        url = f"http://127.0.0.1:{port}/t/alpha/wecom/callback/{live_app.callback_id}/"
        result = sender_for(live_app, url, max_retries=1).send(
            text_message(corp_id=CORP_ID, agent_id=live_app.agent_id, from_user="u", content="lost?"))
        assert result.statuses == [503, 503]  # WeCom's redelivery gets 503 again, never a 2xx
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 503
    finally:
        server.stop()
    assert counts(live_app)["rows"] == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_procfile_names_web_websocket_worker_and_scheduler():
    procfile = (ROOT / "platform" / "Procfile").read_text()
    assert {line.split(":")[0] for line in procfile.splitlines() if line and not line.startswith("#")} == {
        "web", "websocket", "worker", "scheduler"}
