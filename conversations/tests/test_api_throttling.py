"""Per-key throttling of the tenant API in Redis: 429 `throttled` with Retry-After over the key's rate, one
window per tenant and key (the same key id in two tenants shares nothing), staff per user, and the API
still answering when Redis is gone."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context
from limits import RateLimitItemPerMinute

from conversations.models import ApiKey
from conversations.scopes import ALL_SCOPES
from conversations.services.api_keys import create_api_key
from tenants.redis import rate_limiter
from testing.accounts import api_client, staff_client

pytestmark = pytest.mark.django_db

SHARED_KEY_ID = 4_242_424


def _clear_window(schema: str, kind: str, ident: int, rate: int) -> None:
    rate_limiter().clear(RateLimitItemPerMinute(rate), schema, kind, str(ident))


@pytest.fixture
def same_key_id_in_both_tenants(tenant_a, tenant_b):
    """A key of alpha and a key of beta with the same primary key, each at 3 requests a minute."""
    keys = {}
    for schema in ("alpha", "beta"):
        with schema_context(schema):
            row, keys[schema] = create_api_key(name="busy", scopes=ALL_SCOPES, throttle_per_minute=3)
            ApiKey.objects.filter(pk=row.pk).update(id=SHARED_KEY_ID)
        _clear_window(schema, "api-key", SHARED_KEY_ID, 3)
    yield keys
    for schema in ("alpha", "beta"):
        _clear_window(schema, "api-key", SHARED_KEY_ID, 3)


def test_over_its_rate_a_key_gets_429_with_retry_after(same_key_id_in_both_tenants):
    alpha = api_client(same_key_id_in_both_tenants["alpha"])
    assert [alpha.get("/t/alpha/api/fallback-scripts/").status_code for _ in range(3)] == [200, 200, 200]

    refused = alpha.get("/t/alpha/api/fallback-scripts/", HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled" and refused.json()["detail"].startswith("Request was throttled.")
    assert 1 <= int(refused["Retry-After"]) <= 60
    # A write is throttled too, and refused before it changes anything.
    write = alpha.post("/t/alpha/api/fallback-scripts/", {"name": "x", "text": "y"}, content_type="application/json")
    assert write.status_code == 429


def test_the_same_key_id_in_another_tenant_has_its_own_window(same_key_id_in_both_tenants):
    alpha = api_client(same_key_id_in_both_tenants["alpha"])
    beta = api_client(same_key_id_in_both_tenants["beta"])
    for _ in range(3):
        assert alpha.get("/t/alpha/api/fallback-scripts/").status_code == 200
    assert alpha.get("/t/alpha/api/fallback-scripts/").status_code == 429

    assert [beta.get("/t/beta/api/fallback-scripts/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_the_rate_is_the_keys_own(tenant_a):
    with schema_context("alpha"):
        slow_row, slow = create_api_key(name="slow", throttle_per_minute=1)
        fast_row, fast = create_api_key(name="fast", throttle_per_minute=5)
    assert [api_client(slow).get("/t/alpha/api/").status_code for _ in range(2)] == [200, 429]
    assert [api_client(fast).get("/t/alpha/api/").status_code for _ in range(6)] == [200] * 5 + [429]
    _clear_window("alpha", "api-key", slow_row.pk, 1)
    _clear_window("alpha", "api-key", fast_row.pk, 5)


def test_staff_sessions_are_throttled_per_user(tenant_a, settings):
    settings.API_STAFF_RATE_PER_MINUTE = 2
    first = staff_client("alpha", username="throttled-one@alpha.test")
    second = staff_client("alpha", username="throttled-two@alpha.test")
    try:
        assert [first.get("/t/alpha/api/fallback-scripts/").status_code for _ in range(3)] == [200, 200, 429]
        assert second.get("/t/alpha/api/fallback-scripts/").status_code == 200
    finally:
        with schema_context("alpha"):
            for user in get_user_model().objects.filter(username__startswith="throttled-"):
                _clear_window("alpha", "api-user", user.pk, 2)


def test_without_redis_the_api_answers_unthrottled(tenant_a, settings):
    with schema_context("alpha"):
        _, key = create_api_key(name="no redis", throttle_per_minute=1)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: every command fails
    assert [api_client(key).get("/t/alpha/api/").status_code for _ in range(3)] == [200, 200, 200]
