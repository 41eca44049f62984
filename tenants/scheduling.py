"""Periodic jobs run by the scheduler process, once per tenant, by one active scheduler.

Apps register jobs with `@periodic(seconds=...)` in a module named `schedule`
(autodiscovered). A job runs inside each active tenant's schema and should only
enqueue work (fast); the worker does the work. Leadership is a Redis lock with a
TTL, so a crashed leader is replaced within LEADER_TTL_SECONDS.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.utils.module_loading import autodiscover_modules
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.keys import redis_key

logger = logging.getLogger("tenants.scheduler")
LEADER_TTL_SECONDS = 15


@dataclass
class PeriodicJob:
    name: str
    seconds: float
    func: Callable[[], None]
    last_run: float = field(default=0.0)

    def due(self, now: float) -> bool:
        return now - self.last_run >= self.seconds


REGISTRY: dict[str, PeriodicJob] = {}


def periodic(*, seconds: float):
    def register(func):
        name = f"{func.__module__}.{func.__name__}"
        REGISTRY[name] = PeriodicJob(name=name, seconds=seconds, func=func)
        return func

    return register


def run_for_each_tenant(job: PeriodicJob) -> int:
    """Run one job in every active tenant's schema; a failure in one tenant does not stop the others."""
    from tenants.models import Tenant

    ran = 0
    with schema_context(get_public_schema_name()):
        slugs = list(Tenant.objects.filter(is_active=True)
                     .exclude(schema_name=get_public_schema_name())
                     .values_list("schema_name", flat=True))
    for slug in slugs:
        try:
            with schema_context(slug):
                job.func()
            ran += 1
        except Exception:
            logger.exception("scheduler.job_failed job=%s tenant=%s", job.name, slug)
    return ran


class Scheduler:
    def __init__(self, *, tick_seconds: float = 1.0):
        autodiscover_modules("schedule")
        self.tick_seconds = tick_seconds
        self.identity = uuid.uuid4().hex
        self.redis = redis.Redis.from_url(settings.REDIS_URL)
        self.leader_key = redis_key("scheduler", "leader", schema=get_public_schema_name())

    def is_leader(self) -> bool:
        """Take or renew leadership; True while this process holds it."""
        if self.redis.set(self.leader_key, self.identity, nx=True, ex=LEADER_TTL_SECONDS):
            return True
        if self.redis.get(self.leader_key) == self.identity.encode():
            self.redis.expire(self.leader_key, LEADER_TTL_SECONDS)
            return True
        return False

    def tick(self) -> list[str]:
        if not self.is_leader():
            return []
        now = time.monotonic()
        ran = []
        for job in REGISTRY.values():
            if job.due(now):
                job.last_run = now
                run_for_each_tenant(job)
                ran.append(job.name)
        return ran

    def release(self) -> None:
        if self.redis.get(self.leader_key) == self.identity.encode():
            self.redis.delete(self.leader_key)

    def run_forever(self, should_stop: Callable[[], bool]) -> None:
        logger.info("scheduler.started jobs=%s", sorted(REGISTRY))
        try:
            while not should_stop():
                try:
                    self.tick()
                except redis.RedisError:
                    logger.warning("scheduler.redis_unavailable; retrying")
                time.sleep(self.tick_seconds)
        finally:
            self.release()
