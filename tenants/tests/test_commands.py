"""`manage.py tenants ...`: create, list, suspend; bad input is refused and creates nothing."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context

from tenants.models import Domain, Tenant

pytestmark = pytest.mark.django_db


def schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", [name])
        return cursor.fetchone() is not None


def run(*args) -> str:
    out = StringIO()
    call_command("tenants", *args, stdout=out)
    return out.getvalue()


def test_create_makes_schema_domain_admin_and_prints_urls(tenants_world):
    output = run("create", "gamma", "--name", "Gamma 公司", "--domain", "gamma.example.com",
                 "--admin-email", "boss@gamma.test", "--admin-password", "A-very-good-pw-1")

    tenant = Tenant.objects.get(schema_name="gamma")
    assert tenant.name == "Gamma 公司" and tenant.is_active
    assert schema_exists("gamma")
    assert Domain.objects.get(domain="gamma.example.com").tenant == tenant
    with schema_context("gamma"):
        boss = get_user_model().objects.get(username="boss@gamma.test")
        assert boss.is_staff and boss.is_superuser and boss.check_password("A-very-good-pw-1")
    with schema_context("alpha"):
        assert not get_user_model().objects.filter(username="boss@gamma.test").exists()
    assert "http://localhost:8000/t/gamma/admin/" in output
    assert "http://localhost:8000/t/gamma/" in output
    assert "http://gamma.example.com:8000/admin/" in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alpha", "--name", "Dup"], "already exists"),
        (["public", "--name", "P"], "reserved"),
        (["admin", "--name", "P"], "reserved"),
        (["pg_evil", "--name", "P"], "reserved"),
        (["Bad-Slug", "--name", "P"], "Invalid slug"),
        (["a", "--name", "P"], "Invalid slug"),
        (["x;drop", "--name", "P"], "Invalid slug"),
        (["delta", "--name", "   "], "display name"),
        (["delta", "--name", "D", "--domain", "alpha.test"], "already belongs"),
        (["delta", "--name", "D", "--domain", "not a host"], "Invalid domain"),
        (["delta", "--name", "D", "--admin-email", "x@delta.test"], "both"),
        (["delta", "--name", "D", "--admin-email", "nope", "--admin-password", "A-very-good-pw-1"],
         "Invalid admin email"),
        (["delta", "--name", "D", "--admin-email", "x@delta.test", "--admin-password", "123"],
         "password refused"),
    ],
)
def test_create_refuses_bad_input_and_creates_nothing(tenants_world, args, message):
    tenants_before = set(Tenant.objects.values_list("schema_name", flat=True))
    domains_before = Domain.objects.count()

    with pytest.raises(CommandError, match=message):
        run("create", *args)

    assert set(Tenant.objects.values_list("schema_name", flat=True)) == tenants_before
    assert Domain.objects.count() == domains_before
    assert not schema_exists("delta")


def test_list_shows_tenants_but_not_public(tenants_world):
    output = run("list")
    assert "alpha" in output and "alpha.test" in output and "beta" in output
    assert "public" not in output.split("\n", 1)[1]


def test_suspend_and_activate(tenants_world):
    run("suspend", "beta")
    assert Tenant.objects.get(schema_name="beta").is_active is False
    run("activate", "beta")
    assert Tenant.objects.get(schema_name="beta").is_active is True
    with pytest.raises(CommandError, match="No tenant"):
        run("suspend", "public")
    with pytest.raises(CommandError, match="No tenant"):
        run("suspend", "nosuch")
