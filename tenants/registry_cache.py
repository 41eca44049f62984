"""The tenants and domains that every request and job looks up, kept per process until the registry changes.

Every callback resolved its tenant with a query in the public schema (and the `SET search_path` to get there),
every job likewise: about a tenth of the web's CPU per callback. Here a process keeps the rows it found while the
registry's version stays the same (tenants/versioned_cache.py); any change to a tenant or a domain moves it:
signals for saves and deletes, and the querysets' `update()`/`delete()`, which send no signals (RegistryQuerySet).
So a suspension is refused at every entry point from the next request on, as before.
"""

from __future__ import annotations

from django_tenants.utils import get_public_schema_name

from tenants.versioned_cache import TrackedQuerySet, VersionedCache

# The registry lives in public: one version for every tenant and domain, whichever schema asks.
REGISTRY = VersionedCache("tenants-registry", scope=get_public_schema_name)


class RegistryQuerySet(TrackedQuerySet):
    copies = REGISTRY
