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
from django.db import connection, models, transaction
from django.db.models.signals import post_delete, post_save
from redis.exceptions import RedisError

from tenants.keys import current_schema, redis_key
from tenants.redis import redis_client

T = TypeVar("T")
logger = structlog.get_logger("tenants.versioned_cache")


class VersionedCache:
    """`scope()` names the schema whose version counts: the current tenant's by default, or a fixed one (the
    tenant registry lives in public)."""

    def __init__(self, name: str, *, scope: Callable[[], str] = current_schema):
        self.name = name
        self.scope = scope
        self._lock = threading.Lock()
        self._copies: dict[str, tuple[bytes, dict]] = {}  # schema -> (version, {key: row})

    def version_key(self, schema: str) -> str:
        return redis_key(self.name, "version", schema=schema)

    def get(self, key, load: Callable[[], T | None]) -> T | None:
        """The row `load()` returns for `key`, from this process's copy while the scope's version holds."""
        schema = self.scope()
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

    def changed(self) -> None:
        """Rows of the scope change (call inside the transaction): every process looks them up again."""
        schema = self.scope()
        self._bump(schema)
        transaction.on_commit(lambda: self._bump(schema), robust=True)

    def track(self, *tracked: type[models.Model]) -> None:
        """Saves and deletes of these models move the version (their querysets' bulk changes: TrackedQuerySet)."""
        for model in tracked:
            for signal in (post_save, post_delete):
                signal.connect(self._on_signal, sender=model, weak=False,
                               dispatch_uid=f"{self.name}:{model._meta.label}:{signal is post_save}")

    def _on_signal(self, **kwargs) -> None:
        self.changed()

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


class TrackedQuerySet(models.QuerySet):
    """A queryset whose bulk changes (`update()`, `delete()`: the admin's actions), which send no signals, move its
    cache's version themselves. Subclasses name the cache: `copies = SOME_CACHE`."""

    copies: VersionedCache

    def update(self, **kwargs):
        self.copies.changed()
        return super().update(**kwargs)

    def delete(self):
        self.copies.changed()
        return super().delete()
