"""Keys, throttling and the audit log through the real web server (uvicorn, the ASGI app): what the test
client shows must also hold in the process integrators talk to."""

from __future__ import annotations

import httpx
import pytest
from django_tenants.utils import schema_context
from limits import RateLimitItemPerMinute

from conversations.models import ApiKey, AuditLogEntry, FallbackScript
from conversations.services.api_keys import create_api_key
from tenants.redis import rate_limiter

pytestmark = pytest.mark.live


@pytest.fixture
def live_key(committed_db):
    """A committed key of alpha, 3 requests a minute, scopes for fallback scripts only; removed afterwards."""
    with schema_context("alpha"):
        row, key = create_api_key(name="live CRM", scopes=["settings:write"], throttle_per_minute=3)
    yield key
    rate_limiter().clear(RateLimitItemPerMinute(3), "alpha", "api-key", str(row.pk))
    with schema_context("alpha"):
        AuditLogEntry.objects.filter(actor="api-key:live CRM").delete()
        FallbackScript.objects.filter(name="live 物流").delete()
        ApiKey.objects.filter(pk=row.pk).delete()


def test_scopes_throttling_and_audit_through_the_web_server(live_server_url, live_key):
    headers = {"Authorization": f"Api-Key {live_key}", "Accept-Language": "en"}
    with httpx.Client(base_url=f"{live_server_url}/t/alpha/api", headers=headers, timeout=10) as api:
        created = api.post("/fallback-scripts/", json={"name": "live 物流", "text": "请稍候"})
        assert created.status_code == 201, created.text
        refused = api.get("/knowledge/")
        assert (refused.status_code, refused.json()) == (
            403, {"detail": "This API key lacks the scope knowledge:read.", "code": "permission_denied"})
        # The refusal was not counted (permissions come before the throttle): two more fit in the minute.
        assert [api.get("/fallback-scripts/").status_code for _ in range(2)] == [200, 200]
        throttled = api.get("/fallback-scripts/")
    assert throttled.status_code == 429 and throttled.json()["code"] == "throttled"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60

    with schema_context("alpha"):
        (entry,) = AuditLogEntry.objects.filter(actor="api-key:live CRM")
    assert (entry.action, entry.target) == ("POST /api/fallback-scripts/", f"fallbackscript:{created.json()['id']}")
    assert entry.request_id == created.headers["X-Request-ID"]
