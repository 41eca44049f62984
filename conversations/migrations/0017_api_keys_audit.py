"""API keys get scopes, an expiry and a request rate; the audit log (docs/API.md).

Keys made before scopes existed get every scope, so the integrations using them keep working.
"""

import django.core.validators
import django.utils.timezone
from django.db import migrations, models

import conversations.scopes

# The scopes as they were when this migration was written (a migration does not follow later code).
ALL_SCOPES_0017 = [f"{family}:{access}" for family in (
    "knowledge", "contacts", "conversations", "tickets", "settings", "deliveries", "webhooks")
    for access in ("read", "write")]


def existing_keys_get_every_scope(apps, schema_editor):
    apps.get_model("conversations", "ApiKey").objects.update(scopes=ALL_SCOPES_0017)


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0016_api_resources"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditLogEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(db_index=True, default=django.utils.timezone.now, verbose_name="when")),
                ("actor", models.CharField(db_index=True, max_length=200, verbose_name="actor")),
                ("action", models.CharField(db_index=True, max_length=200, verbose_name="action")),
                ("target", models.CharField(blank=True, max_length=200, verbose_name="target")),
                ("detail", models.JSONField(blank=True, default=dict, verbose_name="detail")),
                ("request_id", models.CharField(blank=True, max_length=128, verbose_name="request id")),
                ("trace_id", models.CharField(blank=True, max_length=64, verbose_name="trace id")),
            ],
            options={
                "verbose_name": "audit log entry",
                "verbose_name_plural": "audit log",
                "ordering": ["-at", "-id"],
            },
        ),
        migrations.AlterModelOptions(
            name="apikey",
            options={"verbose_name": "API key", "verbose_name_plural": "API keys"},
        ),
        migrations.AddField(
            model_name="apikey",
            name="expires_at",
            field=models.DateTimeField(blank=True, help_text="empty: never; after this time the key is refused",
                                       null=True, verbose_name="expires at"),
        ),
        migrations.AddField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(blank=True, default=list, validators=[conversations.scopes.validate_scopes],
                                   verbose_name="scopes"),
        ),
        migrations.AddField(
            model_name="apikey",
            name="throttle_per_minute",
            field=models.PositiveIntegerField(
                default=600, help_text="over this the API answers 429 with Retry-After",
                validators=[django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(100000)],
                verbose_name="requests per minute"),
        ),
        migrations.AlterField(
            model_name="apikey",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="apikey",
            name="last_used_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="last used"),
        ),
        migrations.AlterField(
            model_name="apikey",
            name="name",
            field=models.CharField(max_length=100, verbose_name="name"),
        ),
        migrations.RunPython(existing_keys_get_every_scope, migrations.RunPython.noop),
    ]
