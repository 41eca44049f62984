"""Periodic jobs run by the scheduler process, once per tenant, by one active scheduler.

Apps register jobs with `@periodic(seconds=...)` in a module named `schedule`
(autodiscovered). A job runs inside each active tenant's schema and should only
enqueue work (fast); the worker does the work. Leadership is a Redis lock with a
TTL (redis-py's `Lock`), so a crashed leader is replaced within LEADER_TTL_SECONDS.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from django.db import DatabaseError, close_old_connections
from django.utils.module_loading import autodiscover_modules
from django_tenants.utils import get_public_schema_name, schema_context
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from structlog.contextvars import bound_contextvars

from tenants.keys import redis_key
from tenants.log_context import new_id
from tenants.metrics import HEALTH
from tenants.models import Tenant
from tenants.redis import redis_client

logger = structlog.get_logger("tenants.scheduler")
LEADER_TTL_SECONDS = 15
T = TypeVar("T")


@dataclass
class PeriodicJob:
    name: str
    seconds: float
    func: Callable[[], None]
    last_run: float = field(default=0.0)
    # False: run once per tick in the public schema (platform-wide work, e.g. gauges over all tenants).
    per_tenant: bool = True

    def due(self, now: float) -> bool:
        return now - self.last_run >= self.seconds


REGISTRY: dict[str, PeriodicJob] = {}


def periodic(*, seconds: float, per_tenant: bool = True):
    def register(func):
        name = f"{func.__module__}.{func.__name__}"
        REGISTRY[name] = PeriodicJob(name=name, seconds=seconds, func=func, per_tenant=per_tenant)
        return func

    return register


def run_for_each_tenant(job: PeriodicJob) -> int:
    """Run one job in every active tenant's schema; a failure in one tenant does not stop the others."""
    ran = 0
    with schema_context(get_public_schema_name()):
        slugs = list(Tenant.objects.filter(is_active=True)
                     .exclude(schema_name=get_public_schema_name())
                     .values_list("schema_name", flat=True))
    for slug in slugs:
        # One run of the job in one tenant: its lines carry the job, the run and the tenant.
        with bound_contextvars(periodic_job=job.name, job_id=new_id(), tenant=slug):
            try:
                with schema_context(slug):
                    job.func()
                ran += 1
            except Exception:
                logger.exception("scheduler.job_failed")
    return ran


def active_tenant_schemas() -> list[str]:
    with schema_context(get_public_schema_name()):
        return list(Tenant.objects.filter(is_active=True).exclude(schema_name=get_public_schema_name())
                    .order_by("id").values_list("schema_name", flat=True))


def run_once(job: PeriodicJob) -> None:
    """Run a platform-wide job once, in the public schema; a failure is logged (the next tick retries)."""
    with bound_contextvars(periodic_job=job.name, job_id=new_id(), tenant=get_public_schema_name()):
        try:
            with schema_context(get_public_schema_name()):
                job.func()
        except Exception:
            logger.exception("scheduler.job_failed")


def collect_for_each_tenant(func: Callable[[], T]) -> dict[str, T]:
    """{schema: func()} over every active tenant, each call in its schema (for gauges computed across
    tenants by a platform-wide job); a tenant where it fails is logged and left out."""
    results: dict[str, T] = {}
    for schema in active_tenant_schemas():
        try:
            with schema_context(schema):
                results[schema] = func()
        except Exception:
            logger.exception("scheduler.collect_failed", collecting=getattr(func, "__qualname__", str(func)),
                             tenant=schema)
    return results


class Scheduler:
    """Runs the registered jobs while it leads; at most one scheduler leads at a time.

    Leadership is redis-py's `Lock` on `public:scheduler:leader`: taken without waiting, with a
    TTL, and renewed every tick by `reacquire()`, which resets the TTL only while the key still
    holds this scheduler's token (one Lua script, not a read and then an EXPIRE that could renew
    a lock another scheduler took in between). A tick longer than the TTL can lose leadership
    mid-tick; jobs only enqueue work, which is safe to run twice.
    """

    def __init__(self, *, tick_seconds: float = 1.0, leader_ttl_seconds: float = LEADER_TTL_SECONDS):
        autodiscover_modules("schedule")
        self.tick_seconds = tick_seconds
        self.identity = uuid.uuid4().hex
        self.leader_key = redis_key("scheduler", "leader", schema=get_public_schema_name())
        # thread_local=False: the token belongs to this scheduler, whichever thread ticks it.
        self._leadership = redis_client().lock(self.leader_key, timeout=leader_ttl_seconds, blocking=False,
                                               thread_local=False)
        self.leading = False

    def is_leader(self) -> bool:
        """Renew leadership if held, else try to take it; True while this scheduler leads.

        A leader that finds its lock gone (expired, or taken by another scheduler) answers False
        for this tick, runs nothing, and competes for the lock again from the next tick like any
        follower: another scheduler may be leading now.
        """
        if self.leading:
            try:
                return self._leadership.reacquire()
            except LockNotOwnedError:
                self.leading = False
                logger.warning("scheduler.leadership_lost", identity=self.identity)
                return False
        self.leading = self._leadership.acquire(token=self.identity)
        if self.leading:
            logger.info("scheduler.leading", identity=self.identity)
        return self.leading

    def tick(self) -> list[str]:
        HEALTH.leader = self.is_leader()
        if not HEALTH.leader:
            HEALTH.clear()  # what this scheduler computed while it led is stale now: only the leader's is served
            return []
        now = time.monotonic()
        ran = []
        for job in REGISTRY.values():
            if job.due(now):
                job.last_run = now
                if job.per_tenant:
                    run_for_each_tenant(job)
                else:
                    run_once(job)
                ran.append(job.name)
        return ran

    def release(self) -> None:
        """Give leadership up (on stop), so a follower takes over at its next tick rather than after the TTL."""
        if not self.leading:
            return
        self.leading = False
        try:
            self._leadership.release()
        except LockError:
            pass  # already lost (expired or taken): nothing of ours to release

    def run_forever(self, should_stop: Callable[[], bool]) -> None:
        logger.info("scheduler.started", jobs=sorted(REGISTRY))
        try:
            while not should_stop():
                try:
                    self.tick()
                except RedisError:
                    logger.warning("scheduler.redis_unavailable")  # retried at the next tick
                except DatabaseError:
                    # The connection died under the tick (PostgreSQL failed over or restarted): drop it, so the next
                    # tick connects again and finds the new primary (config/database_url.py), instead of the
                    # process exiting (bench/chaos.py, postgres-failover).
                    logger.warning("scheduler.database_unavailable", exc_info=True)
                    close_old_connections()
                time.sleep(self.tick_seconds)
        finally:
            try:
                self.release()
            except RedisError:
                logger.warning("scheduler.release_failed")  # the lock expires within its TTL
