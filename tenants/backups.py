"""One tenant's backup and restore: its schema, with PostgreSQL's own pg_dump and pg_restore (docs/DEPLOYMENT.md,
"Backups"). A whole-database backup (pg_basebackup, WAL archiving, your provider's snapshots) stays the first line;
this is for giving one tenant back its data without touching the others.

- `backup_tenant`: `pg_dump --schema=<slug> --format=custom` of the tenant's schema (tables, sequences, indexes,
  data). The tenant's row in the public schema (name, domains, status) is not in it: it is still there when
  a tenant's data is restored.
- `restore_tenant`: the tenant is suspended for the restore (its callbacks answer 503 and WeCom retries them,
  its screens refuse), its current schema is renamed aside (`<slug>_before_restore`, kept until the operator
  drops it), the dump is restored in one transaction, and the tenant is active again if it was. A failed
  restore puts the renamed schema back.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from django.conf import settings
from django.db import connection

from tenants.models import Tenant
from tenants.services import TenantError, set_tenant_active

ASIDE_SUFFIX = "_before_restore"


def _connection_args() -> tuple[list[str], dict[str, str]]:
    db = settings.DATABASES["default"]
    args = ["--dbname", db["NAME"]]
    for option, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if db.get(key):
            args += [option, str(db[key])]
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return args, env


def _require_tenant(slug: str) -> None:
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [slug])
        if cursor.fetchone() is None:
            raise TenantError(f"No schema {slug!r} in this database.")


def backup_tenant(*, slug: str, path: Path) -> int:
    """Write the tenant's schema to `path` (pg_dump's custom format); returns its size in bytes."""
    _require_tenant(slug)
    args, env = _connection_args()
    result = subprocess.run(["pg_dump", *args, "--schema", slug, "--format", "custom", "--no-owner",
                             "--file", str(path)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise TenantError(f"pg_dump failed: {result.stderr.strip()}")
    return path.stat().st_size


def restore_tenant(*, slug: str, path: Path) -> str:
    """Replace the tenant's schema by the dump at `path`; returns the name of the schema kept aside."""
    if not path.is_file():
        raise TenantError(f"No backup file at {path}.")
    _require_tenant(slug)
    was_active = _is_active(slug)
    aside = f"{slug}{ASIDE_SUFFIX}"
    set_tenant_active(slug=slug, active=False)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{aside}" CASCADE')
            cursor.execute(f'ALTER SCHEMA "{slug}" RENAME TO "{aside}"')
        args, env = _connection_args()
        result = subprocess.run(["pg_restore", *args, "--single-transaction", "--no-owner", "--exit-on-error",
                                 str(path)], capture_output=True, text=True, env=env)
        if result.returncode != 0:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{slug}" CASCADE')
                cursor.execute(f'ALTER SCHEMA "{aside}" RENAME TO "{slug}"')
            raise TenantError(f"pg_restore failed, the tenant's data is as it was: {result.stderr.strip()}")
    finally:
        set_tenant_active(slug=slug, active=was_active)
    return aside


def _is_active(slug: str) -> bool:
    return Tenant.objects.filter(schema_name=slug, is_active=True).exists()
