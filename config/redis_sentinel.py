"""Redis through Sentinel: every Redis user of the project finds the current master by asking the Sentinels.

With `REDIS_SENTINELS=host:port,host:port,host:port` (and `REDIS_SENTINEL_MASTER`, the name the Sentinels
monitor, `mymaster` by default; `REDIS_SENTINEL_PASSWORD` when the Sentinels require one), a `redis://` URL
(REDIS_URL, and BROKER_URL when it is Redis) no longer names a server: its host and port are ignored, its db
number, user name and password apply to whichever server is the master. Without REDIS_SENTINELS nothing
changes: the URLs are used as they are.

Each library gets its own kind of Sentinel-managed connection pool, built here so the rule lives in one place:
    Django's cache           `cache_location()`: a pool class for RedisCache's OPTIONS
    the Channels layer       `channel_layer_host()`: channels_redis's own Sentinel host entry
    the Dramatiq broker      `dramatiq_broker()`: `SentinelRedisBroker`, a RedisBroker on a master client
    our own clients          `master_client()`: tenants/redis.py (locks, limits, breaker, presence...)
                             and config/health.py's probe

A Sentinel-managed connection asks the Sentinels for the master's address each time it connects, and turns
the READONLY answer of a demoted master into a ConnectionError; so after a failover a client reconnects to the
promoted replica by itself: the command that met the dead master fails (or is retried by the caller's
Retry), the next connection goes to the new one. The database stays the source of truth for everything a
lost Redis write could cost (docs/DESIGN_RULES.md): an enqueue lost in the switch is re-sent by the
scheduler's sweeper, an answer is sent once because the outbound ledger says so, not because of a Redis key.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from config import env
from config.broker_polling import PacedRedisBroker

DEFAULT_MASTER = "mymaster"
# Asking a Sentinel is one short round trip: a Sentinel that does not answer within this is skipped for the next.
SENTINEL_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class SentinelSettings:
    sentinels: tuple[tuple[str, int], ...]
    master: str = DEFAULT_MASTER
    password: str = ""  # the Sentinels' own (requirepass in sentinel.conf), not the master's


def parse_sentinels(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` as (host, port) pairs; ImproperlyConfigured names the entry it cannot read."""
    pairs = []
    for entry in (item.strip() for item in value.split(",")):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"REDIS_SENTINELS: {entry!r} is not host:port")
        pairs.append((host.strip("[]"), int(port)))  # [::1]:26379 too
    if not pairs:
        raise ImproperlyConfigured("REDIS_SENTINELS is set but names no Sentinel")
    return tuple(pairs)


def from_env() -> SentinelSettings | None:
    """The Sentinel settings of the environment, None when REDIS_SENTINELS is unset or empty."""
    value = env.get("REDIS_SENTINELS", "") or ""
    if not value.strip():
        return None
    return SentinelSettings(sentinels=parse_sentinels(value),
                            master=env.get("REDIS_SENTINEL_MASTER") or DEFAULT_MASTER,
                            password=env.get("REDIS_SENTINEL_PASSWORD") or "")


def _master_kwargs(url: str) -> dict:
    """What of a redis:// URL still applies under Sentinel: the db number and the credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ImproperlyConfigured(f"with REDIS_SENTINELS a Redis URL must be redis:// or rediss://, not {parts.scheme}://")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ImproperlyConfigured(f"Redis URL path must be a db number, not {path!r}")
    kwargs: dict = {"db": int(path or 0)}
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.scheme == "rediss":
        kwargs["ssl"] = True
    return kwargs


def _sentinel_kwargs(settings: SentinelSettings) -> dict:
    kwargs = {"socket_timeout": SENTINEL_TIMEOUT_SECONDS, "socket_connect_timeout": SENTINEL_TIMEOUT_SECONDS}
    if settings.password:
        kwargs["password"] = settings.password
    return kwargs


def _sentinel(settings: SentinelSettings) -> Sentinel:
    # Connections to the Sentinels carry only their own timeouts and password, never the master's credentials.
    # No retries: redis-py's default retries a Sentinel that does not answer with back-off (seconds), where the
    # next Sentinel of the list is the better try, and a probe must answer now.
    return Sentinel(list(settings.sentinels), sentinel_kwargs={**_sentinel_kwargs(settings),
                                                               "retry": Retry(NoBackoff(), 0)})


def master_pool(url: str, settings: SentinelSettings, **connection_kwargs) -> SentinelConnectionPool:
    """A pool of connections to the current master of `settings.master`, with `url`'s db and credentials."""
    return SentinelConnectionPool(settings.master, _sentinel(settings),
                                  **{**_master_kwargs(url), **connection_kwargs})


def master_client(url: str, settings: SentinelSettings, **connection_kwargs) -> redis.Redis:
    """A client of the current master (redis-py's Sentinel-managed connections); see the module docstring."""
    return redis.Redis(connection_pool=master_pool(url, settings, **connection_kwargs))


# -- Django's cache ------------------------------------------------------------------------------------


class SentinelCachePool:
    """RedisCache's `pool_class`: Django builds its pool with `pool_class.from_url(LOCATION, **OPTIONS)`."""

    @classmethod
    def from_url(cls, url: str, *, sentinels, master: str, sentinel_password: str = "", **connection_kwargs):
        settings = SentinelSettings(sentinels=tuple(tuple(pair) for pair in sentinels), master=master,
                                    password=sentinel_password)
        return master_pool(url, settings, **connection_kwargs)


def cache_location(url: str, settings: SentinelSettings | None) -> dict:
    """LOCATION (and OPTIONS under Sentinel) of a django.core.cache.backends.redis.RedisCache."""
    if settings is None:
        return {"LOCATION": url}
    _master_kwargs(url)  # refuse a URL Sentinel cannot use now, not at the first cache call
    return {"LOCATION": url, "OPTIONS": {
        "pool_class": f"{__name__}.SentinelCachePool", "sentinels": [list(pair) for pair in settings.sentinels],
        "master": settings.master, "sentinel_password": settings.password}}


# -- the Channels layer --------------------------------------------------------------------------------


def channel_layer_host(url: str, settings: SentinelSettings | None) -> str | dict:
    """One entry of channels_redis's `hosts`: the URL, or its Sentinel form (master_name + sentinels)."""
    if settings is None:
        return url
    return {"master_name": settings.master, "sentinels": list(settings.sentinels),
            "sentinel_kwargs": _sentinel_kwargs(settings), **_master_kwargs(url)}


# -- the Dramatiq broker -------------------------------------------------------------------------------


# The broker's connections: a second to connect; a command (its Lua scripts are short) has 5 s.
BROKER_CONNECT_TIMEOUT_SECONDS = 2.0
BROKER_COMMAND_TIMEOUT_SECONDS = 5.0


class SentinelRedisBroker(PacedRedisBroker):
    """Dramatiq's RedisBroker (its queues polled as config/broker_polling.py paces them) on a Sentinel-managed
    client. A worker's consumer that meets the dead master raises ConnectionClosed, and Dramatiq's worker reopens
    it 3 s later: on the new master."""

    def __init__(self, *, url: str, sentinels, master: str, sentinel_password: str = "", **options):
        settings = SentinelSettings(sentinels=tuple(tuple(pair) for pair in sentinels), master=master,
                                    password=sentinel_password)
        client = master_client(url, settings, socket_connect_timeout=BROKER_CONNECT_TIMEOUT_SECONDS,
                               socket_timeout=BROKER_COMMAND_TIMEOUT_SECONDS)
        super().__init__(client=client, **options)
        self.sentinel_settings = settings


def dramatiq_broker(url: str, settings: SentinelSettings | None, *, namespace: str) -> dict:
    """BROKER and OPTIONS of DRAMATIQ_BROKER for a redis:// broker URL."""
    if settings is None:
        return {"BROKER": "config.broker_polling.PacedRedisBroker", "OPTIONS": {"url": url, "namespace": namespace}}
    _master_kwargs(url)
    return {"BROKER": f"{__name__}.SentinelRedisBroker",
            "OPTIONS": {"url": url, "namespace": namespace, "sentinels": [list(pair) for pair in settings.sentinels],
                        "master": settings.master, "sentinel_password": settings.password}}
