"""The process's Redis clients: one connection pool per process and Redis URL, and the `limits` rate limiter on it.

Every module that talks to Redis for its own state (rate-limit windows, breaker state, tokens,
presence, progress, scheduler leadership) takes its client here, so timeouts are set once and a
process holds one pool per URL instead of one per module. The channel layer and the Dramatiq
broker keep their own clients (their libraries build them); `config/health.py` keeps its probe,
which checks arbitrary URLs with its own shorter timeouts on purpose. With REDIS_SENTINELS set the client
is Sentinel-managed (config/redis_sentinel.py): a URL then only gives the db number and password, and the
master is whichever server the Sentinels name.

The timeouts are short because every command we send is O(1) or a short Lua script (well under
a millisecond): a second without an answer is already an outage, and Redis may be lost at any
moment (docs/DESIGN_RULES.md), so a caller must get a RedisError it can handle (the breaker fails open, a
job retries) rather than a worker thread hanging on a dead socket. The circuit breaker needed
exactly these bounds before this module existed (connect 1 s, read 2 s), and no caller needs
longer: nothing here blocks server-side (redis-py's `Lock.acquire` polls with client-side sleeps).
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError
from redis.retry import Retry

from config import redis_sentinel

CONNECT_TIMEOUT_SECONDS = 1.0
COMMAND_TIMEOUT_SECONDS = 2.0
# One immediate retry: a pooled connection that Redis closed (restart, idle timeout) costs no error,
# and a real outage still surfaces after two attempts. A retried write may count twice (a timeout
# after Redis ran it): for a rate-limit window that admits less, never more.
RETRIES = 1
# Under Sentinel a failover is expected: the dead master refuses connections until the Sentinels agree it is
# down (REDIS_SENTINEL down-after-milliseconds) and promote a replica. A few retries with back-off (0.1 s,
# 0.2 s, 0.4 s) ride out the last moments of that switch; a longer one surfaces as the RedisError callers
# already handle. ReadOnlyError: a demoted master that came back answers READONLY (redis-py's
# Sentinel-managed connection turns that into a ConnectionError too; this catches it if it does not).
SENTINEL_RETRIES = 3
SENTINEL_RETRY_ERRORS = (ConnectionError, TimeoutError, ReadOnlyError)


def redis_client(url: str | None = None) -> redis.Redis:
    """The shared client for `url` (default: settings.REDIS_URL), bytes responses.

    Bytes, not decoded strings: pybreaker's CircuitRedisStorage decodes values itself and breaks
    with `decode_responses=True`, and one pool cannot serve both.
    """
    return _client_for(url or settings.REDIS_URL)


@cache
def _client_for(url: str) -> redis.Redis:
    # Cached per URL, so a test that points settings.REDIS_URL elsewhere gets a client for that
    # URL. One pool per process: redis-py's pool notices a fork (pid check) and opens new
    # connections in the child rather than sharing the parent's sockets.
    if settings.REDIS_SENTINEL is not None:
        retry = Retry(ExponentialBackoff(cap=0.4, base=0.1), SENTINEL_RETRIES, supported_errors=SENTINEL_RETRY_ERRORS)
        return redis_sentinel.master_client(url, settings.REDIS_SENTINEL, retry=retry,
                                            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                            socket_timeout=COMMAND_TIMEOUT_SECONDS)
    return redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                                socket_timeout=COMMAND_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), RETRIES))


def rate_limiter() -> MovingWindowRateLimiter:
    """The `limits` moving-window limiter over settings.REDIS_URL, on the shared client's pool."""
    return _rate_limiter_for(settings.REDIS_URL)


@cache
def _rate_limiter_for(url: str) -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(storage_from_string(url, connection_pool=redis_client(url).connection_pool))

