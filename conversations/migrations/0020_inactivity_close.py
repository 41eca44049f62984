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
        # The trace stages as they are now (the satisfaction surveys' "surveyed" joined them): choices only,
        # no change in the database.
        migrations.AlterField(
            model_name="traceevent",
            name="stage",
            field=models.CharField(
                choices=[
                    ('received', 'received'),
                    ('pulled', 'pulled (微信客服)'),
                    ('duplicate', 'duplicate (acknowledged, not stored again)'),
                    ('enqueued', 'enqueued'),
                    ('media_stored', 'media downloaded and stored'),
                    ('media_refused', 'media not stored (too large, wrong type, refused by WeCom)'),
                    ('deferred', 'deferred by a shared rate limit'),
                    ('rate_limited', "over the customer's rate limit"),
                    ('rewritten', 'follow-up rewritten into a standalone question'),
                    ('sensitive', 'sensitive words found'),
                    ('retrieved', 'knowledge retrieved'),
                    ('llm_call', 'model call'),
                    ('fallback', 'fallback script'),
                    ('handoff', 'handed off to humans'),
                    ('rated', 'the customer rated an answer'),
                    ('surveyed', 'the customer answered a satisfaction survey'),
                    ('suppressed', 'answer dropped: a human owns the conversation'),
                    ('suggestion', 'reply suggested to the agent'),
                    ('processed', 'processed'),
                    ('failed', 'failed permanently'),
                    ('queued', 'reply queued for delivery'),
                    ('send_attempt', 'send attempt failed, retrying'),
                    ('sent', 'delivered'),
                    ('dead', 'dead letter'),
                    ('send_cancelled', 'send cancelled: a human owns the conversation'),
                    ('resend', 'dead letter re-sent'),
                    ('kf_session', '微信客服 session moved'),
                ],
                max_length=32,
            ),
        ),
    ]
