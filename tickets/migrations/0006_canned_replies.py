from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("tickets", "0005_knowledge_proposals"),
    ]

    operations = []
