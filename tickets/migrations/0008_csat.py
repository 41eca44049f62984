# Satisfaction surveys (tickets/csat.py): the tenant's settings and one survey per closed ticket.

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

SCALE_CHOICES = [("3", "3 points: 满意 / 一般 / 不满意"), ("5", "5 points: 非常满意 … 非常不满意")]


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0019_sensitive_words"),
        ("tickets", "0007_business_hours"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CsatSettings",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "enabled",
                    models.BooleanField(
                        default=False, verbose_name="ask for a rating after a conversation with an agent"
                    ),
                ),
                ("scale", models.CharField(choices=SCALE_CHOICES, default="3", max_length=1, verbose_name="scale")),
                (
                    "question",
                    models.CharField(default="请您对本次服务进行评价", max_length=300, verbose_name="question"),
                ),
                (
                    "thanks",
                    models.CharField(
                        blank=True,
                        default="感谢您的评价！",
                        help_text="sent after the customer's answer; empty sends nothing",
                        max_length=300,
                        verbose_name="thanks",
                    ),
                ),
                (
                    "window_hours",
                    models.PositiveSmallIntegerField(
                        default=24,
                        help_text="an answer later than this is an ordinary message (at most 48, WeCom's reply window)",
                        validators=[
                            django.core.validators.MinValueValidator(1),
                            django.core.validators.MaxValueValidator(48),
                        ],
                        verbose_name="answer window (hours)",
                    ),
                ),
            ],
            options={
                "verbose_name": "satisfaction survey settings",
                "verbose_name_plural": "satisfaction survey settings",
            },
        ),
        migrations.CreateModel(
            name="Survey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("sent", "sent, waiting for the answer"),
                            ("answered", "answered"),
                            ("not_sent", "not sent"),
                        ],
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                ("reason", models.CharField(blank=True, max_length=200, verbose_name="why not sent")),
                ("scale", models.CharField(choices=SCALE_CHOICES, max_length=1, verbose_name="scale")),
                ("sent_at", models.DateTimeField(auto_now_add=True, verbose_name="sent at")),
                ("expires_at", models.DateTimeField(blank=True, null=True, verbose_name="answer window ends")),
                ("score", models.PositiveSmallIntegerField(blank=True, null=True, verbose_name="score")),
                ("label", models.CharField(blank=True, max_length=20, verbose_name="rating")),
                ("answered_at", models.DateTimeField(blank=True, null=True, verbose_name="answered at")),
                ("inbound_id", models.BigIntegerField(blank=True, null=True)),
                (
                    "agent",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="agent",
                    ),
                ),
                (
                    "contact",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="conversations.contact"
                    ),
                ),
                (
                    "ticket",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="survey",
                        to="tickets.ticket",
                        verbose_name="ticket",
                    ),
                ),
            ],
            options={
                "verbose_name": "satisfaction survey",
                "verbose_name_plural": "satisfaction surveys",
                "ordering": ["-sent_at"],
                "indexes": [models.Index(fields=["contact", "status"], name="survey_contact_status")],
            },
        ),
    ]
