"""Tenant lifecycle: create, suspend, reactivate. Every input is validated before anything is written."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.models import Domain, Tenant

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
HOSTNAME_PATTERN = re.compile(
    r"^(?=.{1,253}$)(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$"
)


class TenantError(ValueError):
    """Refused operator input; the message says what to fix."""


@dataclass(frozen=True)
class TenantUrls:
    admin: str
    base: str
    host_admin: str | None


def validate_slug(slug: str) -> None:
    if not SLUG_PATTERN.match(slug or ""):
        raise TenantError(
            f"Invalid slug {slug!r}: use 2-40 characters, lowercase letters, digits and "
            "underscores, starting with a letter (it becomes the PostgreSQL schema name)."
        )
    if slug in settings.RESERVED_TENANT_SLUGS or slug.startswith("pg_"):
        raise TenantError(f"The slug {slug!r} is reserved; choose another.")
    if Tenant.objects.filter(schema_name=slug).exists():
        raise TenantError(f"A tenant with slug {slug!r} already exists.")


def validate_domain(domain: str) -> str:
    domain = (domain or "").strip().lower().rstrip(".")
    if not HOSTNAME_PATTERN.match(domain):
        raise TenantError(f"Invalid domain {domain!r}: give a hostname such as acme.example.com.")
    if Domain.objects.filter(domain=domain).exists():
        raise TenantError(f"The domain {domain!r} already belongs to a tenant.")
    return domain


def _validate_admin(email: str | None, password: str | None) -> None:
    if not email and not password:
        return
    if not (email and password):
        raise TenantError("Give both --admin-email and --admin-password, or neither.")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise TenantError(f"Invalid admin email {email!r}.") from exc
    try:
        validate_password(password)
    except ValidationError as exc:
        raise TenantError("Admin password refused: " + " ".join(exc.messages)) from exc


def ensure_public_tenant() -> Tenant:
    """The public schema's own Tenant row and platform domain (django-tenants needs them)."""
    connection.set_schema_to_public()
    public, _ = Tenant.objects.get_or_create(
        schema_name=get_public_schema_name(), defaults={"name": "Platform"}
    )
    Domain.objects.get_or_create(
        domain=settings.PUBLIC_DOMAIN, defaults={"tenant": public, "is_primary": True}
    )
    return public


def create_tenant(
    *,
    slug: str,
    name: str,
    domain: str | None = None,
    admin_email: str | None = None,
    admin_password: str | None = None,
) -> Tenant:
    """Create the tenant, its schema (migrated), optional domain and first staff user.

    All validation happens first; if schema creation or the admin user fails
    anyway, the half-made tenant and its schema are removed again.
    """
    connection.set_schema_to_public()
    validate_slug(slug)
    if not (name or "").strip():
        raise TenantError("A display name is required (--name).")
    if domain:
        domain = validate_domain(domain)
    _validate_admin(admin_email, admin_password)
    ensure_public_tenant()

    tenant = Tenant(schema_name=slug, name=name.strip())
    try:
        tenant.save(verbosity=0)  # creates and migrates the schema
        with transaction.atomic():
            if domain:
                Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
            if admin_email:
                with schema_context(slug):
                    create_staff_user(email=admin_email, password=admin_password, superuser=True)
    except BaseException:
        connection.set_schema_to_public()
        if tenant.pk:
            tenant.delete(force_drop=True)
        raise
    return tenant


def create_staff_user(*, email: str, password: str, superuser: bool = False):
    """A staff user of the current schema; the email is the username."""
    user_model = get_user_model()
    if user_model.objects.filter(username=email).exists():
        raise TenantError(f"A user {email!r} already exists in this tenant.")
    create = user_model.objects.create_superuser if superuser else user_model.objects.create_user
    return create(username=email, email=email, password=password, is_staff=True)


def set_tenant_active(*, slug: str, active: bool) -> Tenant:
    connection.set_schema_to_public()
    tenant = Tenant.objects.filter(schema_name=slug).first()
    if tenant is None or slug == get_public_schema_name():
        raise TenantError(f"No tenant with slug {slug!r}.")
    tenant.is_active = active
    tenant.save(update_fields=["is_active"])
    return tenant


def tenant_urls(tenant: Tenant) -> TenantUrls:
    base = f"{settings.PUBLIC_BASE_URL}/t/{tenant.schema_name}/"
    domain = tenant.domains.filter(is_primary=True).first()
    host_admin = None
    if domain:
        scheme, _, rest = settings.PUBLIC_BASE_URL.partition("://")
        port = rest.split("/")[0].partition(":")[2]
        host_admin = f"{scheme}://{domain.domain}{':' + port if port else ''}/admin/"
    return TenantUrls(admin=base + "admin/", base=base, host_admin=host_admin)
