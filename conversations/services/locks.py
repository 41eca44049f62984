"""Per-contact mutual exclusion across all worker processes: PostgreSQL session advisory locks.

A lock in PostgreSQL survives a Redis loss, and dies with the process that holds it (its
connection closes), so a SIGKILLed worker never leaves a contact locked. Locks are taken and
released for many contacts in one statement: the answering and delivery rounds work on batches
of contacts.

Session locks outlive transactions but not the `with` block of `ContactLocks`: whatever goes
wrong inside it, the block releases what it holds, and if even that fails (the connection
broke) it closes the connection, which releases them in PostgreSQL. A pooled connection can
never carry a forgotten lock into the next job.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog
from django.db import DatabaseError, connection, models

logger = structlog.get_logger("conversations.locks")


class LockPurpose(models.TextChoices):
    """What a contact is locked for; each purpose is a lock of its own."""

    ANSWER = "answer", "answering the contact's messages"
    SEND = "send", "delivering the contact's ledger rows"


class ContactLocks:
    """The contacts this connection holds `purpose` for, released when the `with` block ends."""

    def __init__(self, purpose: LockPurpose):
        self.purpose = purpose
        self.held: list[int] = []

    def __enter__(self) -> ContactLocks:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.release(self.held)
        except DatabaseError:
            logger.warning("locks.release_failed", purpose=str(self.purpose), contacts=len(self.held))
            self.held = []
            connection.close()  # PostgreSQL releases a session's locks when it ends

    def try_acquire(self, contact_ids: Iterable[int]) -> tuple[list[int], list[int]]:
        """Take the lock of each contact nobody else holds it for: (locked, busy), in the given order."""
        ids = [contact_id for contact_id in dict.fromkeys(contact_ids) if contact_id not in self.held]
        if not ids:
            return [], []
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(key)) FROM unnest(%s::text[]) WITH ORDINALITY"
                           " AS k(key, n) ORDER BY n", [self._keys(ids)])
            acquired = [row[0] for row in cursor.fetchall()]
        locked = [contact_id for contact_id, ok in zip(ids, acquired, strict=True) if ok]
        self.held += locked
        return locked, [contact_id for contact_id, ok in zip(ids, acquired, strict=True) if not ok]

    def release(self, contact_ids: Iterable[int]) -> None:
        """Let go of some held contacts before the block ends (the others stay held)."""
        releasing = [contact_id for contact_id in dict.fromkeys(contact_ids) if contact_id in self.held]
        if not releasing:
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(key)) FROM unnest(%s::text[]) AS k(key)",
                           [self._keys(releasing)])
        gone = set(releasing)
        self.held = [contact_id for contact_id in self.held if contact_id not in gone]

    def _keys(self, contact_ids: list[int]) -> list[str]:
        return [f"{connection.schema_name}:{self.purpose}:{contact_id}" for contact_id in contact_ids]
