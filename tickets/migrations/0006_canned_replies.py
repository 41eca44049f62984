import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import tickets.canned.models


class Migration(migrations.Migration):

    dependencies = [
        ("tickets", "0005_knowledge_proposals"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CannedReply",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("shortcode", models.CharField(
                    help_text="typed after / in the reply box: letters, digits, - and _ (Chinese allowed)",
                    max_length=32, validators=[django.core.validators.validate_unicode_slug],
                    verbose_name="shortcode")),
                ("title", models.CharField(max_length=100, verbose_name="title")),
                ("text", models.TextField(
                    help_text="variables: {customer_name} (the customer's name) and {agent_name} (the agent's "
                              "display name)", max_length=2000, verbose_name="text")),
                ("attachment", models.FileField(
                    blank=True, help_text="a picture (JPG or PNG up to 10 MB) or a file (up to 20 MB), sent after "
                                          "the text", max_length=200,
                    upload_to=tickets.canned.models.attachment_path, verbose_name="attachment")),
                ("enabled", models.BooleanField(default=True, verbose_name="enabled")),
                ("usage_count", models.PositiveIntegerField(default=0, editable=False, verbose_name="times used")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created at")),
                ("updated_at", models.DateTimeField(auto_now=True, verbose_name="updated at")),
                ("owner", models.ForeignKey(
                    blank=True, help_text="empty: shared by every agent of the tenant; else this agent's own",
                    limit_choices_to={"agent_profile__isnull": False}, null=True,
                    on_delete=django.db.models.deletion.CASCADE, related_name="canned_replies",
                    to=settings.AUTH_USER_MODEL, verbose_name="owner")),
            ],
            options={
                "verbose_name": "canned reply",
                "verbose_name_plural": "canned replies",
                "ordering": ["shortcode", "id"],
                "constraints": [
                    models.UniqueConstraint(condition=models.Q(("owner__isnull", True)), fields=("shortcode",),
                                            name="canned_reply_shared_shortcode",
                                            violation_error_message="A shared canned reply has this shortcode."),
                    models.UniqueConstraint(fields=("owner", "shortcode"), name="canned_reply_own_shortcode",
                                            violation_error_message="This agent has a canned reply with this "
                                                                    "shortcode."),
                ],
            },
        ),
    ]
