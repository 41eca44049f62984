"""Per-key request rate of the tenant API: a moving one-minute window in Redis (docs/API.md, "Throttling").

A key's window is its own (`<schema>/api-key/<id>`: the same key id in two tenants never shares one), its
rate the key's `throttle_per_minute`; a staff session has a window per user at API_STAFF_RATE_PER_MINUTE.
Over the rate DRF answers 429 `throttled` with `Retry-After`: the seconds until the oldest request of the
window leaves it. The windows are `limits`' moving windows on the project's Redis pool, as the message
path's rate limits (conversations/services/rate_limits.py). Redis may be lost at any moment
(docs/DESIGN_RULES.md): then the API fails open, unthrottled, rather than refusing every integration.
"""

from __future__ import annotations

import math
import time

import redis
import structlog
from django.conf import settings
from django.db import connection
from limits import RateLimitItemPerMinute
from rest_framework.throttling import BaseThrottle

from tenants.redis import rate_limiter

log = structlog.get_logger(__name__)


def _window(request) -> tuple[RateLimitItemPerMinute, tuple[str, ...]] | None:
    """The rate item and the window's identifiers of the request's caller; None for nobody (no window)."""
    api_key = getattr(request.user, "api_key", None)
    if api_key is not None:
        return RateLimitItemPerMinute(api_key.throttle_per_minute), (connection.schema_name, "api-key", str(api_key.pk))
    if request.user is not None and request.user.is_authenticated:
        return (RateLimitItemPerMinute(settings.API_STAFF_RATE_PER_MINUTE),
                (connection.schema_name, "api-user", str(request.user.pk)))
    return None


class ApiKeyRateThrottle(BaseThrottle):
    """REST_FRAMEWORK's DEFAULT_THROTTLE_CLASSES: every API view; runs after authentication and permissions."""

    def __init__(self):
        self.retry_after: float | None = None

    def allow_request(self, request, view):
        window = _window(request)
        if window is None:
            return True
        item, identifiers = window
        try:
            if rate_limiter().hit(item, *identifiers):
                return True
            reset_at, _ = rate_limiter().get_window_stats(item, *identifiers)
        except redis.RedisError as exc:
            log.warning("api.throttle_unavailable", error=repr(exc))
            return True
        self.retry_after = max(reset_at - time.time(), 1.0)
        return False

    def wait(self):
        # Whole seconds in Retry-After (DRF rounds up): waiting that long always finds a free place.
        return math.ceil(self.retry_after) if self.retry_after is not None else None
