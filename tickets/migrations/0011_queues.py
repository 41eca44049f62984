# Queues and assignment: the round-robin clock of each agent, the queue place a waiting customer was last told,
# and the tenant's queue-position notice settings.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tickets", "0010_labels_profiles")]

    operations = [
        migrations.AddField(
            model_name="agentprofile",
            name="last_offered_at",
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name="last offered or assigned"),
        ),
        migrations.AddField(
            model_name="ticket",
            name="queue_position_told",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="ticket",
            name="queue_position_told_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="ticketsettings",
            name="queue_position_interval_minutes",
            field=models.PositiveSmallIntegerField(default=5, verbose_name="minutes between two queue notices"),
        ),
        migrations.AddField(
            model_name="ticketsettings",
            name="queue_position_message",
            field=models.CharField(
                default="您前面还有 {position} 位客户，请稍候。",
                help_text='{position} is the number of customers ahead. In English, e.g. "{position} customer(s) '
                          'ahead of you, please wait."',
                max_length=200,
                verbose_name="queue position message",
            ),
        ),
        migrations.AddField(
            model_name="ticketsettings",
            name="queue_position_notices",
            field=models.BooleanField(default=True, verbose_name="tell waiting customers their place in the queue"),
        ),
        migrations.AddField(
            model_name="ticketsettings",
            name="queue_position_step",
            field=models.PositiveSmallIntegerField(
                default=3,
                help_text="a new notice when the place dropped by at least this many since the last one (and when "
                          "it reaches 1)",
                verbose_name="tell again after the queue moved by",
            ),
        ),
    ]
