from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0016_api_resources"),
    ]

    operations = []
