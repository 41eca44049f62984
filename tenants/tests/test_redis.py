"""The process's Redis accessor: one client per URL, bounded timeouts, the rate limiter on the same pool."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from tenants import redis as shared_redis
from tenants.redis import rate_limiter, redis_client


def test_one_client_per_url_following_the_settings(settings):
    assert redis_client() is redis_client()
    assert redis_client() is redis_client(settings.REDIS_URL)
    assert redis_client().connection_pool.connection_kwargs["db"] == settings.TEST_REDIS_DB

    other = "redis://127.0.0.1:6379/13"
    settings.REDIS_URL = other
    assert redis_client() is redis_client(other)
    assert redis_client().connection_pool.connection_kwargs["db"] == 13


def test_every_connection_has_bounded_timeouts_and_one_retry():
    kwargs = redis_client().connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1.0, 2.0)
    assert redis_client().connection_pool.make_connection().retry.get_retries() == 1


def test_the_rate_limiter_shares_the_clients_pool():
    limiter = rate_limiter()
    assert limiter is rate_limiter()
    assert limiter.storage.storage.connection_pool is redis_client().connection_pool
    assert limiter.storage.check() is True


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (the kernel's backlog) and never answers: a hung Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_a_redis_that_never_answers_raises_instead_of_hanging(silent_server, monkeypatch):
    monkeypatch.setattr(shared_redis, "COMMAND_TIMEOUT_SECONDS", 0.2)  # read when the client is built
    client = redis_client(silent_server)
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.get("anything")
    # Two attempts (one retry) of 0.2 s each, and nothing more.
    assert 0.4 <= time.monotonic() - started < 1.5
