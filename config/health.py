"""Liveness and readiness probes: /healthz (process alive), /readyz (dependencies reachable)."""

from __future__ import annotations

import socket
from functools import cache
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from redis.backoff import NoBackoff
from redis.retry import Retry

from config import redis_sentinel

PROBE_TIMEOUT_SECONDS = 2


@cache
def _redis(url: str) -> redis.Redis:
    if settings.REDIS_SENTINEL is not None:
        # The master the Sentinels name now: no Sentinel answering, or none knowing a master, is not ready
        # (MasterNotFoundError), and neither is a master that is down but not yet replaced.
        # No retries (redis-py's default retries a MasterNotFoundError for about 5 s): the probe answers now.
        return redis_sentinel.master_client(url, settings.REDIS_SENTINEL, socket_timeout=PROBE_TIMEOUT_SECONDS,
                                            socket_connect_timeout=PROBE_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0))
    return redis.Redis.from_url(url, socket_timeout=PROBE_TIMEOUT_SECONDS,
                                socket_connect_timeout=PROBE_TIMEOUT_SECONDS)


def _check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    _redis(settings.REDIS_URL).ping()


def _check_broker() -> None:
    if settings.BROKER_URL.startswith("amqp"):
        parts = urlsplit(settings.BROKER_URL)
        with socket.create_connection((parts.hostname, parts.port or 5672), PROBE_TIMEOUT_SECONDS):
            return
    _redis(settings.BROKER_URL).ping()


CHECKS = {"postgres": _check_postgres, "redis": _check_redis, "broker": _check_broker}


@never_cache
def healthz(request):
    return HttpResponse("ok", content_type="text/plain")


@never_cache
def readyz(request):
    results = {}
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; say which.
            # The class name only: exception text may carry URLs with credentials.
            results[name] = f"unavailable ({type(exc).__name__})"
    failing = [name for name, result in results.items() if result != "ok"]
    body = {"status": "unavailable" if failing else "ok", "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
