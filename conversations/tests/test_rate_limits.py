"""The shared rate-limit tiers (platform, tenant): atomic admission under concurrency, partial rounds, keys.

No database: admission reads only the desk's limits (an unsaved DeskSettings here) and Redis.
"""

from __future__ import annotations

import threading

import pytest
from django.conf import settings
from django_tenants.utils import schema_context
from limits import parse

from conversations.models import DeskSettings
from conversations.services.rate_limits import Admission, _window, _window_key, admit_shared_tiers
from tenants.redis import rate_limiter
from testing.threads import run_in_threads

WINDOW_SECONDS = 60
ROUNDS = 24  # concurrent rounds, each wanting WANTED messages: far more than any limit below
WANTED = 3


@pytest.fixture
def clean_limits(redis_client):
    def clean():
        for key in redis_client.scan_iter("LIMITS*"):
            redis_client.delete(key)

    clean()
    yield
    clean()


def desk(limit: int) -> DeskSettings:
    return DeskSettings(tenant_rate_limit=limit, tenant_rate_window_seconds=WINDOW_SECONDS)


def tenant_window(schema: str, limit: int) -> str:
    return _window_key(_window(limit, WINDOW_SECONDS), schema, "tenant")


def platform_window() -> str:
    return _window_key(parse(settings.GLOBAL_RATE_LIMIT), "public", "platform")


def admit(schema: str, limit: int, wanted: int = WANTED) -> Admission:
    with schema_context(schema):
        return admit_shared_tiers(desk=desk(limit), wanted=wanted)


def admit_concurrently(rounds: list[tuple[str, int]]) -> list[Admission]:
    """Each (schema, tenant limit) admitted by its own thread, all released at once."""
    start = threading.Barrier(len(rounds), timeout=10)

    def round_in(schema: str, limit: int):
        def run() -> Admission:
            start.wait()
            return admit(schema, limit)
        return run

    return run_in_threads(*(round_in(schema, limit) for schema, limit in rounds))


def test_concurrent_rounds_never_pass_the_tenant_limit(clean_limits, redis_client):
    limit = 7
    results = admit_concurrently([("alpha", limit)] * ROUNDS)

    assert sum(r.count for r in results) == limit
    assert {r.tier for r in results if r.count < WANTED} == {"tenant"}
    # Counted exactly what was admitted, in both windows: a refused message is not counted.
    assert redis_client.llen(tenant_window("alpha", limit)) == limit
    assert redis_client.llen(platform_window()) == limit
    # The second tenant's window is its own: beta's rounds get their whole limit.
    assert [admit("beta", limit).count for _ in range(3)] == [3, 3, 1]
    assert admit("beta", limit).count == 0
    assert redis_client.llen(tenant_window("beta", limit)) == limit
    assert redis_client.llen(platform_window()) == 2 * limit


def test_concurrent_rounds_of_two_tenants_never_pass_the_platform_limit(clean_limits, redis_client, settings):
    settings.GLOBAL_RATE_LIMIT = "5/minute"
    tenant_limit = 100  # the tenant tier never holds back here
    rounds = [("alpha", tenant_limit), ("beta", tenant_limit)] * (ROUNDS // 2)
    results = admit_concurrently(rounds)

    assert sum(r.count for r in results) == 5
    assert {r.tier for r in results if r.count < WANTED} == {"platform"}
    assert redis_client.llen(platform_window()) == 5
    # Each tenant's window counted its own admitted messages and nothing of what the platform refused.
    admitted_alpha = sum(r.count for r, (schema, _) in zip(results, rounds, strict=True) if schema == "alpha")
    assert redis_client.llen(tenant_window("alpha", tenant_limit)) == admitted_alpha
    assert redis_client.llen(tenant_window("beta", tenant_limit)) == 5 - admitted_alpha


def test_a_round_admits_what_fits_and_defers_the_rest_uncounted(clean_limits, redis_client):
    assert admit("alpha", 3, wanted=1) == Admission(count=1)
    partial = admit("alpha", 3, wanted=5)
    assert (partial.count, partial.tier) == (2, "tenant")
    # The next place frees when the first message leaves the 60 s window.
    assert WINDOW_SECONDS - 1 < partial.retry_after <= WINDOW_SECONDS
    refused = admit("alpha", 3, wanted=2)
    assert (refused.count, refused.tier) == (0, "tenant")
    assert redis_client.llen(tenant_window("alpha", 3)) == 3
    assert redis_client.llen(platform_window()) == 3
    # The windows keep `limits`' layout: its own reader sees the same count.
    assert rate_limiter().get_window_stats(_window(3, WINDOW_SECONDS), "alpha", "tenant").remaining == 0


def test_a_round_the_platform_holds_back_is_not_counted_against_the_tenant(clean_limits, redis_client, settings):
    settings.GLOBAL_RATE_LIMIT = "2/minute"
    held = admit("alpha", 10, wanted=5)
    assert (held.count, held.tier) == (2, "platform")
    assert WINDOW_SECONDS - 1 < held.retry_after <= WINDOW_SECONDS
    assert redis_client.llen(tenant_window("alpha", 10)) == 2
    assert redis_client.llen(platform_window()) == 2


def test_when_both_tiers_hold_back_as_much_the_platform_is_reported(clean_limits, settings):
    settings.GLOBAL_RATE_LIMIT = "2/minute"
    tie = admit("alpha", 2, wanted=3)
    assert (tie.count, tie.tier) == (2, "platform")


def test_window_keys_carry_the_tenant_schema_or_public(clean_limits, redis_client):
    admit("alpha", 4, wanted=1)
    admit("beta", 4, wanted=1)
    keys = sorted(key.decode() for key in redis_client.scan_iter("LIMITS*"))
    assert keys == sorted([tenant_window("alpha", 4), tenant_window("beta", 4), platform_window()])
    assert [key.split("/")[1:3] for key in keys] == [["alpha", "tenant"], ["beta", "tenant"], ["public", "platform"]]
