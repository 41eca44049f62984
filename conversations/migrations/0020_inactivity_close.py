from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0019_sensitive_words"),
    ]

    operations = []
