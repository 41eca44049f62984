"""One tenant's backup and restore with PostgreSQL's own tools (tenants/backups.py): the restore gives the tenant
back exactly the backed-up rows, keeps its data of before aside, touches no other tenant, and a broken backup
changes nothing."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context

from kb.models import KnowledgeEntry
from kb.services import create_entry, delete_entries
from tenants.backups import ASIDE_SUFFIX, backup_tenant, restore_tenant
from tenants.models import Tenant
from tenants.services import TenantError

pytestmark = pytest.mark.live  # runs pg_dump and pg_restore


def questions(schema: str) -> set[str]:
    with schema_context(schema):
        return set(KnowledgeEntry.objects.values_list("question", flat=True))


@pytest.fixture
def beta_committed(committed_db):
    """Rows committed in beta (pg_dump sees only committed data); whatever the test leaves is removed."""
    yield
    with schema_context("beta"):
        delete_entries(entry_ids=list(KnowledgeEntry.objects.filter(question__startswith="备份").values_list(
            "pk", flat=True)))
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "beta{ASIDE_SUFFIX}" CASCADE')


def test_a_restore_gives_one_tenant_back_its_backup_and_keeps_its_data_of_before_aside(beta_committed, tmp_path):
    with schema_context("beta"):
        kept = create_entry(question="备份前的条目", answer="会被恢复。")
    alpha_before = questions("alpha")
    dump = tmp_path / "beta.dump"
    assert backup_tenant(slug="beta", path=dump) > 0
    with schema_context("beta"):
        delete_entries(entry_ids=[kept.pk])
        create_entry(question="备份后的条目", answer="恢复后不在了。")

    aside = restore_tenant(slug="beta", path=dump)

    assert "备份前的条目" in questions("beta") and "备份后的条目" not in questions("beta")
    assert "备份后的条目" in questions(aside)  # the data of before the restore, for the operator to compare
    assert questions("alpha") == alpha_before
    assert Tenant.objects.get(schema_name="beta").is_active


def test_a_broken_backup_changes_nothing(beta_committed, tmp_path):
    with schema_context("beta"):
        create_entry(question="备份前的条目", answer="不动。")
    broken = tmp_path / "broken.dump"
    broken.write_bytes(b"PGDMP not really a dump")

    with pytest.raises(TenantError, match="pg_restore failed, the tenant's data is as it was"):
        restore_tenant(slug="beta", path=broken)

    assert "备份前的条目" in questions("beta")
    assert Tenant.objects.get(schema_name="beta").is_active


def test_the_command_asks_for_confirmation_and_refuses_an_unknown_tenant(committed_db, tmp_path):
    with pytest.raises(CommandError, match="add --yes"):
        call_command("tenants", "restore", "beta", str(tmp_path / "x.dump"))
    with pytest.raises(CommandError, match="No schema 'gamma'"):
        call_command("tenants", "backup", "gamma", str(tmp_path / "gamma.dump"))
