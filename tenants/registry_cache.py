"""The tenants and domains that every request and job looks up, kept per process until the registry changes.

Every callback resolved its tenant with a query in the public schema (and the `SET search_path` to get there),
every job likewise. Here a process keeps the rows it found, for as long as a version number in Redis stays the
same; any change to a tenant or a domain moves it on commit (signals for saves and deletes, and the querysets'
`update()`/`delete()`, which send no signals: the platform admin's suspend action and `tenants suspend` go
through them). So a suspension is refused at every entry point from the next request on, as before.

Only rows found are kept (a new tenant is found at once), and only outside a transaction (it may be the one
changing them); without Redis every lookup asks the database.
"""

from __future__ import annotations

import secrets
import threading

import structlog
from django.db import connection, transaction
from redis.exceptions import RedisError

from tenants.keys import redis_key
from tenants.redis import redis_client

logger = structlog.get_logger("tenants.registry_cache")
_lock = threading.Lock()
_version: bytes | None = None
_by_key: dict[tuple[str, str], object] = {}


def version_key() -> str:
    return redis_key("tenants", "registry-version", schema="public")


def cached(kind: str, key: str, load):
    """The row `load()` returns for (`kind`, `key`), from this process's copy while the registry is unchanged."""
    global _version
    version = _current_version()
    if version is None:
        return load()
    with _lock:
        if version != _version:
            _by_key.clear()
            _version = version
        found = _by_key.get((kind, key))
    if found is not None:
        return found
    found = load()
    # Not from inside a transaction: it may be the one changing the registry, and a row it reads may never commit.
    if found is not None and not connection.in_atomic_block:
        with _lock:
            if version == _version:
                _by_key[(kind, key)] = found
    return found


def registry_changed() -> None:
    """A tenant or a domain changes: every process looks it up again. Now (this transaction's own lookups see the
    change) and again on commit (another process may have copied the old row in between)."""
    _bump()
    transaction.on_commit(_bump, robust=True)


def _bump() -> None:
    try:
        redis_client().incr(version_key())
    except RedisError as error:
        # The change is committed; processes keep their copies until the version moves. Say so loudly.
        logger.error("tenants.registry_version_not_moved", error=repr(error))


def _current_version() -> bytes | None:
    """The registry's version; it starts at a random number (SET NX), so a Redis that lost its data never hands
    out a number a process saw before. None without Redis."""
    try:
        client = redis_client()
        value = client.get(version_key())
        if value is None:
            client.set(version_key(), secrets.randbits(48) + 1, nx=True)
            value = client.get(version_key())
        return value
    except RedisError as error:
        logger.warning("tenants.registry_version_unavailable", error=repr(error))
        return None
