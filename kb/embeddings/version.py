"""embeddings_version(): a number per tenant that changes whenever any entry's vectors (or the set of
entries that may be retrieved) change, so an in-process cache of vectors knows it is stale.

A Redis counter under the tenant's key, bumped on commit of every write. It starts at a random value
(SET NX), so a Redis that lost or flushed its data never hands out a number a cache saw before. When
Redis is down, a value read from the database stands in (the newest vector and entry times and their
counts): slower, but it still moves with every change.
"""

from __future__ import annotations

import secrets

import structlog
from django.db import connection, transaction
from django.db.models import Count, Max
from redis.exceptions import RedisError

from kb.models import EntryEmbedding, KnowledgeEntry
from tenants.keys import redis_key
from tenants.redis import redis_client

logger = structlog.get_logger("kb.embeddings")

_START_BITS = 48


def version_key(*, schema: str | None = None) -> str:
    return redis_key("kb", "embeddings", "version", schema=schema)


def _random_start() -> int:
    return secrets.randbits(_START_BITS) + 1


def database_version() -> int:
    """The stand-in when Redis is down: moves with every vector or entry written or deleted."""
    vectors = EntryEmbedding.objects.aggregate(newest=Max("created_at"), count=Count("pk"))
    entries = KnowledgeEntry.objects.aggregate(newest=Max("updated_at"), count=Count("pk"))
    stamps = [value.timestamp() for value in (vectors["newest"], entries["newest"]) if value is not None]
    newest_us = int(max(stamps, default=0) * 1_000_000)
    # Times fill the high digits; the counts tell a delete (which moves no time) apart.
    return -(newest_us * 1_000_000 + (vectors["count"] * 1000 + entries["count"]) % 1_000_000)


def embeddings_version() -> int:
    """The current tenant's version: an opaque number, different after every change (negative without Redis)."""
    key = version_key()
    try:
        client = redis_client()
        value = client.get(key)
        if value is None:
            client.set(key, _random_start(), nx=True)
            value = client.get(key)
        return int(value)
    except RedisError as exc:
        logger.warning("kb.embeddings.version_redis_down", tenant=connection.schema_name, error=str(exc))
        return database_version()


def bump_embeddings_version_on_commit() -> None:
    """Call inside the transaction that writes or deletes vectors (or changes which entries count)."""
    schema = connection.schema_name  # captured now: the callback may run outside the schema_context

    def bump() -> None:
        key = version_key(schema=schema)
        try:
            pipe = redis_client().pipeline(transaction=True)
            pipe.set(key, _random_start(), nx=True)
            pipe.incr(key)
            pipe.execute()
        except RedisError as exc:  # readers fall back to the database while Redis is down
            logger.warning("kb.embeddings.version_bump_failed", tenant=schema, error=str(exc))

    transaction.on_commit(bump, robust=True)
