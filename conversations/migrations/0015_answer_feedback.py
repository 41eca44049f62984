from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0014_knowledge_gaps"),
    ]

    operations = []
