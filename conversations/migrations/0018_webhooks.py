# Webhooks out (issue 13): endpoints, events and their deliveries (conversations/webhooks/models.py).

import uuid

import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import conversations.encryption
import conversations.webhooks.models


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0017_api_keys_audit"),
    ]

    operations = [
        migrations.CreateModel(
            name="WebhookEndpoint",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("url", models.URLField(max_length=500, verbose_name="URL")),
                ("description", models.CharField(blank=True, max_length=200, verbose_name="description")),
                ("events", django.contrib.postgres.fields.ArrayField(base_field=models.CharField(choices=[("message.received", "a customer message was received"), ("message.answered", "a reply reached WeCom"), ("conversation.handed_off", "a conversation was handed to humans"), ("conversation.closed", "a conversation was closed"), ("ticket.created", "a ticket was opened"), ("ticket.updated", "a ticket changed"), ("delivery.dead", "an outbound message went dead")], max_length=40), default=list, size=None, verbose_name="events")),  # noqa: E501
                ("secret", conversations.encryption.EncryptedTextField(default=conversations.webhooks.models.generate_secret, editable=False, verbose_name="signing secret")),  # noqa: E501
                ("is_active", models.BooleanField(default=True, verbose_name="active")),
                ("disabled_reason", models.CharField(blank=True, max_length=300, verbose_name="why it was disabled")),
                ("disabled_at", models.DateTimeField(blank=True, null=True, verbose_name="disabled at")),
                ("consecutive_failures", models.PositiveIntegerField(default=0, verbose_name="failed attempts in a row")),
                ("consecutive_dead", models.PositiveIntegerField(default=0, verbose_name="dead deliveries in a row")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "verbose_name": "webhook endpoint",
                "verbose_name_plural": "webhook endpoints",
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="WebhookEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event_id", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("type", models.CharField(max_length=40)),
                ("payload", models.JSONField(default=dict)),
                ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
            ],
            options={
                "verbose_name": "webhook event",
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="WebhookDelivery",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("status", models.CharField(choices=[("pending", "pending"), ("retrying", "retrying"), ("delivered", "delivered"), ("dead", "dead letter")], default="pending", max_length=10, verbose_name="status")),  # noqa: E501
                ("attempts", models.PositiveSmallIntegerField(default=0, verbose_name="attempts")),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="next attempt at")),
                ("last_status_code", models.PositiveSmallIntegerField(blank=True, null=True, verbose_name="last HTTP status")),
                ("last_error", models.CharField(blank=True, max_length=300, verbose_name="last error")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("delivered_at", models.DateTimeField(blank=True, null=True, verbose_name="delivered at")),
                ("endpoint", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="conversations.webhookendpoint")),  # noqa: E501
                ("event", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="deliveries", to="conversations.webhookevent")),  # noqa: E501
            ],
            options={
                "verbose_name": "webhook delivery",
                "verbose_name_plural": "webhook deliveries",
                "ordering": ["id"],
                "indexes": [
                    models.Index(condition=models.Q(("status__in", ["pending", "retrying"])), fields=["next_attempt_at"], name="webhook_delivery_due"),  # noqa: E501
                    models.Index(fields=["endpoint", "status", "id"], name="webhook_delivery_endpoint"),
                    models.Index(fields=["status", "id"], name="webhook_delivery_status"),
                ],
                "constraints": [models.UniqueConstraint(fields=("event", "endpoint"), name="one_delivery_per_event_endpoint")],  # noqa: E501
            },
        ),
    ]
