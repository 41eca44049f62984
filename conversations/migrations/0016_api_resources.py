import django.db.models.deletion
from django.db import migrations, models

AUTHORS = [("customer", "customer"), ("ai", "AI answer"), ("knowledge", "knowledge-base answer"),
           ("fallback", "fallback script"), ("notice", "rate-limit notice"), ("handoff", "handoff message"),
           ("agent", "human agent"), ("api", "integration (API)")]


class Migration(migrations.Migration):
    """The API's resources (issue 13): a contact's notes and custom attributes, messages sent by integrators
    (author `api`) and the Idempotency-Key of those sends."""

    dependencies = [
        ("conversations", "0015_answer_feedback"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="notes",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="contact",
            name="attributes",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="message",
            name="author",
            field=models.CharField(choices=AUTHORS, max_length=12),
        ),
        migrations.AlterField(
            model_name="outboundmessage",
            name="author",
            field=models.CharField(choices=AUTHORS, max_length=12),
        ),
        migrations.CreateModel(
            name="IdempotentSend",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=100, unique=True)),
                ("fingerprint", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("message", models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE,
                                              related_name="+", to="conversations.message")),
            ],
            options={"verbose_name": "idempotent API send"},
        ),
    ]
