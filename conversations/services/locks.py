"""Per-contact mutual exclusion across all worker processes: PostgreSQL session advisory locks.

A lock in PostgreSQL survives a Redis loss, and dies with the process that holds it
(its connection closes), so a SIGKILLed worker never leaves a contact locked. Locks are
taken and released for many contacts in one statement: the answering and delivery rounds
work on batches of contacts.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection


def _keys(contact_ids: Iterable[int], purpose: str) -> list[str]:
    return [f"{connection.schema_name}:{purpose}:{contact_id}" for contact_id in contact_ids]


def try_contact_locks(contact_ids: Iterable[int], purpose: str) -> tuple[list[int], list[int]]:
    """Take `purpose` for each contact nobody else holds it for: (locked, busy), in the given order."""
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        return [], []
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(key)) FROM unnest(%s::text[]) WITH ORDINALITY AS k(key, n)"
                       " ORDER BY n", [_keys(ids, purpose)])
        acquired = [row[0] for row in cursor.fetchall()]
    locked = [contact_id for contact_id, ok in zip(ids, acquired, strict=True) if ok]
    busy = [contact_id for contact_id, ok in zip(ids, acquired, strict=True) if not ok]
    return locked, busy


def release_contact_locks(contact_ids: Iterable[int], purpose: str) -> None:
    keys = _keys(contact_ids, purpose)
    if keys:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(key)) FROM unnest(%s::text[]) AS k(key)", [keys])
