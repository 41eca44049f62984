# Reserved for the reports's schema changes this session (empty until then).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tickets", "0011_queues")]

    operations = []
