"""Tenants (customer companies) and the hostnames that resolve to them. Public schema."""

from __future__ import annotations

from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_tenants.models import DomainMixin, TenantMixin

from tenants.registry_cache import registry_changed


class RegistryQuerySet(models.QuerySet):
    """Bulk changes send no signals: they move the registry's version themselves (tenants/registry_cache.py)."""

    def update(self, **kwargs):
        registry_changed()
        return super().update(**kwargs)

    def delete(self):
        registry_changed()
        return super().delete()


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


@receiver([post_save, post_delete], sender=Tenant)
@receiver([post_save, post_delete], sender=Domain)
def _registry_changed(**kwargs) -> None:
    registry_changed()
