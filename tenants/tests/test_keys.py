"""Keys outside PostgreSQL carry the tenant: Django cache, Redis keys, channel groups."""

import pytest
from django.core.cache import cache
from django_tenants.utils import schema_context

from tenants.keys import channel_group, redis_key


def test_cache_entries_are_per_tenant(committed_db):
    with schema_context("alpha"):
        cache.set("greeting", "alpha's", 30)
    with schema_context("beta"):
        assert cache.get("greeting") is None
        cache.set("greeting", "beta's", 30)
    with schema_context("alpha"):
        assert cache.get("greeting") == "alpha's"
        cache.delete("greeting")
    with schema_context("beta"):
        assert cache.get("greeting") == "beta's"
        cache.delete("greeting")


def test_redis_keys_start_with_the_schema(committed_db):
    with schema_context("alpha"):
        assert redis_key("lock", "kf", 42) == "alpha:lock:kf:42"
    assert redis_key("x", schema="beta") == "beta:x"


def test_channel_groups_are_validated():
    assert channel_group("conversation.7", schema="alpha") == "alpha.conversation.7"
    for bad in ("", "a b", "ä"):
        with pytest.raises(ValueError):
            channel_group(bad, schema="alpha")
