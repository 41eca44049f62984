"""Three-tier rate limits (customer, tenant, platform) as moving windows in Redis via `limits`.

A customer over their limit is answered once per window with the tenant's notice;
the tenant and platform tiers never drop work, they defer it (`Deferred`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.db import connection
from limits import RateLimitItemPerSecond, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from conversations.models import Contact, DeskSettings
from tenants.keys import redis_key


class Deferred(Exception):
    """Over the tenant or platform limit: try again after `retry_after` seconds."""

    def __init__(self, tier: str, retry_after: float):
        super().__init__(f"{tier} rate limit reached; retry in {retry_after:.1f}s")
        self.tier = tier
        self.retry_after = retry_after


@dataclass(frozen=True)
class CustomerVerdict:
    allowed: bool
    send_notice: bool = False


@cache
def _limiter() -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(settings.REDIS_URL))


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _window(count: int, seconds: int):
    return RateLimitItemPerSecond(count, seconds)


@dataclass(frozen=True)
class Admission:
    """How many of the wanted messages the shared tiers admit now; the tier holding back the rest."""

    count: int
    tier: str = ""
    retry_after: float = 0.0


def admit_shared_tiers(*, desk: DeskSettings, wanted: int) -> Admission:
    """Count up to `wanted` messages against the platform and tenant tiers, as many as both admit.

    Nothing is counted for the messages not admitted: they are deferred, never dropped.
    """
    schema = connection.schema_name
    tiers = [("platform", parse(settings.GLOBAL_RATE_LIMIT), ("public", "platform")),
             ("tenant", _window(desk.tenant_rate_limit, desk.tenant_rate_window_seconds), (schema, "tenant"))]
    admitted, holding = wanted, None
    for tier, item, identifiers in tiers:
        stats = _limiter().get_window_stats(item, *identifiers)
        if stats.remaining < admitted:
            admitted, holding = max(stats.remaining, 0), (tier, stats)
    if admitted:
        for _, item, identifiers in tiers:
            _limiter().hit(item, *identifiers, cost=admitted)
    if holding is None:
        return Admission(count=admitted)
    tier, stats = holding
    return Admission(count=admitted, tier=tier, retry_after=max(stats.reset_time - time.time(), 0.2))


def check_customer(*, contact: Contact, desk: DeskSettings) -> CustomerVerdict:
    """Count this message against the customer; over the limit, say whether this is the window's one notice."""
    item = _window(desk.user_rate_limit, desk.user_rate_window_seconds)
    identifiers = (connection.schema_name, "contact", str(contact.pk))
    if _limiter().hit(item, *identifiers):
        return CustomerVerdict(allowed=True)
    notice_key = redis_key("rate-notice", contact.pk)
    first = bool(_redis().set(notice_key, 1, nx=True, ex=desk.user_rate_window_seconds))
    return CustomerVerdict(allowed=False, send_notice=first)
