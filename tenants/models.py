"""Tenants (customer companies) and the hostnames that resolve to them. Public schema."""

from __future__ import annotations

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from tenants.registry_cache import REGISTRY, RegistryQuerySet


class Tenant(TenantMixin):
    """A company using WeCom Desk; its slug is the name of its PostgreSQL schema."""

    name = models.CharField("display name", max_length=200)
    is_active = models.BooleanField(
        default=True, help_text="Suspended tenants are refused at every entry point."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = False

    objects = RegistryQuerySet.as_manager()

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def slug(self) -> str:
        return self.schema_name


class Domain(DomainMixin):
    """A hostname that resolves to a tenant (the public schema has one too)."""

    objects = RegistryQuerySet.as_manager()

    def __str__(self) -> str:
        return self.domain


REGISTRY.track(Tenant, Domain)
