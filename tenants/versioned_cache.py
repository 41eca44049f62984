"""Rows a process keeps for as long as a version number in Redis stays the same.

Every callback and every job looked up the same few rows (its tenant, its WeCom app) with a query and, for an app,
the decryption of its secrets. A VersionedCache keeps the rows a process found, per tenant schema, and throws them
away when the schema's version in Redis (`<schema>:<name>:version`) moves; whatever changes the rows moves it
(`changed()`: now, so the changing transaction's own lookups see the change, and again on commit, since another
process may have copied the old row in between). So a change, a suspension or a disabled app, counts from the next
lookup on, in every process, as it did when every lookup asked the database.

Kept only: rows found (a new row is found at once), and rows read outside a transaction (a transaction may be the one
changing them, and what it reads may never commit). Without Redis every lookup asks the database.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

import structlog
from django.db import connection, transaction
from redis.exceptions import RedisError

from tenants.keys import redis_key
from tenants.redis import redis_client

T = TypeVar("T")
logger = structlog.get_logger("tenants.versioned_cache")


class VersionedCache:
    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._copies: dict[str, tuple[bytes, dict]] = {}  # schema -> (version, {key: row})

    def version_key(self, schema: str) -> str:
        return redis_key(self.name, "version", schema=schema)

    def get(self, schema: str, key, load: Callable[[], T | None]) -> T | None:
        """The row `load()` returns for `key` in `schema`, from this process's copy while the version holds."""
        version = self._version(schema)
        if version is None:
            return load()
        with self._lock:
            held = self._copies.get(schema)
            if held is None or held[0] != version:
                held = self._copies[schema] = (version, {})
            found = held[1].get(key)
        if found is not None:
            return found
        found = load()
        if found is not None and not connection.in_atomic_block:
            with self._lock:
                if self._copies.get(schema, (None,))[0] == version:
                    self._copies[schema][1][key] = found
        return found

    def changed(self, schema: str) -> None:
        """Rows of `schema` change (call inside the transaction): every process looks them up again."""
        self._bump(schema)
        transaction.on_commit(lambda: self._bump(schema), robust=True)

    def _bump(self, schema: str) -> None:
        try:
            redis_client().incr(self.version_key(schema))
        except RedisError as error:
            # Committed or not, the processes keep their copies until the version moves: say so loudly.
            logger.error("cache.version_not_moved", cache=self.name, tenant=schema, error=repr(error))

    def _version(self, schema: str) -> bytes | None:
        try:
            return version_number(self.version_key(schema))
        except RedisError as error:
            logger.warning("cache.version_unavailable", cache=self.name, tenant=schema, error=repr(error))
            return None


def version_number(key: str) -> bytes:
    """A version number kept in Redis under `key`. It starts at a random number (SET NX), so a Redis that lost its
    data never hands out a number a process saw before. Raises RedisError."""
    client = redis_client()
    value = client.get(key)
    if value is None:
        client.set(key, secrets.randbits(48) + 1, nx=True)
        value = client.get(key)
    return value
