"""Operator commands: `wecom add-app <tenant> ...`, `wecom list-apps <tenant>`, `wecom rotate-keys`."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name, schema_context

from conversations.encryption import mask, reencrypt
from conversations.models import WeComApp, callback_url
from conversations.services.apps import create_wecom_app
from tenants.log_context import LoggedCommand
from tenants.models import Tenant


class Command(LoggedCommand):
    help = "Connect and list WeCom apps / 微信客服 accounts of a tenant; re-encrypt secrets."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add = actions.add_parser("add-app", help="connect a self-built app or 微信客服 account")
        add.add_argument("tenant", help="tenant slug")
        add.add_argument("--kind", choices=["app", "kf"], required=True)
        add.add_argument("--name", default="")
        add.add_argument("--corp-id", required=True)
        add.add_argument("--agent-id", help="self-built apps")
        add.add_argument("--open-kfid", action="append", default=[], help="微信客服 account (repeatable)")
        add.add_argument("--secret", required=True)
        add.add_argument("--token", required=True)
        add.add_argument("--aes-key", required=True, help="EncodingAESKey (43 characters)")
        listing = actions.add_parser("list-apps", help="list a tenant's apps and callback URLs")
        listing.add_argument("tenant")
        actions.add_parser("rotate-keys", help="re-encrypt every stored secret with the newest key")

    def handle(self, *args, action, **options):
        getattr(self, "_" + action.replace("-", "_"))(**options)

    def _tenant(self, slug: str) -> Tenant:
        tenant = Tenant.objects.filter(schema_name=slug).exclude(schema_name=get_public_schema_name()).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r} (see `manage.py tenants list`).")
        return tenant

    def _add_app(self, *, tenant, kind, name, corp_id, agent_id, open_kfid, secret, token, aes_key, **_):
        tenant = self._tenant(tenant)
        with schema_context(tenant.schema_name):
            try:
                app = create_wecom_app(name=name, kind=kind, corp_id=corp_id, agent_id=agent_id,
                                       open_kfids=open_kfid, secret=secret, token=token,
                                       encoding_aes_key=aes_key)
            except ValidationError as exc:
                lines = [f"  {field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
                raise CommandError("Refused, nothing was saved:\n" + "\n".join(lines)) from exc
        self.stdout.write(self.style.SUCCESS(f"Connected {app}."))
        self.stdout.write(f"  Callback URL (paste into the WeCom console): {callback_url(app, tenant.schema_name)}")

    def _list_apps(self, *, tenant, **_):
        tenant = self._tenant(tenant)
        with schema_context(tenant.schema_name):
            apps = list(WeComApp.objects.all())
            for app in apps:
                state = "enabled" if app.is_enabled else "disabled"
                target = f"agent {app.agent_id}" if app.kind == "app" else ",".join(app.open_kfids)
                self.stdout.write(f"{app.pk:<5} {app.kind:<4} {state:<9} {app.corp_id:<22} {target:<30} "
                                  f"secret {mask(app.secret)}  {callback_url(app, tenant.schema_name)}")
        if not apps:
            self.stdout.write("No apps connected yet (see `manage.py wecom add-app`).")

    def _rotate_keys(self, **_):
        total = 0
        for tenant in Tenant.objects.exclude(schema_name=get_public_schema_name()):
            with schema_context(tenant.schema_name), transaction.atomic():
                total += _reencrypt_table(WeComApp, ["secret", "token", "encoding_aes_key"])
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {total} row(s) with the newest key."))


def _reencrypt_table(model, fields: list[str]) -> int:
    """Rewrite ciphertext under the newest key without decrypting into Python model instances."""
    table = model._meta.db_table
    count = 0
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT id, {", ".join(fields)} FROM "{table}" FOR UPDATE')  # noqa: S608
        for row in cursor.fetchall():
            pk, values = row[0], row[1:]
            new = [reencrypt(v) if v else v for v in values]
            assignments = ", ".join(f"{f} = %s" for f in fields)
            cursor.execute(f'UPDATE "{table}" SET {assignments} WHERE id = %s', [*new, pk])  # noqa: S608
            count += 1
    return count
