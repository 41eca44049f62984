"""Per-contact advisory locks: one holder per contact, purpose and tenant; nothing outlives its block."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections
from django_tenants.utils import schema_context

from conversations.services.locks import ContactLocks, LockPurpose


def in_another_session(schema: str, purpose: LockPurpose, contact_ids: list[int]) -> tuple[list[int], list[int]]:
    """try_acquire from another database session (a thread has its own connection), then let go of
    what it took before answering (closing the connection would release it too, but the server
    does that after the client has gone: a next look could still find it held)."""

    def attempt():
        try:
            with schema_context(schema), ContactLocks(purpose) as other:
                return other.try_acquire(contact_ids)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(attempt).result(timeout=10)  # re-raises the thread's exception; the pool waits for it


def test_a_held_contact_is_busy_for_every_other_session_until_the_block_ends(committed_db):
    with schema_context("alpha"), ContactLocks(LockPurpose.ANSWER) as locks:
        assert locks.try_acquire([1, 2, 2, 3]) == ([1, 2, 3], [])
        assert in_another_session("alpha", LockPurpose.ANSWER, [3, 2, 4]) == ([4], [3, 2])

        locks.release([2])
        assert locks.held == [1, 3]
        assert in_another_session("alpha", LockPurpose.ANSWER, [1, 2]) == ([2], [1])
        assert locks.try_acquire([1]) == ([], [])  # already held here: not taken twice
    assert in_another_session("alpha", LockPurpose.ANSWER, [1, 2, 3]) == ([1, 2, 3], [])


def test_purposes_and_tenants_are_locks_of_their_own(committed_db):
    with schema_context("alpha"), ContactLocks(LockPurpose.ANSWER) as locks:
        locks.try_acquire([7])
        assert in_another_session("alpha", LockPurpose.SEND, [7]) == ([7], [])
        assert in_another_session("beta", LockPurpose.ANSWER, [7]) == ([7], [])
        assert in_another_session("alpha", LockPurpose.ANSWER, [7]) == ([], [7])


def test_an_exception_inside_the_block_releases_every_lock(committed_db):
    with pytest.raises(RuntimeError, match="mid-round"), schema_context("alpha"), \
            ContactLocks(LockPurpose.SEND) as locks:
        locks.try_acquire([11, 12])
        raise RuntimeError("mid-round")
    assert locks.held == []
    assert in_another_session("alpha", LockPurpose.SEND, [11, 12]) == ([11, 12], [])


def test_when_release_fails_the_connection_is_closed_so_postgres_releases_the_locks(committed_db):
    with schema_context("alpha"):
        with ContactLocks(LockPurpose.ANSWER) as locks:
            locks.try_acquire([21])
            pid = connection.connection.info.backend_pid
            # The server ends our session (as a failover or an idle timeout would).
            with ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(_terminate, pid).result(timeout=10)
        assert locks.held == []
        assert connection.connection is None  # closed: the next query opens a fresh session
        assert in_another_session("alpha", LockPurpose.ANSWER, [21]) == ([21], [])


def _terminate(pid: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        connections.close_all()
