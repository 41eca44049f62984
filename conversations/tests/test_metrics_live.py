"""Done-when of issue 11: with the processes started as `make run` starts them (platform/Procfile: web and
worker through config.metrics_launcher, the scheduler on its own port) and a customer's message answered,
a Prometheus scrape over HTTP of each documented endpoint returns what that role recorded."""

from __future__ import annotations

import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testing.broker import flush_test_broker
from testing.factories import APP_SECRET
from testing.processes import LiveProcess, free_port, live_env
from testing.vectors import CORP_ID
from testing.waiting import wait_until, wait_until_idle
from testing.wecom import sender_for

pytestmark = pytest.mark.live
AGENT_ID = 4747


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """{(sample name, its labels): value} of one scrape, as Prometheus reads it; empty while nobody answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except httpx.HTTPError:
        return {}
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def total(samples: dict, name: str, **labels: str) -> float:
    """The sum of `name` over the series that carry `labels` (other labels and processes added up)."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= sample_labels)


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stack(committed_app, sandbox, sandbox_server, tmp_path):
    """Web (gunicorn, 2 workers), worker (2 processes) and scheduler, started as the Procfile starts them, with
    the metrics directories under the test's own METRICS_DIR and free ports."""
    app = committed_app("alpha", agent_id=AGENT_ID)
    sandbox.create_corp(CORP_ID, apps=[{"agent_id": AGENT_ID, "secret": APP_SECRET}])
    ports = {"web": free_port(), "worker": free_port(), "scheduler": free_port()}
    env = live_env(TEST_WECOM_API_BASE=sandbox_server, METRICS_DIR=str(tmp_path / "prometheus"),
                   WORKER_METRICS_PORT=str(ports["worker"]), SCHEDULER_METRICS_PORT=str(ports["scheduler"]),
                   METRICS_HEALTH_SECONDS="0.5", dramatiq_worker_timeout="100",
                   HOST="127.0.0.1", PORT=str(ports["web"]), WEB_WORKERS="2", WEB_THREADS="2")
    for inherited in ("PROMETHEUS_MULTIPROC_DIR", "dramatiq_prom_db", "dramatiq_prom_port", "dramatiq_prom_host"):
        env.pop(inherited, None)
    launch = [sys.executable, "-m", "config.metrics_launcher"]
    processes = [
        LiveProcess("web", [*launch, "web", sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn",
                            "config.wsgi"], tmp_path, env),
        LiveProcess("worker", [*launch, "worker", sys.executable, "manage.py", "rundramatiq", "--processes", "2",
                               "--threads", "2", "--queues", "inbound", "outbound"], tmp_path, env),
        LiveProcess("scheduler", [sys.executable, "manage.py", "scheduler", "--tick", "0.2"], tmp_path, env),
    ]

    def output() -> str:
        return "\n".join(f"--- {process.name}\n{process.output()[-1500:]}" for process in processes)

    try:
        for role in ("web", "worker", "scheduler"):
            wait_until(lambda role=role: answers(ports[role]), timeout=60, message=output)
        yield app, ports, output
    finally:
        for process in processes:
            process.stop()
        flush_test_broker()


@pytest.mark.timeout(180)
def test_a_scrape_of_every_endpoint_returns_what_its_processes_recorded(stack, sandbox):
    app, ports, output = stack
    sender = sender_for(app, f"http://127.0.0.1:{ports['web']}/t/alpha/wecom/callback/{app.callback_id}/")

    for number in range(4):  # a few messages, so that both worker processes are likely to record some
        assert sender.send_text(from_user=f"customer{number}", content="你好").delivered
    wait_until(lambda: all(sandbox.received_texts(f"customer{number}") for number in range(4)), timeout=60,
               message=output)
    wait_until_idle(schemas=["alpha"], queues=["inbound", "outbound"])

    # The worker's endpoint (Dramatiq's exposition server): its own counters and ours, from every process.
    def worker_counted() -> bool:
        worker = scrape(ports["worker"])
        return (total(worker, "wecomdesk_outcomes_total", tenant="alpha") >= 4
                and total(worker, "wecomdesk_outbound_sends_total", tenant="alpha", errcode="0") >= 4)

    wait_until(worker_counted, timeout=20, message=output)
    worker = scrape(ports["worker"])
    assert total(worker, "dramatiq_messages_total", actor_name="conversations.answer_backlog") >= 1  # coalesced
    assert total(worker, "dramatiq_message_duration_milliseconds_count", queue_name="inbound") >= 1
    assert total(worker, "wecomdesk_inbound_stage_total", tenant="alpha", stage="processed") >= 4
    assert total(worker, "wecomdesk_delivery_seconds_count", tenant="alpha") == 4  # one first reply each
    assert total(worker, "wecomdesk_wecom_token_fetches_total", tenant="alpha", errcode="0") >= 1
    assert total(worker, "wecomdesk_outcomes_total", tenant="beta") == 0  # nothing of beta's was recorded

    # The web's endpoint: what both gunicorn workers recorded, added up from the multiprocess directory.
    web = scrape(ports["web"])
    assert total(web, "wecomdesk_inbound_stage_total", tenant="alpha", stage="received") == 4
    assert total(web, "django_http_responses_total_by_status_total", status="200") >= 4

    # The scheduler's endpoint: the health gauges of the leader, once a sweep taken after this traffic
    # settled is served (a sweep taken while the replies were still on their way shows them pending).
    def settled() -> bool:
        scheduler = scrape(ports["scheduler"])
        return (scheduler.get(("wecomdesk_inbound_waiting", frozenset({("tenant", "alpha")}))) == 0
                and scheduler.get(("wecomdesk_outbound_rows", frozenset({("tenant", "alpha"), ("state", "pending")})))
                == 0)

    wait_until(settled, timeout=20, message=output)
    scheduler = scrape(ports["scheduler"])
    assert scheduler[("wecomdesk_scheduler_leader", frozenset())] == 1
    assert scheduler[("wecomdesk_outbound_rows", frozenset({("tenant", "alpha"), ("state", "dead")}))] == 0
    assert ("wecomdesk_dramatiq_queue_length", frozenset({("queue", "inbound")})) in scheduler
    assert ("wecomdesk_agents_online", frozenset({("tenant", "beta")})) in scheduler
