"""The scheduler runs each job in every active tenant's schema, with one leader at a time."""

import pytest
from django.db import connection

from tenants import scheduling
from tenants.models import Tenant
from tenants.scheduling import LEADER_TTL_SECONDS, PeriodicJob, Scheduler, run_for_each_tenant
from testing.waiting import wait_until

PROBE = "probe"
SHORT_TTL_SECONDS = 0.3


@pytest.fixture
def probe_runs(monkeypatch) -> list[str]:
    """The project's jobs replaced by one probe job, due at every tick; the list of its runs."""
    Scheduler()  # autodiscovers the apps' jobs into the real registry before it is swapped out
    runs: list[str] = []
    monkeypatch.setattr(scheduling, "REGISTRY", {PROBE: PeriodicJob(PROBE, 0, lambda: None)})
    monkeypatch.setattr(scheduling, "run_for_each_tenant", lambda job: runs.append(job.name) or 1)
    return runs


@pytest.fixture
def make_scheduler(redis_client, probe_runs):
    """Schedulers competing for the one leader lock, as scheduler processes do."""
    made: list[Scheduler] = []

    def make(**kwargs) -> Scheduler:
        made.append(Scheduler(**kwargs))
        return made[-1]

    redis_client.delete(Scheduler().leader_key)
    yield make
    for scheduler in made:
        scheduler.release()
    redis_client.delete(Scheduler().leader_key)


@pytest.fixture
def two_schedulers(make_scheduler):
    return make_scheduler(), make_scheduler()


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


def test_only_one_scheduler_leads(two_schedulers, redis_client):
    first, second = two_schedulers
    assert first.tick() == [PROBE]
    assert second.tick() == []
    assert redis_client.get(first.leader_key) == first.identity.encode()

    redis_client.pexpire(first.leader_key, 500)
    assert first.tick() == [PROBE]  # renewal resets the TTL
    assert redis_client.pttl(first.leader_key) > (LEADER_TTL_SECONDS - 1) * 1000
    assert second.tick() == []


def test_a_follower_takes_over_when_the_leader_stops(two_schedulers, redis_client):
    first, second = two_schedulers
    assert first.tick() == [PROBE]
    first.release()
    assert redis_client.exists(first.leader_key) == 0
    assert second.tick() == [PROBE]
    assert first.tick() == []


def test_a_follower_takes_over_after_the_leaders_lock_expires(make_scheduler, redis_client):
    crashed, follower = make_scheduler(leader_ttl_seconds=SHORT_TTL_SECONDS), make_scheduler()
    assert crashed.tick() == [PROBE]
    assert follower.tick() == []

    # The leader stops renewing (it crashed or hangs): once the TTL runs out the follower leads.
    wait_until(follower.is_leader, timeout=5, message="the follower to take the expired lock")
    assert follower.tick() == [PROBE]
    assert redis_client.get(follower.leader_key) == follower.identity.encode()
    # The old leader, back, finds the lock taken and runs nothing.
    assert crashed.tick() == []
    assert crashed.leading is False


def test_a_leader_whose_lock_was_taken_stops_running_jobs(two_schedulers, redis_client):
    leader, _ = two_schedulers
    assert leader.tick() == [PROBE]
    redis_client.set(leader.leader_key, "another-scheduler", px=60_000)

    assert leader.tick() == []
    assert leader.tick() == []
    # It neither renewed (to its own TTL) nor removed the other scheduler's lock.
    assert redis_client.get(leader.leader_key) == b"another-scheduler"
    assert redis_client.pttl(leader.leader_key) > LEADER_TTL_SECONDS * 1000
    leader.release()
    assert redis_client.get(leader.leader_key) == b"another-scheduler"


def test_a_leader_whose_lock_vanished_stands_down_for_a_tick(two_schedulers, redis_client):
    first, second = two_schedulers
    assert first.tick() == [PROBE]
    redis_client.delete(first.leader_key)

    assert first.tick() == []  # lost: another scheduler may be leading now
    assert second.tick() == [PROBE]  # competing again from the next tick, only one wins
    assert first.tick() == []


def test_stopping_releases_leadership(two_schedulers, probe_runs, redis_client):
    leader, follower = two_schedulers
    leader.tick_seconds = 0
    checks = iter([False, False, True])  # two ticks, then stop

    leader.run_forever(lambda: next(checks))
    assert probe_runs == [PROBE, PROBE]
    assert redis_client.exists(leader.leader_key) == 0
    assert follower.tick() == [PROBE]


def test_a_connection_lost_under_a_tick_is_replaced_not_fatal(make_scheduler, monkeypatch, committed_db):
    """A PostgreSQL failover kills the scheduler's connection: that tick fails, the scheduler keeps running and the
    next tick reaches the database again (bench/chaos.py saw the process exit with status 1 instead)."""
    seen: list[str] = []
    probe = PeriodicJob(PROBE, 0, lambda: seen.append(connection.schema_name))
    monkeypatch.setattr(scheduling, "REGISTRY", {PROBE: probe})
    monkeypatch.setattr(scheduling, "run_for_each_tenant", run_for_each_tenant)  # the real one, which reads tenants
    leader = make_scheduler(tick_seconds=0)
    connection.ensure_connection()
    killer = connection.copy()
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    finally:
        killer.close()
    checks = iter([False, False, True])  # two ticks, then stop

    leader.run_forever(lambda: next(checks))
    assert "alpha" in seen and "beta" in seen  # the second tick ran the job in every tenant
