from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("conversations", "0015_answer_feedback"),
    ]

    operations = []
