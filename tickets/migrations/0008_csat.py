from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("tickets", "0007_business_hours"),
    ]

    operations = []
