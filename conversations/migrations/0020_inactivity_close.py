# Inactivity auto-close (tickets/inactivity.py): the tenant's settings, the warning's mark on the
# conversation, and a partial index for the sweep over the conversations agents own.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0019_sensitive_words"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="inactivity_warned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="inactivity_warned_message_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="desksettings",
            name="inactivity_close",
            field=models.BooleanField(default=False, help_text=(
                "a conversation an agent owns is closed when the customer stops answering: a warning first, "
                "then the close (with the closing message)")),
        ),
        migrations.AddField(
            model_name="desksettings",
            name="inactivity_close_minutes",
            field=models.PositiveIntegerField(
                default=10, help_text="minutes after the warning without a customer reply before the close"),
        ),
        migrations.AddField(
            model_name="desksettings",
            name="inactivity_warn_minutes",
            field=models.PositiveIntegerField(
                default=30, help_text="minutes without a customer reply after our last message before the warning"),
        ),
        migrations.AddField(
            model_name="desksettings",
            name="inactivity_warning",
            field=models.CharField(
                default="您好，请问还有其他问题吗？如无回复，本次会话将在 10 分钟后自动结束。",
                help_text="the warning (mention the minutes below)", max_length=500),
        ),
        migrations.AddIndex(
            model_name="conversation",
            index=models.Index(condition=models.Q(("state", "human")), fields=["last_message_at"],
                               name="conversation_human_idle"),
        ),
    ]
