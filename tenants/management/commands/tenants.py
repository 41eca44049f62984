"""Operator commands: `tenants create|list|suspend|activate|backup|restore`."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from tenants.backups import backup_tenant, restore_tenant
from tenants.log_context import LoggedCommand
from tenants.models import Tenant
from tenants.services import TenantError, create_tenant, set_tenant_active, tenant_urls


class Command(LoggedCommand):
    help = "Create, list, suspend and reactivate tenants."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = actions.add_parser("create", help="create a tenant (schema, domain, admin user)")
        create.add_argument("slug", help="schema name and /t/<slug>/ path segment")
        create.add_argument("--name", required=True, help="display name")
        create.add_argument("--domain", help="hostname that resolves to this tenant")
        create.add_argument("--admin-email", help="first staff user (also the login)")
        create.add_argument("--admin-password")
        actions.add_parser("list", help="list tenants")
        for action in ("suspend", "activate"):
            sub = actions.add_parser(action, help=f"{action} a tenant")
            sub.add_argument("slug")
        backup = actions.add_parser("backup", help="dump one tenant's schema to a file (pg_dump, custom format)")
        backup.add_argument("slug")
        backup.add_argument("file", type=Path)
        restore = actions.add_parser("restore", help="replace one tenant's schema by a backup (the current one is "
                                                    "kept aside as <slug>_before_restore)")
        restore.add_argument("slug")
        restore.add_argument("file", type=Path)
        restore.add_argument("--yes", action="store_true", help="confirm: the tenant's current data is replaced")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"_{action}")(**options)
        except TenantError as exc:
            raise CommandError(str(exc)) from exc

    def _create(self, *, slug, name, domain, admin_email, admin_password, **_):
        tenant = create_tenant(
            slug=slug, name=name, domain=domain,
            admin_email=admin_email, admin_password=admin_password,
        )
        urls = tenant_urls(tenant)
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.name!r} (schema {slug})."))
        self.stdout.write(f"  Tenant base URL:  {urls.base}")
        self.stdout.write(f"  Tenant admin:     {urls.admin}")
        if urls.host_admin:
            self.stdout.write(f"  Admin by domain:  {urls.host_admin}")
        if admin_email:
            self.stdout.write(f"  Admin login:      {admin_email}")

    def _list(self, **_):
        tenants = Tenant.objects.exclude(schema_name=get_public_schema_name()).prefetch_related("domains")
        self.stdout.write(f"{'SLUG':<20} {'STATUS':<10} {'CREATED':<20} {'NAME':<30} DOMAINS")
        for tenant in tenants:
            status = "active" if tenant.is_active else "suspended"
            domains = ",".join(d.domain for d in tenant.domains.all()) or "-"
            created = timezone.localtime(tenant.created_at).strftime("%Y-%m-%d %H:%M")
            self.stdout.write(f"{tenant.schema_name:<20} {status:<10} {created:<20} {tenant.name:<30} {domains}")

    def _backup(self, *, slug, file, **_):
        size = backup_tenant(slug=slug, path=file)
        self.stdout.write(self.style.SUCCESS(f"Backed up tenant {slug} to {file} ({size} bytes)."))

    def _restore(self, *, slug, file, yes, **_):
        if not yes:
            raise CommandError(f"Restoring replaces every row of tenant {slug}: add --yes to confirm.")
        aside = restore_tenant(slug=slug, path=file)
        self.stdout.write(self.style.SUCCESS(
            f"Restored tenant {slug} from {file}. Its data before the restore is in schema {aside}: "
            f"DROP SCHEMA {aside} CASCADE once you no longer need it."))

    def _suspend(self, *, slug, **_):
        set_tenant_active(slug=slug, active=False)
        self.stdout.write(self.style.SUCCESS(f"Suspended tenant {slug}: refused at every entry point."))

    def _activate(self, *, slug, **_):
        set_tenant_active(slug=slug, active=True)
        self.stdout.write(self.style.SUCCESS(f"Reactivated tenant {slug}."))
