"""Per-contact mutual exclusion across all worker processes: PostgreSQL session advisory locks.

A lock in PostgreSQL survives a Redis loss, and dies with the process that holds it
(its connection closes), so a SIGKILLed worker never leaves a contact locked.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connection


@contextmanager
def contact_lock(contact_id: int, purpose: str):
    """Yield True if this process now owns `purpose` for the contact, False if someone else does."""
    key = f"{connection.schema_name}:{purpose}:{contact_id}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])
