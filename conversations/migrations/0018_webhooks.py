from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0017_api_keys_audit"),
    ]

    operations = []
