# Customer profiles: the avatar WeCom gives (kept as its URL) and when the profile was fetched, asked and why it
# last failed (conversations/services/profiles.py).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversations", "0020_inactivity_close")]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="avatar_url",
            field=models.URLField(blank=True, max_length=500),
        ),
        migrations.AddField(
            model_name="contact",
            name="profile_checked_at",
            field=models.DateTimeField(blank=True, help_text="when it was last asked", null=True),
        ),
        migrations.AddField(
            model_name="contact",
            name="profile_error",
            field=models.CharField(blank=True, help_text="why the last refresh failed", max_length=300),
        ),
        migrations.AddField(
            model_name="contact",
            name="profile_fetched_at",
            field=models.DateTimeField(blank=True, help_text="when WeCom last gave the profile", null=True),
        ),
    ]
