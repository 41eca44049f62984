# Labels on conversations and tickets, and teams (技能组) with the ticket a team is queued for.

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0020_inactivity_close"),
        ("tickets", "0008_csat"),
    ]

    operations = [
        migrations.CreateModel(
            name="Label",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=40, unique=True, verbose_name="name")),
                (
                    "color",
                    models.CharField(
                        default="#607d8b",
                        max_length=7,
                        validators=[
                            django.core.validators.RegexValidator("^#[0-9a-fA-F]{6}$", "a colour like #1e88e5")
                        ],
                        verbose_name="colour",
                    ),
                ),
                ("description", models.CharField(blank=True, max_length=200, verbose_name="description")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                (
                    "conversations",
                    models.ManyToManyField(
                        blank=True, related_name="labels", to="conversations.conversation", verbose_name="conversations"
                    ),
                ),
                (
                    "tickets",
                    models.ManyToManyField(
                        blank=True, related_name="labels", to="tickets.ticket", verbose_name="tickets"
                    ),
                ),
            ],
            options={
                "verbose_name": "label",
                "verbose_name_plural": "labels",
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="Team",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=60, unique=True, verbose_name="name")),
                ("keywords", models.JSONField(blank=True, default=list, verbose_name="keywords")),
                ("menu_choice", models.CharField(blank=True, max_length=64, verbose_name="menu choice")),
                (
                    "is_default",
                    models.BooleanField(
                        default=False,
                        help_text="takes the conversations no other team's keywords match",
                        verbose_name="default team",
                    ),
                ),
                (
                    "priority",
                    models.PositiveSmallIntegerField(
                        default=100, help_text="teams are tried in this order, lowest first", verbose_name="order"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                (
                    "members",
                    models.ManyToManyField(
                        blank=True, related_name="teams", to="tickets.agentprofile", verbose_name="members"
                    ),
                ),
            ],
            options={
                "verbose_name": "team",
                "verbose_name_plural": "teams",
                "ordering": ["priority", "name"],
            },
        ),
        migrations.AddField(
            model_name="ticket",
            name="team",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="tickets",
                to="tickets.team",
                verbose_name="team",
            ),
        ),
        migrations.AddConstraint(
            model_name="team",
            constraint=models.UniqueConstraint(
                condition=models.Q(("is_default", True)), fields=("is_default",), name="one_default_team"
            ),
        ),
    ]
