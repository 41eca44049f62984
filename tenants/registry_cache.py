"""The tenants and domains that every request and job looks up, kept per process until the registry changes.

Every callback resolved its tenant with a query in the public schema (and the `SET search_path` to get there),
every job likewise: about a tenth of the web's CPU per callback. Here a process keeps the rows it found while the
registry's version stays the same (tenants/versioned_cache.py); any change to a tenant or a domain moves it:
signals for saves and deletes, and the querysets' `update()`/`delete()`, which send no signals (tenants/models.py).
So a suspension is refused at every entry point from the next request on, as before.
"""

from __future__ import annotations

from django_tenants.utils import get_public_schema_name

from tenants.versioned_cache import VersionedCache

registry = VersionedCache("tenants-registry")


def cached(kind: str, key: str, load):
    """The row `load()` returns for (`kind`, `key`), from this process's copy while the registry is unchanged."""
    return registry.get(get_public_schema_name(), (kind, key), load)


def registry_changed() -> None:
    """A tenant or a domain changes: every process looks it up again."""
    registry.changed(get_public_schema_name())
