"""REDIS_SENTINELS and friends, read into what each Redis library needs (config/redis_sentinel.py); the live
servers' side is conversations/tests/test_redis_sentinel_live.py."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from config import health, redis_sentinel
from config.redis_sentinel import SentinelSettings

SENTINELS = SentinelSettings(sentinels=(("10.0.0.1", 26379), ("sentinel-b", 26380)), master="desk", password="s3")


def test_sentinels_are_read_from_host_port_pairs():
    assert redis_sentinel.parse_sentinels(" a:26379, b:26380 ,[::1]:26381,") == (
        ("a", 26379), ("b", 26380), ("::1", 26381))


@pytest.mark.parametrize("value", ["a", "a:", ":26379", "a:port", "a:70000", " , "])
def test_a_sentinel_that_is_not_host_port_is_refused_by_name(value):
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINELS"):
        redis_sentinel.parse_sentinels(value)


def test_the_environment_turns_sentinel_on_only_when_set(monkeypatch):
    monkeypatch.delenv("REDIS_SENTINELS", raising=False)
    assert redis_sentinel.from_env() is None
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379,s2:26379,s3:26379")
    monkeypatch.delenv("REDIS_SENTINEL_MASTER", raising=False)
    monkeypatch.delenv("REDIS_SENTINEL_PASSWORD", raising=False)
    assert redis_sentinel.from_env() == SentinelSettings(
        sentinels=(("s1", 26379), ("s2", 26379), ("s3", 26379)), master="mymaster", password="")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "desk")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "s3")
    assert redis_sentinel.from_env().master == "desk"
    assert redis_sentinel.from_env().password == "s3"


def test_without_sentinels_every_library_gets_the_url_as_it_is():
    url = "redis://:pw@redis:6379/2"
    assert redis_sentinel.cache_location(url, None) == {"LOCATION": url}
    assert redis_sentinel.channel_layer_host(url, None) == url
    assert redis_sentinel.dramatiq_broker(url, None, namespace="dq") == {
        "BROKER": "config.broker_polling.PacedRedisBroker", "OPTIONS": {"url": url, "namespace": "dq"}}


def test_under_sentinel_the_url_gives_the_db_and_the_masters_credentials_only():
    url = "redis://app:p%40ss@ignored-host:1/3"
    host = redis_sentinel.channel_layer_host(url, SENTINELS)
    assert host == {"master_name": "desk", "sentinels": [("10.0.0.1", 26379), ("sentinel-b", 26380)],
                    "sentinel_kwargs": {"socket_timeout": 1.0, "socket_connect_timeout": 1.0, "password": "s3"},
                    "db": 3, "password": "p@ss", "username": "app"}
    cache = redis_sentinel.cache_location(url, SENTINELS)
    assert cache["OPTIONS"]["pool_class"] == "config.redis_sentinel.SentinelCachePool"
    pool = redis_sentinel.SentinelCachePool.from_url(url, **{k: v for k, v in cache["OPTIONS"].items()
                                                            if k != "pool_class"})
    assert (pool.service_name, pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == ("desk", 3, "p@ss")
    # The Sentinels are asked with their own password, never the master's.
    assert [s.connection_pool.connection_kwargs.get("password") for s in pool.sentinel_manager.sentinels] == ["s3"] * 2
    broker = redis_sentinel.dramatiq_broker(url, SENTINELS, namespace="dq")
    assert broker["BROKER"] == "config.redis_sentinel.SentinelRedisBroker"
    made = redis_sentinel.SentinelRedisBroker(**broker["OPTIONS"])
    assert made.namespace == "dq" and made.client.connection_pool.service_name == "desk"


@pytest.mark.parametrize("url", ["unix:///run/redis.sock", "redis://h/notadb"])
def test_a_url_sentinel_cannot_use_is_refused_at_start(url):
    with pytest.raises(ImproperlyConfigured):
        redis_sentinel.cache_location(url, SENTINELS)


def test_readyz_says_redis_is_unavailable_when_no_sentinel_answers(settings, db):
    dead = SentinelSettings(sentinels=(("127.0.0.1", 1),), master="desk")
    settings.REDIS_SENTINEL = dead
    settings.REDIS_URL = settings.BROKER_URL = "redis://127.0.0.1:1/9"  # its own probe client, not a cached one
    health._redis.cache_clear()
    try:
        response = Client().get("/readyz")
    finally:
        health._redis.cache_clear()
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] == "unavailable (MasterNotFoundError)"
    assert response.json()["checks"]["broker"] == "unavailable (MasterNotFoundError)"
