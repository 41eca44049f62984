"""The scheduler runs each job in every active tenant's schema, with one leader at a time."""

import pytest
from django.db import connection

from tenants.models import Tenant
from tenants.scheduling import PeriodicJob, Scheduler, run_for_each_tenant


@pytest.fixture
def scheduler(redis_client):
    first, second = Scheduler(), Scheduler()
    redis_client.delete(first.leader_key)
    yield first, second
    first.release()
    second.release()


def test_job_runs_once_per_active_tenant_in_its_schema(committed_db):
    seen = []
    Tenant.objects.filter(schema_name="beta").update(is_active=False)
    try:
        ran = run_for_each_tenant(PeriodicJob("probe", 1, lambda: seen.append(connection.schema_name)))
    finally:
        Tenant.objects.filter(schema_name="beta").update(is_active=True)
    assert "alpha" in seen and "beta" not in seen and "public" not in seen
    assert ran == len(seen)


def test_a_failing_tenant_does_not_stop_the_others(committed_db):
    seen = []

    def job():
        if connection.schema_name == "alpha":
            raise RuntimeError("boom")
        seen.append(connection.schema_name)

    run_for_each_tenant(PeriodicJob("probe", 1, job))
    assert "beta" in seen


def test_only_one_scheduler_leads(scheduler):
    first, second = scheduler
    assert first.is_leader() is True
    assert second.is_leader() is False
    assert first.is_leader() is True  # renewal
    first.release()
    assert second.is_leader() is True
