"""Which tenant a request or socket belongs to: by `/t/<slug>/` path prefix, else by hostname.

One function shared by the HTTP and the WebSocket middleware, so both entry
points accept and refuse exactly the same things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection
from django_tenants.utils import get_public_schema_name, remove_www

from tenants.models import Domain, Tenant
from tenants.registry_cache import REGISTRY

# DOTALL: a path may hold an encoded newline (%0A); it is still the tenant's path, for its own router to refuse.
PATH_PREFIX = re.compile(r"^/t/(?P<slug>[^/]+)(?P<rest>/.*)?$", re.DOTALL)


@dataclass(frozen=True)
class Resolution:
    tenant: Tenant | None
    # "/t/<slug>" when resolved by path prefix, "" when resolved by hostname.
    script_prefix: str
    # The path with the prefix removed (what the URL router should see).
    path: str


def hostname_from_host_header(host: str) -> str:
    """'Demo.Example.com:8000' -> 'demo.example.com' (www. dropped, as django-tenants does)."""
    hostname = host.rsplit("@", 1)[-1]
    if hostname.startswith("["):  # IPv6 literal
        hostname = hostname.split("]")[0] + "]"
    else:
        hostname = hostname.split(":")[0]
    return remove_www(hostname.strip().lower().rstrip("."))


def resolve_tenant(*, host: str, path: str) -> Resolution:
    """Resolve from the public schema (or this process's copy of it); never raises for unknown input, returns
    tenant=None."""
    connection.set_schema_to_public()
    match = PATH_PREFIX.match(path)
    if match:
        slug = match["slug"]
        rest = match["rest"] or ""
        tenant = None
        if slug != get_public_schema_name():
            tenant = tenant_for_schema(slug)
        return Resolution(tenant=tenant, script_prefix=f"/t/{slug}", path=rest)
    hostname = hostname_from_host_header(host)
    domain = REGISTRY.get(("domain", hostname),
                          lambda: Domain.objects.select_related("tenant").filter(domain=hostname).first())
    return Resolution(tenant=domain.tenant if domain else None, script_prefix="", path=path)


def tenant_for_schema(schema: str) -> Tenant | None:
    """The tenant whose schema is `schema` (active or not), from this process's copy while the registry is
    unchanged (tenants/registry_cache.py)."""
    return REGISTRY.get(("schema", schema), lambda: Tenant.objects.filter(schema_name=schema).first())
