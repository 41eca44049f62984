"""The scheduler's side of the metrics: platform-wide jobs run once per tick, only the leader serves health
gauges, and the `scheduler` command serves them over HTTP on its own port."""

from __future__ import annotations

import httpx
import pytest
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from tenants import scheduling
from tenants.metrics import HEALTH, HealthGauge
from tenants.scheduling import PeriodicJob, Scheduler, collect_for_each_tenant, run_once
from testing.processes import free_port
from testing.waiting import wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture
def leader_key(redis_client):
    key = Scheduler().leader_key
    redis_client.delete(key)
    yield key
    redis_client.delete(key)


def test_a_platform_job_runs_once_in_the_public_schema(committed_db):
    seen = []
    run_once(PeriodicJob("probe", 1, lambda: seen.append(connection.schema_name), per_tenant=False))
    assert seen == ["public"]


def test_collect_for_each_tenant_keeps_going_past_a_failing_tenant(committed_db):
    def schema_or_fail():
        if connection.schema_name == "alpha":
            raise RuntimeError("boom")
        return connection.schema_name

    results = collect_for_each_tenant(schema_or_fail)
    assert "alpha" not in results and results["beta"] == "beta"


def test_only_the_leader_serves_health_gauges(leader_key, monkeypatch, committed_db):
    gauge = HealthGauge("probe_leader_only", "probe", ["tenant"])
    monkeypatch.setattr(scheduling, "REGISTRY", {"probe": PeriodicJob(
        "probe", 0, lambda: gauge.publish({"alpha": 1}), per_tenant=False)})
    leader, follower = Scheduler(), Scheduler()
    try:
        assert leader.tick() == ["probe"]
        assert HEALTH.leader is True and gauge.values == {("alpha",): 1}
        assert follower.tick() == []  # in a scheduler process of its own, it serves nothing stale
        assert HEALTH.leader is False and gauge.values == {}
    finally:
        leader.release()
        HEALTH.gauges.remove(gauge)


@pytest.mark.live  # runs `manage.py scheduler` in a process of its own
def test_the_scheduler_command_serves_health_gauges_on_its_port(start_process, leader_key):
    port = free_port()
    scheduler = start_process("scheduler", "scheduler", "--tick", "0.2", SCHEDULER_METRICS_PORT=str(port),
                              METRICS_HEALTH_SECONDS="0.5")

    def scraped() -> dict[str, float]:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        except httpx.HTTPError:
            return {}
        return {f"{s.name}{sorted(s.labels.items())}": s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    # Each app's health job publishes its own gauges, one after the other within a tick: wait for all of them.
    expected = ("wecomdesk_inbound_waiting[('tenant', 'alpha')]", "wecomdesk_tickets_waiting[('tenant', 'beta')]",
                "wecomdesk_dramatiq_queue_length[('queue', 'inbound')]")
    wait_until(lambda: set(expected) <= scraped().keys(), timeout=30,
               message=lambda: scheduler.output()[-2000:])
    samples = scraped()
    assert samples["wecomdesk_scheduler_leader[]"] == 1
    assert "wecomdesk_tickets_waiting[('tenant', 'beta')]" in samples
    assert "wecomdesk_dramatiq_queue_length[('queue', 'inbound')]" in samples
    assert samples["wecomdesk_health_updated_timestamp_seconds[]"] > 0
